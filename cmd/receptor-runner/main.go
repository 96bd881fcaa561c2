// Command receptor-runner is the detached runner of work-command units. A
// worker (receptor, receptor-worker) starts it instead of re-executing its
// own much larger binary when this file sits next to it, which saves the
// big binary's package initialisation on every unit. Its arguments are
// those of the re-executed form:
//
//	receptor-runner --command-runner command=<cmd> params=<params> unitdir=<dir>
package main

import (
	"os"

	"github.com/receptor-mesh/receptor/services/work/command"
)

func main() {
	os.Exit(command.RunnerMain(os.Args[1:]))
}
