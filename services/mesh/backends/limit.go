package backends

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// DefaultMaxConnections bounds the concurrent connections of one tcp or
// websocket listener (every connection holds two goroutines and queues).
const DefaultMaxConnections = 256

// capListener closes accepted connections beyond max concurrent ones at
// once, so a flood of connections cannot exhaust goroutines, memory or
// file descriptors; the connections already served are unaffected.
type capListener struct {
	net.Listener
	max    int64
	active atomic.Int64
	log    *slog.Logger
	// refused counts connections closed for being over the cap.
	refused atomic.Uint64
}

func newCapListener(ln net.Listener, maxConns int, log *slog.Logger) *capListener {
	if maxConns <= 0 {
		maxConns = DefaultMaxConnections
	}
	return &capListener{Listener: ln, max: int64(maxConns), log: log}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) > l.max {
			l.active.Add(-1)
			n := l.refused.Add(1)
			l.log.Debug("connection refused: listener at its connection limit", "remote", c.RemoteAddr().String(),
				"limit", l.max, "refused", n)
			_ = c.Close()
			continue
		}
		return &countedConn{Conn: c, l: l}, nil
	}
}

// countedConn gives its slot back on the first Close.
type countedConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.active.Add(-1) })
	return c.Conn.Close()
}

// SyscallConn exposes the file descriptor under c, so a session can write
// to it non-blocking (nbConn).
func (c *countedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}
