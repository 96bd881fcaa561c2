package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// scriptConn is one end of a bridge held in memory: Read returns src in
// pieces of at most piece bytes and then readErr (io.EOF for a clean end),
// Write appends to got. Nothing blocks, so an input costs no sockets and no
// goroutines besides Bridge's own.
type scriptConn struct {
	name    string
	mu      sync.Mutex
	src     []byte
	piece   int
	readErr error
	got     bytes.Buffer
	shut    bool // CloseWrite was called
	closed  bool
}

func (c *scriptConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	if len(c.src) == 0 {
		return 0, c.readErr
	}
	n := copy(p[:min(len(p), c.piece)], c.src)
	c.src = c.src[n:]
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.shut {
		return 0, net.ErrClosed
	}
	return c.got.Write(p)
}

func (c *scriptConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *scriptConn) LocalAddr() net.Addr              { return scriptAddr(c.name) }
func (c *scriptConn) RemoteAddr() net.Addr             { return scriptAddr(c.name) }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// halfCloser is a scriptConn that can half-close (as TCP and mesh streams
// can); a bare *scriptConn cannot.
type halfCloser struct{ *scriptConn }

func (h halfCloser) CloseWrite() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return net.ErrClosed
	}
	h.shut = true
	return nil
}

type scriptAddr string

func (a scriptAddr) Network() string { return "script" }
func (a scriptAddr) String() string  { return string(a) }

// maxBridgeInput bounds the bytes of each direction, so that one input
// stays cheap even when read one byte at a time.
const maxBridgeInput = 16 << 10

var (
	errInjectedA = errors.New("injected read error at a")
	errInjectedB = errors.New("injected read error at b")
)

// FuzzBridge drives Bridge with arbitrary bytes in both directions, read in
// arbitrary pieces, with ends that can or cannot half-close and reads that
// end cleanly or fail. Bytes arrive unchanged and in order (all of them
// when both ends half-close and nothing fails), the counts are the bytes
// delivered, a failure is reported as its own error and a clean end as
// nil, and both connections are closed when Bridge returns.
func FuzzBridge(f *testing.F) {
	f.Add([]byte("hello"), []byte("world"), uint16(1), uint8(3))
	f.Add([]byte{}, []byte{0, 1, 2}, uint16(0), uint8(3))
	f.Add(pattern(maxBridgeInput, 3), []byte{}, uint16(4096), uint8(3))
	f.Add([]byte("request"), []byte("reply"), uint16(2), uint8(1))
	f.Add([]byte("request"), []byte("reply"), uint16(3), uint8(0))
	f.Add([]byte("a"), []byte("bb"), uint16(1), uint8(7))
	f.Add(pattern(3000, 1), pattern(5000, 2), uint16(700), uint8(15))
	f.Fuzz(func(t *testing.T, toB, toA []byte, piece uint16, mode uint8) {
		toB, toA = toB[:min(len(toB), maxBridgeInput)], toA[:min(len(toA), maxBridgeInput)]
		p := int(piece)%8192 + 1
		a := &scriptConn{name: "a", src: toB, piece: p, readErr: errEOF(mode&4 == 0, errInjectedA)}
		b := &scriptConn{name: "b", src: toA, piece: p, readErr: errEOF(mode&8 == 0, errInjectedB)}
		var ca, cb net.Conn = a, b
		if mode&1 != 0 {
			ca = halfCloser{a}
		}
		if mode&2 != 0 {
			cb = halfCloser{b}
		}
		aToB, bToA, err := Bridge(context.Background(), ca, cb)

		atB, atA := b.got.Bytes(), a.got.Bytes()
		if !bytes.HasPrefix(toB, atB) || !bytes.HasPrefix(toA, atA) {
			t.Fatalf("bytes changed crossing the bridge")
		}
		if aToB != int64(len(atB)) || bToA != int64(len(atA)) {
			t.Fatalf("Bridge counts %d, %d; delivered %d, %d", aToB, bToA, len(atB), len(atA))
		}
		if !a.closed || !b.closed {
			t.Fatalf("Bridge returned with a connection open (a %v, b %v)", a.closed, b.closed)
		}
		// Only an injected read error is a failure of the bridge; without
		// half-close a full close may end the bridge before the failing read.
		injected := mode&12 != 0
		switch {
		case err != nil && !errors.Is(err, errInjectedA) && !errors.Is(err, errInjectedB):
			t.Fatalf("Bridge = %v, want nil or an injected read error", err)
		case err != nil && !injected:
			t.Fatalf("clean ends: Bridge = %v", err)
		case mode&3 == 3 && injected && err == nil:
			t.Fatalf("a read failed between half-closing ends but Bridge = nil")
		case mode&3 == 3 && !injected:
			if len(atB) != len(toB) || len(atA) != len(toA) {
				t.Fatalf("half-closing ends: %d/%d and %d/%d bytes delivered", len(atB), len(toB), len(atA), len(toA))
			}
			if !a.shut || !b.shut {
				t.Fatalf("a clean EOF did not half-close the other end (a %v, b %v)", a.shut, b.shut)
			}
		}
	})
}

// errEOF is io.EOF for a clean end, else the injected error.
func errEOF(clean bool, injected error) error {
	if clean {
		return io.EOF
	}
	return injected
}
