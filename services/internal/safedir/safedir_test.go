package safedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode fs.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // not subject to the umask
			t.Fatal(err)
		}
		return p
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(mk("target", 0o700), link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		want string // "" for accepted
	}{
		{"private", mk("private", 0o700), ""},
		{"group and world readable", mk("readable", 0o755), ""},
		{"world writable", mk("world", 0o777), "writable by its group or by others"},
		{"group writable", mk("group", 0o770), "writable by its group or by others"},
		{"sticky world writable", mk("sticky", 0o777|fs.ModeSticky), "writable by its group or by others"},
		{"not a directory", file, "is not a directory"},
		{"our symbolic link to a private directory", link, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.dir)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want nil", tt.dir, err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tt.want) ||
				!strings.Contains(err.Error(), tt.dir) {
				t.Fatalf("Check(%s) = %v, want ErrUnsafe naming the path with %q", tt.dir, err, tt.want)
			}
		})
	}
	// The message names owner and mode.
	err := Check(filepath.Join(base, "world"))
	if !strings.Contains(err.Error(), "owner uid") || !strings.Contains(err.Error(), "drwxrwxrwx") {
		t.Errorf("error does not name owner and mode: %v", err)
	}

	missing := filepath.Join(base, "missing")
	if err := Check(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Check(missing) = %v, want ErrNotExist", err)
	}
	if err := CheckIfExists(missing); err != nil {
		t.Errorf("CheckIfExists(missing) = %v", err)
	}
	if err := CheckIfExists(filepath.Join(base, "world")); !errors.Is(err, ErrUnsafe) {
		t.Errorf("CheckIfExists(world writable) = %v, want ErrUnsafe", err)
	}
}

// TestCheckOtherOwner needs root to give a directory and a link to another
// user.
func TestCheckOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	const nobody = 65534
	base := t.TempDir()
	dir := filepath.Join(base, "theirs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	// Root may still use its own directories (owner 0 is accepted).
	if err := Check(base); err != nil {
		t.Fatalf("Check(root's directory) = %v", err)
	}
	err := Check(dir)
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "belongs to another user") ||
		!strings.Contains(err.Error(), "uid 65534") {
		t.Fatalf("Check(another user's directory) = %v", err)
	}
	// A link owned by another user is refused even when its target is ours.
	mine := filepath.Join(base, "mine")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(mine, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := Check(link); !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Check(another user's link) = %v", err)
	}
}

func TestMkdirAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("created %v, %v; want no group or other bits", fi.Mode(), err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(dir); !errors.Is(err, ErrUnsafe) {
		t.Fatalf("MkdirAll on an existing world-writable directory = %v, want ErrUnsafe", err)
	}
}

// TestRootSharedDirectory: a root-owned 0777 directory (a Kubernetes
// emptyDir) is accepted, with a warning, for a process that is not root,
// and refused for root, who could have made it safe.
func TestRootSharedDirectory(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs a root-owned directory: run as root")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir); !errors.Is(err, ErrUnsafe) {
		t.Errorf("root, own 0777 directory: %v, want ErrUnsafe", err)
	}
	geteuid = func() int { return 1000 }
	t.Cleanup(func() { geteuid = os.Geteuid })
	if err := Check(dir); err != nil {
		t.Errorf("uid 1000, root's 0777 directory: %v, want accepted", err)
	}
}
