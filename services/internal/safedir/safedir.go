// Package safedir refuses directories that another local user could
// control, before we create files (sockets, lock files, work units) in
// them. A directory in a shared place such as /tmp that someone else
// created first, or that anyone may write to, lets that user replace our
// sockets or read and forge our files.
package safedir

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"syscall"
)

// geteuid is os.Geteuid; tests run as root replace it to see the rules a
// service account gets.
var geteuid = os.Geteuid

// ErrUnsafe marks a directory refused by Check.
var ErrUnsafe = errors.New("unsafe directory")

// unsafeBits are the permission bits that let users other than the owner
// create, rename or delete entries. The sticky bit does not make such a
// directory acceptable: others can still create the names we use before
// we do.
const unsafeBits = 0o022

// Check verifies that dir, the directory that directly holds our files,
// is owned by the effective user or by root and is writable by neither
// its group nor others. One exception, logged as a warning: a directory
// root owns and shares with others, when we are not root (an
// administrator's or Kubernetes' choice that we could not change). A symbolic link at dir must itself belong to us
// or to root; its target is checked. Errors name the path, its owner and
// its mode, and wrap ErrUnsafe; a missing directory is an error wrapping
// fs.ErrNotExist.
func Check(dir string) error {
	li, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("checking directory %s: %w", dir, err)
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		if err := checkOwner(dir, li, "symbolic link"); err != nil {
			return err
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (mode %v): %w", dir, fi.Mode(), ErrUnsafe)
	}
	if err := checkOwner(dir, fi, "directory"); err != nil {
		return err
	}
	if fi.Mode().Perm()&unsafeBits != 0 {
		if uid := owner(fi); uid == 0 && geteuid() != 0 {
			// A shared directory root made for us (a Kubernetes emptyDir
			// is root's and mode 0777, and AWX puts its receptor socket in
			// one): we cannot change it, and refusing it would stop the
			// node for good. Accepted, with a warning naming the risk.
			slog.Warn("directory is writable by other users; they could replace the files we create there",
				"directory", dir, "owner_uid", uid, "mode", fi.Mode().String())
			return nil
		}
		return fmt.Errorf("directory %s (owner uid %d, mode %v) is writable by its group or by others; "+
			"make it writable only by its owner (chmod go-w): %w", dir, owner(fi), fi.Mode(), ErrUnsafe)
	}
	return nil
}

// CheckIfExists is Check for a directory we create ourselves when it is
// missing: a missing directory is accepted.
func CheckIfExists(dir string) error {
	err := Check(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// MkdirAll creates dir and its missing parents with mode 0700 (less the
// umask), then checks dir.
func MkdirAll(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return Check(dir)
}

func checkOwner(path string, fi fs.FileInfo, what string) error {
	uid, me := owner(fi), geteuid()
	if uid == me || uid == 0 {
		return nil
	}
	return fmt.Errorf("%s %s (owner uid %d, mode %v) belongs to another user (we run as uid %d); "+
		"use a directory owned by uid %d or root: %w", what, path, uid, fi.Mode(), me, me, ErrUnsafe)
}

// owner is the file's owner uid, -1 when the platform does not say.
func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
