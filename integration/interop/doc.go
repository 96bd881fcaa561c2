// Package interop holds wire-interoperability tests between our mesh
// implementation and an upstream Receptor binary (docs/protocol.md describes what they check).
//
// The tests are skipped unless RECEPTOR_UPSTREAM_BIN names an upstream
// receptor executable. Upstream nodes run as child processes on 127.0.0.1;
// our nodes run in-process (services/mesh) and, when RECEPTOR_BIN_DIR (or
// ../../bin) holds our receptor binary, also as child processes.
//
//	RECEPTOR_UPSTREAM_BIN=/path/to/receptor go test -race ./integration/interop/
//
// Set INTEROP_LOG=1 to print every node's log on success as well.
package interop
