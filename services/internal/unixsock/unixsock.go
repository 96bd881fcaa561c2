// Package unixsock opens Unix stream sockets the way upstream Receptor does:
// guarded by an exclusive lock on "<path>.lock", so that a second process
// fails at start instead of stealing a live socket, and left in place at
// close. The control socket, the gRPC API socket and the unix-socket-server
// proxy use it.
//
// The directory holding the socket must pass safedir.Check (owned by us or
// root, not writable by group or others), and the socket never exists at
// its path with a mode wider than the one asked for: it is bound inside a
// private 0700 directory, given its mode there, then renamed into place.
// The umask is not touched (it is process-wide).
package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/receptor-mesh/receptor/services/internal/safedir"
	"golang.org/x/sys/unix"
)

// maxPathLen is the longest socket path the kernel accepts (sun_path is
// 108 bytes including the terminating NUL).
const maxPathLen = 107

// ErrLocked means another process (or listener) holds the socket's lock
// file. Its text is the one upstream reports for this case.
var ErrLocked = errors.New("fslock is already locked")

// Listen checks the socket's directory, takes a non-blocking exclusive flock
// on "<path>.lock" (created 0600, never deleted), removes whatever stale
// file is at path and listens there with mode perm. The lock is held until
// the listener is closed; closing leaves the socket file, which the next
// Listen removes under the lock. A lock held elsewhere is an error wrapping
// ErrLocked; an unsafe directory one wrapping safedir.ErrUnsafe.
func Listen(path string, perm os.FileMode) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("unix socket: empty path")
	}
	if len(path) > maxPathLen {
		return nil, fmt.Errorf("unix socket path %s is longer than %d bytes", path, maxPathLen)
	}
	if err := safedir.Check(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
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
	return &lockedListener{Listener: ln, lock: lock, addr: &net.UnixAddr{Name: path, Net: "unix"}}, nil
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
	// bind(2) creates the socket with mode 0777 less the umask; nobody but
	// us can reach it inside the private directory until it has its mode.
	priv, err := os.MkdirTemp(filepath.Dir(path), "."+filepath.Base(path)+".bind-")
	if err != nil {
		return nil, fmt.Errorf("creating a private directory for unix socket %s: %w", path, err)
	}
	defer os.Remove(priv) // empty once the socket is renamed or removed
	tmp, release, err := shortPath(priv, "s")
	if err != nil {
		return nil, fmt.Errorf("listening on unix socket %s: %w", path, err)
	}
	defer release()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listening on unix socket: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(what string, err error) (*net.UnixListener, error) {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return fail(fmt.Sprintf("setting mode %#o on unix socket", perm), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail("moving unix socket into place", err)
	}
	return ln, nil
}

// shortPath names dir/name for bind(2): as is when it fits in a socket
// address, otherwise through /proc/self/fd and an open descriptor of dir,
// which release closes.
func shortPath(dir, name string) (string, func(), error) {
	p := filepath.Join(dir, name)
	if len(p) <= maxPathLen {
		return p, func() {}, nil
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("opening %s: %w", dir, err)
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", fd, name), func() { _ = unix.Close(fd) }, nil
}

// lockedListener releases the socket lock when the listener is closed.
type lockedListener struct {
	net.Listener
	lock *os.File
	addr net.Addr // the socket's final path, not the one it was bound at
}

func (l *lockedListener) Addr() net.Addr { return l.addr }

func (l *lockedListener) Close() error {
	err := l.Listener.Close()
	if lerr := l.lock.Close(); lerr != nil && !errors.Is(lerr, os.ErrClosed) && err == nil {
		err = lerr
	}
	return err
}
