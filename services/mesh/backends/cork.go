package backends

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
)

// corkFlushBytes is how much a corked connection holds before it writes
// anyway.
const corkFlushBytes = 64 << 10

// corkConn lets a framing library that writes every message with its own
// Write call (gorilla/websocket flushes each message) share one write
// syscall for a batch: between cork and uncork, writes are appended to a
// buffer, and uncork writes the buffer at once. Outside cork it is the
// plain connection. The bytes on the wire are the same either way; only
// their grouping into syscalls changes.
//
// It sits under TLS when there is TLS (records are then buffered).
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
}

func newCorkConn(c net.Conn) *corkConn { return &corkConn{Conn: c} }

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= corkFlushBytes {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// cork starts buffering writes.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what was buffered and stops buffering.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 4*corkFlushBytes {
		c.buf = nil // an outsized message passed; do not keep its buffer
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

// corkOf finds the corkConn under c (directly or under TLS), or nil.
func corkOf(c net.Conn) *corkConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	cc, _ := c.(*corkConn)
	return cc
}

// corkListener hands out corked connections (plain until corked).
type corkListener struct{ net.Listener }

func (l corkListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newCorkConn(c), nil
}

// readPooled reads one whole message from r (a websocket message reader)
// into a pooled buffer when it fits (see MessageBuffer), else into a
// buffer of its own; the caller owns the result.
func readPooled(r io.Reader) ([]byte, error) {
	buf := MessageBuffer()[:PooledMessageCap]
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		if errors.Is(err, io.EOF) {
			return buf[:n], nil
		}
		if err != nil {
			ReleaseMessage(buf)
			return nil, err
		}
		if n == len(buf) { // larger than a pooled buffer: grow (the reader bounds the size)
			big := make([]byte, 2*len(buf))
			copy(big, buf)
			ReleaseMessage(buf)
			buf = big
		}
	}
}
