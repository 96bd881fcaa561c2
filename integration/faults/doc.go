// Package faults is the fault campaign of docs/reliability.md, run against
// the real binaries (receptor, receptor-router, receptor-worker,
// receptor-runner from RECEPTOR_BIN_DIR, else built by TestMain): a
// kill/restart matrix (process kind x SIGKILL/SIGTERM x upload/run/results
// phase, each cell checking "nothing lost, nothing corrupt" with sha256 of
// the results read from the submitter; rules in matrix_test.go) and a load
// test (concurrent local and remote units, concurrent streams through a
// 2-hop mesh, then no goroutine or fd growth in the node processes).
//
// `make test` runs the short version (one SIGKILL/results cell per process
// kind, 100 units and 100 streams); FAULTS=full (`make test-faults`) runs
// all 30 cells and 1,000 units and streams.
package faults
