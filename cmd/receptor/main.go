// Command receptor runs a mesh node and its work agent in one process, from
// an upstream-style receptor.conf or command line: the drop-in replacement
// for upstream's receptor binary.
package main

import (
	_ "embed"
	"os"

	"github.com/receptor-mesh/receptor/services/allinone"
	"github.com/receptor-mesh/receptor/services/launch"
	// Runs the command runner before the other initialisers (see the package).
	_ "github.com/receptor-mesh/receptor/services/work/command/runfirst"
)

// defaultConfig is what `receptor --embedded-config` (make run) starts.
//
//go:embed default.yaml
var defaultConfig []byte

func main() {
	os.Exit(launch.Main(launch.Program{
		Name:     "receptor",
		Embedded: defaultConfig,
		Check:    allinone.Check,
		Run:      allinone.Run,
	}))
}
