package interop

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// pki is the CA and node certificates shared by the TLS tests.
var pki *testPKI

// TestMain is goleak.VerifyTestMain plus the lifetime of the shared CA
// directory (VerifyTestMain exits, so it cannot be followed by a cleanup).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "interop-pki-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "interop: temp dir:", err)
		os.Exit(2)
	}
	pki = newTestPKI(dir)
	code := m.Run()
	writeSkipSummary()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak: errors on successful test run:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}
