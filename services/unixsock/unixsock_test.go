package unixsock

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// shortDir keeps socket paths under the 108-byte sun_path limit.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "us")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

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
