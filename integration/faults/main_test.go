package faults

import (
	"os"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// binDir holds receptor, receptor-router, receptor-worker and
// receptor-runner: $RECEPTOR_BIN_DIR (make build), else built here.
var binDir string

// TestMain finds or builds the binaries, runs the tests and then checks
// that no goroutine of the test process outlived them.
func TestMain(m *testing.M) { os.Exit(testkit.MainWithBinaries(m, "faults", &binDir)) }
