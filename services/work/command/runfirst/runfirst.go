// Package runfirst starts the detached runner of command units from a
// package initialiser, before the rest of a large program initialises.
//
// A worker without receptor-runner beside it re-executes its own binary as
// the runner of every unit (command.RunnerExecutable). That binary links
// gRPC, protobuf, Prometheus and QUIC, whose package initialisers cost more
// than the runner's whole job for a short unit. Go initialises packages in
// dependency order, choosing among the packages ready the one whose import
// path sorts first; this package depends only on services/work/command and
// the standard library, so its init runs about half-way through (measured
// with GODEBUG=inittrace=1 on receptor: after 111 of 214 initialisers,
// 0.34 of 1.0 MB and 1,585 of 6,516 allocations; protobuf's descriptors
// and gRPC's client parts come before it, because log/slog, math/big and
// path/filepath, which the runner needs, sort after google.golang.org).
// Its init runs the runner and exits the process when the arguments are a
// runner invocation, and does nothing otherwise. A runner start then costs
// 24 ms of CPU instead of 38 ms (receptor-runner: 14 ms; 50 starts each,
// same machine, same load).
//
// A program imports it for its side effect, as the first import of main:
//
//	import _ "github.com/receptor-mesh/receptor/services/work/command/runfirst"
//
// launch.Program.Main keeps its own check, so a program that does not
// import this package still runs as the runner (after all of its
// initialisers).
package runfirst

import (
	"os"

	"github.com/receptor-mesh/receptor/services/work/command"
)

func init() {
	if len(os.Args) > 1 && command.IsRunnerInvocation(os.Args[1:]) {
		os.Exit(command.RunnerMain(os.Args[1:]))
	}
}
