package faults

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"
)

// binDir holds receptor, receptor-router, receptor-worker and
// receptor-runner: $RECEPTOR_BIN_DIR (make build), else built here.
var binDir string

// TestMain finds or builds the binaries, runs the tests and then checks
// that no goroutine of the test process outlived them.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	binDir = os.Getenv("RECEPTOR_BIN_DIR")
	if binDir == "" {
		dir, err := os.MkdirTemp("", "receptor-faults-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "faults: temp dir:", err)
			return 2
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
			"github.com/receptor-mesh/receptor/cmd/...")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "faults: building the binaries:", err)
			return 2
		}
		binDir = dir
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: goroutines outlived the tests:", err)
			code = 1
		}
	}
	return code
}
