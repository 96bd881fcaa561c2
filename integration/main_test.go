package integration

import (
	"os"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// binDir holds receptor-router (and receptor, receptor-worker,
// receptor-runner): $RECEPTOR_BIN_DIR (make build), else built here.
var binDir string

// TestMain finds or builds the binaries, runs the tests and then checks that
// no goroutine of the test process outlived them (the processes are
// checked one by one in Node.Stop).
func TestMain(m *testing.M) { os.Exit(testkit.MainWithBinaries(m, "integration", &binDir)) }
