package control

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/receptor-mesh/receptor/services/internal/unixsock"
)

// ListenUnix opens a control Unix socket the way upstream does (see
// unixsock.Listen): locked through "<path>.lock", mode perm, left in place
// at close. Errors carry upstream's "error opening Unix socket" prefix; a
// socket locked by another process gives upstream's exact text.
func ListenUnix(path string, perm os.FileMode) (net.Listener, error) {
	ln, err := unixsock.Listen(path, perm)
	if errors.Is(err, unixsock.ErrLocked) {
		return nil, fmt.Errorf("error opening Unix socket: could not acquire lock on socket file: %w", unixsock.ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("error opening Unix socket %s: %w", path, err)
	}
	return ln, nil
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
