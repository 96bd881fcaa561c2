package interop

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// relayFrame is one backend message seen by a tcpRelay.
type relayFrame struct {
	FromDialer bool   // sent by the side that connected to the relay
	Len        int    // the frame's length
	Data       []byte // its first relayMaxFrameLen bytes
}

// Bounds of what a relay records (the copy itself is unbounded).
const (
	relayMaxFrames   = 1 << 15
	relayMaxFrameLen = 512
)

// tcpRelay is a TCP proxy in front of a tcp-listener that parses the
// 2-byte little-endian framing of docs/protocol.md §3.2 and records every frame in both
// directions, to show exactly what each side put on the wire.
type tcpRelay struct {
	t      *testing.T
	ln     net.Listener
	target string

	// hold, when set, delays connecting accepted clients to target until
	// it is closed (done ends the wait on close).
	hold chan struct{}
	done chan struct{}

	mu       sync.Mutex
	frames   []relayFrame
	accepted int // client connections accepted
	conns    []net.Conn
	closed   bool
	wg       sync.WaitGroup
}

// newTCPRelay listens on 127.0.0.1 and forwards every connection to target.
// It is closed in t.Cleanup.
func newTCPRelay(t *testing.T, target string) *tcpRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relay listen: %v", err)
	}
	return startRelay(t, &tcpRelay{t: t, ln: ln, target: target, done: make(chan struct{})})
}

// newHeldRelay is newTCPRelay whose clients reach target only after
// release is called; until then they are accepted and their bytes wait in
// the socket buffers.
func newHeldRelay(t *testing.T, target string) (r *tcpRelay, release func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("relay listen: %v", err)
	}
	hold := make(chan struct{})
	var once sync.Once
	r = startRelay(t, &tcpRelay{t: t, ln: ln, target: target, hold: hold, done: make(chan struct{})})
	return r, func() { once.Do(func() { close(hold) }) }
}

func startRelay(t *testing.T, r *tcpRelay) *tcpRelay {
	r.wg.Add(1)
	go r.acceptLoop()
	t.Cleanup(r.close)
	return r
}

// Addr is the relay's listening address.
func (r *tcpRelay) Addr() string { return r.ln.Addr().String() }

// Accepted is the number of client connections accepted so far.
func (r *tcpRelay) Accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted
}

// Frames returns a copy of the frames recorded so far.
func (r *tcpRelay) Frames() []relayFrame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]relayFrame(nil), r.frames...)
}

func (r *tcpRelay) close() {
	r.mu.Lock()
	r.closed = true
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	close(r.done)
	r.ln.Close()
	r.wg.Wait()
}

func (r *tcpRelay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns = append(r.conns, c)
	return true
}

func (r *tcpRelay) acceptLoop() {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		if !r.track(in) {
			return
		}
		r.mu.Lock()
		r.accepted++
		r.mu.Unlock()
		if r.hold != nil {
			select {
			case <-r.hold:
			case <-r.done:
				return
			}
		}
		out, err := net.DialTimeout("tcp", r.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !r.track(out) {
			in.Close()
			return
		}
		r.wg.Add(2)
		go r.pipe(in, out, true)
		go r.pipe(out, in, false)
	}
}

// pipe copies frames from src to dst, recording each; on any error it
// closes both ends (as a real connection loss would).
func (r *tcpRelay) pipe(src, dst net.Conn, fromDialer bool) {
	defer r.wg.Done()
	defer src.Close()
	defer dst.Close()
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return
		}
		n := int(binary.LittleEndian.Uint16(hdr[:]))
		body := make([]byte, n)
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		r.record(fromDialer, body)
		if _, err := dst.Write(append(hdr[:], body...)); err != nil {
			return
		}
	}
}

func (r *tcpRelay) record(fromDialer bool, body []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.frames) >= relayMaxFrames {
		return
	}
	n := len(body)
	if n > relayMaxFrameLen {
		body = body[:relayMaxFrameLen]
	}
	r.frames = append(r.frames, relayFrame{FromDialer: fromDialer, Len: n, Data: body})
}

// describe renders frames for a failure message.
func describeFrames(fs []relayFrame) string {
	s := ""
	for i, f := range fs {
		dir := "listener→dialer"
		if f.FromDialer {
			dir = "dialer→listener"
		}
		d := f.Data
		if len(d) > 200 {
			d = d[:200]
		}
		s += fmt.Sprintf("\n  #%d %s len=%d %q", i, dir, f.Len, d)
	}
	return s
}
