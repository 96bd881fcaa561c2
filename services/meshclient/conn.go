package meshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// MaxChunk is the largest data message a Conn sends (the router accepts up
// to 1 MiB, but sends at most 64 KiB; we stay symmetric).
const MaxChunk = 64 << 10

const (
	// writeBuffers chunks may wait for gRPC at once: enough to overlap
	// copying the next chunk with sending the previous one.
	writeBuffers = 2
	// closeLinger bounds how long Close waits for queued chunks to reach
	// gRPC before it ends the call anyway.
	closeLinger = 5 * time.Second
)

// errCallEnded is the write error after the router ended the call.
var errCallEnded = fmt.Errorf("the router ended the connection: %w", io.ErrClosedPipe)

// byteCall is the data phase of a Dial or Accept call.
type byteCall interface {
	send(p []byte) error // one data message; p is not kept after return
	recv() ([]byte, error)
	closeSend() error
}

type chunk struct {
	data []byte
	err  error
}

type writeItem struct {
	buf       []byte
	closeSend bool
}

// Conn is a mesh stream connection carried by a Dial or Accept call. It
// implements net.Conn; CloseWrite half-closes (the mesh peer reads EOF).
//
// Writes are copied into one of two 64 KiB buffers and sent by a writer
// goroutine, so Write returns once its bytes are queued (like a socket send
// buffer) and write deadlines work even while gRPC flow control blocks.
// Close ends the call at once, like closing a socket with unread data:
// for an orderly end, CloseWrite and Read until io.EOF first.
type Conn struct {
	call          byteCall
	cancel        context.CancelFunc
	local, remote mesh.Addr

	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	wg        sync.WaitGroup // reader and writer

	rmu     sync.Mutex // serializes Read; guards pending, readErr
	rdl     *deadline
	chunks  chan chunk
	pending []byte
	readErr error

	wmu         sync.Mutex // serializes Write and CloseWrite; guards writeClosed
	wdl         *deadline
	free        chan []byte
	queue       chan writeItem
	writeClosed bool
	writerDone  chan struct{}
	errMu       sync.Mutex
	writeErr    error // set by the writer
}

var _ net.Conn = (*Conn)(nil)

func newConn(call byteCall, cancel context.CancelFunc, local, remote mesh.Addr) *Conn {
	c := &Conn{
		call: call, cancel: cancel, local: local, remote: remote,
		closing:    make(chan struct{}),
		rdl:        newDeadline(),
		chunks:     make(chan chunk),
		wdl:        newDeadline(),
		free:       make(chan []byte, writeBuffers),
		queue:      make(chan writeItem, writeBuffers+1),
		writerDone: make(chan struct{}),
	}
	for range writeBuffers {
		c.free <- make([]byte, MaxChunk)
	}
	c.wg.Go(c.readLoop)
	c.wg.Go(c.writeLoop)
	return c
}

// readLoop receives chunks one at a time: gRPC flow control holds the
// rest, and through the router the mesh stream.
func (c *Conn) readLoop() {
	for {
		data, err := c.call.recv()
		if err == nil && len(data) == 0 {
			continue
		}
		select {
		case c.chunks <- chunk{data: data, err: err}:
		case <-c.closing:
			return
		}
		if err != nil {
			return
		}
	}
}

func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	for {
		var it writeItem
		select {
		case it = <-c.queue:
		case <-c.closing:
			// Close lets queued chunks go out first; see Close.
			select {
			case it = <-c.queue:
			default:
				return
			}
		}
		if it.closeSend {
			if c.getWriteErr() == nil {
				_ = c.call.closeSend()
			}
			return
		}
		if c.getWriteErr() == nil {
			if err := c.call.send(it.buf); err != nil {
				if errors.Is(err, io.EOF) {
					err = errCallEnded
				}
				c.errMu.Lock()
				c.writeErr = fmt.Errorf("meshclient: write to %s: %w", c.remote, err)
				c.errMu.Unlock()
			}
		}
		c.free <- it.buf[:cap(it.buf)]
	}
}

func (c *Conn) getWriteErr() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.writeErr
}

