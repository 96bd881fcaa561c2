// Package deploy tests what deploy/ ships: the container image (built with
// scripts/image.sh, what `make image` runs, and run with podman), the
// compose files, and the Kubernetes manifests (kubectl's client-side
// dry run).
package deploy

import (
	"os"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// binDir holds the static binaries: $RECEPTOR_BIN_DIR (make build), else
// built here.
var binDir string

func TestMain(m *testing.M) { os.Exit(testkit.MainWithBinaries(m, "deploy", &binDir)) }
