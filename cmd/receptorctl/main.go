// Command receptorctl is the Go command-line client of a receptor node,
// with the Python receptorctl's verbs, flags and output (services/receptorctl;
// docs/receptorctl.md).
package main

import (
	"os"

	"github.com/receptor-mesh/receptor/services/receptorctl"
)

func main() {
	os.Exit(receptorctl.Main(os.Args[1:], receptorctl.DefaultStdio()))
}