// Read reads data from the mesh peer; io.EOF once the peer closed its
// direction and the call ended with OK. Other call failures are returned as
// gRPC status errors.
func (c *Conn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if isClosed(c.closing) {
		return 0, c.opError("read", net.ErrClosed)
	}
	if c.rdl.passed() {
		return 0, c.opError("read", os.ErrDeadlineExceeded)
	}
	if len(c.pending) == 0 {
		if c.readErr != nil {
			return 0, c.readErr
		}
		if len(p) == 0 {
			return 0, nil
		}
		select {
		case ch := <-c.chunks:
			if ch.err != nil {
				if errors.Is(ch.err, io.EOF) {
					c.readErr = io.EOF
				} else {
					c.readErr = c.opError("read", ch.err)
				}
				return 0, c.readErr
			}
			c.pending = ch.data
		case <-c.rdl.wait():
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		case <-c.closing:
			return 0, c.opError("read", net.ErrClosed)
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// Write queues p for the mesh peer in chunks of at most MaxChunk bytes.
func (c *Conn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := 0
	for len(p) > 0 {
		if err := c.writeState(); err != nil {
			return n, err
		}
		var buf []byte
		select {
		case buf = <-c.free:
		case <-c.wdl.wait():
			return n, c.opError("write", os.ErrDeadlineExceeded)
		case <-c.closing:
			return n, c.opError("write", net.ErrClosed)
		}
		k := copy(buf, p)
		c.queue <- writeItem{buf: buf[:k]} // never blocks: one slot per buffer, plus the close marker
		n += k
		p = p[k:]
	}
	return n, nil
}

func (c *Conn) writeState() error {
	switch {
	case isClosed(c.closing):
		return c.opError("write", net.ErrClosed)
	case c.writeClosed:
		return c.opError("write", errors.New("write after CloseWrite"))
	case c.wdl.passed():
		return c.opError("write", os.ErrDeadlineExceeded)
	}
	return c.getWriteErr()
}

// CloseWrite half-closes the connection after the queued data: the mesh
// peer reads EOF; reading continues.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if isClosed(c.closing) {
		return c.opError("close write", net.ErrClosed)
	}
	if c.writeClosed {
		return nil
	}
	c.writeClosed = true
	c.queue <- writeItem{closeSend: true}
	return nil
}

// Close ends the connection. Chunks already queued by Write are handed to
// gRPC first (for at most closeLinger); then the call is cancelled.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing) // wakes blocked Read and Write calls
		linger := time.NewTimer(closeLinger)
		select {
		case <-c.writerDone:
		case <-linger.C:
		}
		linger.Stop()
		c.cancel()
		c.wg.Wait()
		c.rdl.stop()
		c.wdl.stop()
	})
	return nil
}

// LocalAddr is the local end as a mesh.Addr (for a dialed connection the
// router's ephemeral service; for an accepted one the listener's service).
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the mesh peer as a mesh.Addr.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl.set(t)
	c.wdl.set(t)
	return nil
}

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdl.set(t)
	return nil
}

// SetWriteDeadline sets the write deadline; it bounds the wait for a free
// send buffer.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wdl.set(t)
	return nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: mesh.Network, Source: c.local, Addr: c.remote, Err: err}
}

// dialCall and acceptCall adapt the generated streams to byteCall, reusing
// one request message (gRPC serializes it before SendMsg returns).
type dialCall struct {
	s    meshv1.MeshService_DialClient
	req  *meshv1.DialRequest
	data *meshv1.DialRequest_Data
}

func newDialCall(s meshv1.MeshService_DialClient) *dialCall {
	d := &meshv1.DialRequest_Data{}
	return &dialCall{s: s, req: &meshv1.DialRequest{Msg: d}, data: d}
}

func (d *dialCall) send(p []byte) error {
	d.data.Data = p
	err := d.s.Send(d.req)
	d.data.Data = nil
	return err
}

func (d *dialCall) recv() ([]byte, error) {
	resp, err := d.s.Recv()
	if err != nil {
		return nil, err
	}
	m, ok := resp.GetMsg().(*meshv1.DialResponse_Data)
	if !ok {
		return nil, errors.New("meshclient: router sent a second connected message")
	}
	return m.Data, nil
}

func (d *dialCall) closeSend() error { return d.s.CloseSend() }

type acceptCall struct {
	s    meshv1.MeshService_AcceptClient
	req  *meshv1.AcceptRequest
	data *meshv1.AcceptRequest_Data
}

func newAcceptCall(s meshv1.MeshService_AcceptClient) *acceptCall {
	d := &meshv1.AcceptRequest_Data{}
	return &acceptCall{s: s, req: &meshv1.AcceptRequest{Msg: d}, data: d}
}

func (a *acceptCall) send(p []byte) error {
	a.data.Data = p
	err := a.s.Send(a.req)
	a.data.Data = nil
	return err
}

func (a *acceptCall) recv() ([]byte, error) {
	resp, err := a.s.Recv()
	if err != nil {
		return nil, err
	}
	m, ok := resp.GetMsg().(*meshv1.AcceptResponse_Data)
	if !ok {
		return nil, errors.New("meshclient: router sent a second accepted message")
	}
	return m.Data, nil
}

func (a *acceptCall) closeSend() error { return a.s.CloseSend() }
