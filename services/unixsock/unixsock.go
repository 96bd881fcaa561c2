// Package unixsock opens Unix stream sockets the way upstream Receptor does:
// guarded by an exclusive lock on "<path>.lock", so that a second process
// fails at start instead of stealing a live socket, and left in place at
// close. The control socket and the gRPC API socket both use it.
package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// ErrLocked means another process (or listener) holds the socket's lock
// file. Its text is the one upstream reports for this case.
var ErrLocked = errors.New("fslock is already locked")

// Listen takes a non-blocking exclusive flock on "<path>.lock" (created
// 0600, never deleted), removes whatever stale file is at path, listens
// there and sets the socket's mode to perm. The lock is held until the
// listener is closed; closing leaves the socket file, which the next Listen
// removes under the lock. A lock held elsewhere is an error wrapping
// ErrLocked.
func Listen(path string, perm os.FileMode) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("unix socket: empty path")
	}
	lock, err := tryLock(path + ".lock")
	if err != nil {
		return nil, err
	}
	ln, err := listenUnlocked(path, perm)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	return &lockedListener{Listener: ln, lock: lock}, nil
}

func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening socket lock file: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("socket lock file %s is held by another process: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("locking socket lock file %s: %w", path, err)
	}
	return f, nil
}

func listenUnlocked(path string, perm os.FileMode) (*net.UnixListener, error) {
	// os.Remove, not RemoveAll: a misconfigured path naming a directory
	// tree must fail rather than delete the tree.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("removing stale unix socket file: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on unix socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, perm); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("setting mode %#o on unix socket: %w", perm, err)
	}
	return ln, nil
}

// lockedListener releases the socket lock when the listener is closed.
type lockedListener struct {
	net.Listener
	lock *os.File
}

func (l *lockedListener) Close() error {
	err := l.Listener.Close()
	if lerr := l.lock.Close(); lerr != nil && !errors.Is(lerr, os.ErrClosed) && err == nil {
		err = lerr
	}
	return err
}
