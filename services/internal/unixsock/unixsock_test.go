package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/receptor-mesh/receptor/services/internal/safedir"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// Test helpers shared by every package (services/testkit).
var (
	shortDir = testkit.ShortTempDir
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestListen(t *testing.T) {
	tests := []struct {
		name  string
		stale func(t *testing.T, path string) // what is at path before Listen
		perm  os.FileMode
	}{
		{"nothing there", func(*testing.T, string) {}, 0o600},
		{"stale regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("stale"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, 0o660},
		{"stale socket from a closed listener", func(t *testing.T, path string) {
			ln, err := Listen(path, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
		}, 0o666},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(shortDir(t), "s.sock")
			tt.stale(t, path)
			ln, err := Listen(path, tt.perm)
			if err != nil {
				t.Fatalf("Listen(%q): %v", path, err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != tt.perm {
				t.Errorf("socket mode = %v, want socket %#o", fi.Mode(), tt.perm)
			}
			lfi, err := os.Stat(path + ".lock")
			if err != nil || lfi.Mode().Perm() != 0o600 {
				t.Errorf("lock file: %v, %v; want mode 0600", lfi, err)
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("dialing the socket: %v", err)
			}
			_ = c.Close()
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			// Upstream leaves both files behind at close.
			for _, p := range []string{path, path + ".lock"} {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("%s removed at close: %v", p, err)
				}
			}
		})
	}
}

func TestListenLocked(t *testing.T) {
	path := filepath.Join(shortDir(t), "s.sock")
	ln, err := Listen(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Listen(path, 0o600)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Listen = %v, want ErrLocked", err)
	}
	// The refused listener left the live socket alone.
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("live socket gone after a refused Listen: %v", err)
	}
	_ = c.Close()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	// Closing released the lock.
	ln2, err := Listen(path, 0o600)
	if err != nil {
		t.Fatalf("Listen after close: %v", err)
	}
	_ = ln2.Close()
}

func TestListenErrors(t *testing.T) {
	dir := shortDir(t)
	full := filepath.Join(dir, "full")
	if err := os.MkdirAll(filepath.Join(full, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"missing directory", filepath.Join(dir, "no", "s.sock")},
		{"non-empty directory at path", full},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := Listen(tt.path, 0o600)
			if err == nil {
				_ = ln.Close()
				t.Fatalf("Listen(%q) succeeded", tt.path)
			}
			if errors.Is(err, ErrLocked) {
				t.Errorf("Listen(%q) = %v, not a lock error", tt.path, err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(full, "keep")); err != nil {
		t.Errorf("directory tree at the socket path was removed: %v", err)
	}
}

// TestListenUnsafeDirectory: a socket directory writable by others is
// refused before anything is created in it.
func TestListenUnsafeDirectory(t *testing.T) {
	dir := shortDir(t)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.sock")
	ln, err := Listen(path, 0o600)
	if err == nil {
		_ = ln.Close()
		t.Fatal("Listen in a world-writable directory succeeded")
	}
	if !errors.Is(err, safedir.ErrUnsafe) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Listen = %v, want safedir.ErrUnsafe naming %s", err, dir)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("refused Listen left files behind: %v", ents)
	}
}

// TestListenNeverWider: while Listen runs under a permissive umask, the
// socket path never exists with a mode wider than asked for, and the
// private bind directory is gone afterwards. A watcher polls the path.
func TestListenNeverWider(t *testing.T) {
	old := unix.Umask(0) // bind(2) would create the socket 0777
	defer unix.Umask(old)
	dir := shortDir(t)
	path := filepath.Join(dir, "s.sock")
	stop := make(chan struct{})
	seen := make(chan os.FileMode, 1)
	go func() {
		var worst os.FileMode
		defer func() { seen <- worst }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Lstat(path); err == nil && fi.Mode().Perm()&^0o600 != 0 {
				worst = fi.Mode()
			}
		}
	}()
	for range 50 {
		ln, err := Listen(path, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if got := ln.Addr().String(); got != path {
			t.Errorf("Addr = %s, want %s", got, path)
		}
		_ = ln.Close()
	}
	close(stop)
	if worst := <-seen; worst != 0 {
		t.Errorf("socket seen at its path with mode %v, wider than 0600", worst)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "s.sock" && e.Name() != "s.sock.lock" {
			t.Errorf("left behind in the socket directory: %s", e.Name())
		}
	}
}

// TestListenLongPath: a path whose private bind path would not fit in a
// socket address is bound through /proc/self/fd; one that does not fit
// itself is refused with a clear error.
func TestListenLongPath(t *testing.T) {
	dir := shortDir(t)
	// Make the socket path exactly maxPathLen bytes long.
	name := strings.Repeat("x", maxPathLen-len(dir)-1)
	path := filepath.Join(dir, name)
	ln, err := Listen(path, 0o640)
	if err != nil {
		t.Fatalf("Listen(%d-byte path): %v", len(path), err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o640 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket %v, %v; want socket 0640", fi, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dialing the socket: %v", err)
	}
	_ = c.Close()
	_ = ln.Close()

	if ln, err := Listen(path+"y", 0o600); err == nil || !strings.Contains(err.Error(), "longer than") {
		if ln != nil {
			_ = ln.Close()
		}
		t.Fatalf("Listen(%d-byte path) = %v, want a length error", len(path)+1, err)
	}
}
