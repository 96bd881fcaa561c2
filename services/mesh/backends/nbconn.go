package backends

import (
	"net"
	"syscall"
)

// nbConn lets a goroutine that is not the session's writer write to a
// connection without ever blocking on it, so that a session reader that
// forwards a message can put it on the wire itself instead of waking the
// next session's writer goroutine (a cross-core wake-up per hop, which
// dominates a small message's latency through a node).
//
// In non-blocking mode a Write puts what the socket takes now on the wire
// and keeps the rest as a backlog, reporting the whole of p as written;
// the session's writer goroutine later writes the backlog in blocking
// mode, before anything else. Blocking mode (the default, and what the
// writer goroutine, TLS handshakes and close alerts use) is a plain Write
// after the backlog. Because every byte goes through Write in order, TLS
// above it and the framing above that see an ordinary stream.
//
// Only the holder of the session's write lock switches the mode, and the
// backlog is bounded by what one direct write may carry (directWriteBytes,
// plus a TLS record's overhead per record).
type nbConn struct {
	net.Conn
	raw syscall.RawConn // nil: the platform or connection cannot write non-blocking

	writeMode
	backlog []byte
}

// newNBConn wraps c; a connection without a raw file descriptor (or a
// platform without non-blocking writes) always writes blocking.
func newNBConn(c net.Conn) *nbConn {
	nc := &nbConn{Conn: c}
	nc.blocking = true
	if sc, ok := c.(syscall.Conn); ok && nonblockingWrites {
		if raw, err := sc.SyscallConn(); err == nil {
			nc.raw = raw
		}
	}
	return nc
}

// canDirect reports whether writes may go non-blocking.
func (c *nbConn) canDirect() bool { return c.raw != nil }

// oneAtATime: a stream write carries any number of messages.
func (c *nbConn) oneAtATime() bool { return false }

// flush writes the backlog, blocking until it is on the wire.
func (c *nbConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *nbConn) flushLocked() error {
	if len(c.backlog) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.backlog)
	c.dropBacklogLocked()
	return err
}

func (c *nbConn) dropBacklogLocked() {
	if cap(c.backlog) > 4*directWriteBytes {
		c.backlog = nil // an outsized write passed; do not keep its buffer
	} else {
		c.backlog = c.backlog[:0]
	}
	c.pending.Store(false)
}

func (c *nbConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocking || c.raw == nil {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		return c.Conn.Write(p)
	}
	rest := p
	if len(c.backlog) == 0 {
		n, err := writeNonblocking(c.raw, p)
		if err != nil {
			return n, &net.OpError{Op: "write", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
		}
		rest = p[n:]
	}
	if len(rest) > 0 {
		c.backlog = append(c.backlog, rest...)
		c.pending.Store(true)
	}
	return len(p), nil
}
