// Command receptor-worker is the work agent: it owns units of work (run a
// command here, or on another node across the mesh) and serves the
// WorkService; it reaches the mesh only through the router's gRPC API.
package main

import (
	"os"

	"github.com/receptor-mesh/receptor/services/launch"
	// Runs the command runner before the other initialisers (see the package).
	_ "github.com/receptor-mesh/receptor/services/work/command/runfirst"
	"github.com/receptor-mesh/receptor/services/worker"
)

func main() {
	os.Exit(launch.Main(launch.Program{
		Name:  "receptor-worker",
		Check: worker.Check,
		Run:   worker.RunFromConfig,
	}))
}
