package buildinfo

import (
	"runtime"
	"testing"
)

func TestGetUsesLinkTimeVersion(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })

	Version = "1.2.3"
	if got := Get(); got.Version != "1.2.3" || got.GoVersion != runtime.Version() {
		t.Fatalf("Get() = %+v, want version 1.2.3 and go %s", got, runtime.Version())
	}
	Version = ""
	if got := Get(); got.Version == "" {
		t.Fatal("Get() with no stamped version returned an empty version")
	}
}
