package control

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// errLocked is upstream's text for a socket lock held by someone else.
var errLocked = errors.New("fslock is already locked")

// ListenUnix opens a control Unix socket the way upstream does: take a
// non-blocking exclusive flock on "<path>.lock" (created 0600, never
// deleted), remove whatever is at path, listen, chmod to perm. The lock is
// held until the listener is closed. The socket file is left in place on
// close, as upstream leaves it.
func ListenUnix(path string, perm os.FileMode) (net.Listener, error) {
	lock, err := tryLock(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("error opening Unix socket: could not acquire lock on socket file: %w", err)
	}
	fail := func(format string, err error) (net.Listener, error) {
		_ = lock.Close()
		return nil, fmt.Errorf("error opening Unix socket: "+format, err)
	}
	if err := os.RemoveAll(path); err != nil {
		return fail("could not overwrite socket file: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return fail("could not listen on socket file: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, perm); err != nil {
		_ = ln.Close()
		return fail("error setting socket file permissions: %w", err)
	}
	return &lockedListener{Listener: ln, lock: lock}, nil
}

func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("flock %s: %w", path, err)
	}
	return f, nil
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

// ListenTCP listens on addr: "host:port", or a bare port bound on 0.0.0.0
// as upstream's tcplisten does. With tlsConfig, accepted connections are
// *tls.Conn and ServeConn runs their handshake.
func ListenTCP(addr string, tlsConfig *tls.Config) (net.Listener, error) {
	if !strings.Contains(addr, ":") {
		addr = "0.0.0.0:" + addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("error listening on TCP socket: %w", err)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return ln, nil
}
