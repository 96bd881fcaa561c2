package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"
)

// MainWithBinaries is the TestMain of the suites that run our binaries
// (receptor, receptor-router, receptor-worker, receptor-runner). It sets
// *binDir to $RECEPTOR_BIN_DIR (what `make build` wrote), or builds the
// binaries of ./cmd/... into a temporary directory for the run; then it
// runs the tests and fails the run if any goroutine of the test process
// outlived them. name prefixes its messages. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testkit.MainWithBinaries(m, "faults", &binDir)) }
func MainWithBinaries(m *testing.M, name string, binDir *string) int {
	*binDir = os.Getenv("RECEPTOR_BIN_DIR")
	if *binDir == "" {
		dir, err := os.MkdirTemp("", "receptor-"+name+"-bin-")
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: temp dir: %v\n", name, err)
			return 2
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("go", "build", "-o", dir+string(os.PathSeparator),
			"github.com/receptor-mesh/receptor/cmd/...")
		// Static, as `make build` makes them (the image test needs that).
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "%s: building the binaries: %v\n", name, err)
			return 2
		}
		*binDir = dir
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
