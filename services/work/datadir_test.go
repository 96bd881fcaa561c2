package work

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNewRefusesUnwritableDataDir: a data directory the agent cannot
// write is refused at start, with an error naming the path, instead of at
// the first submit.
func TestNewRefusesUnwritableDataDir(t *testing.T) {
	dataDir := t.TempDir()
	if os.Geteuid() == 0 {
		// Root writes through any mode bits; procfs refuses new entries
		// even to root, and /proc passes the ownership checks.
		dataDir = "/proc"
	} else if err := os.Chmod(dataDir, 0o500); err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{NodeID: "nodea", DataDir: dataDir, WorkTypes: standardTypes(t, "")})
	if a != nil {
		a.Close()
	}
	want := filepath.Join(dataDir, "nodea")
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("New with unwritable datadir = %v, want an error saying %s is not writable", err, want)
	}
}

// TestNewPreparesNodeDirectory: the node's directory is created at start
// (mode 0700) and the write probe leaves nothing behind.
func TestNewPreparesNodeDirectory(t *testing.T) {
	v := newEnv(t)
	a := v.agent(t)
	root := filepath.Join(v.dataDir, "nodea")
	fi, err := os.Stat(root)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("node directory after New: %v, %v", fi, err)
	}
	ents, err := os.ReadDir(root)
	if err != nil || len(ents) != 0 {
		t.Fatalf("node directory after New holds %v, %v; want nothing", ents, err)
	}
	if l, err := a.List(""); err != nil || len(l) != 0 {
		t.Fatalf("List = %v, %v", l, err)
	}
}
