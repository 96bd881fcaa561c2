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
	// minWriteBuffer is the smallest write buffer made.
	minWriteBuffer = 4 << 10
	// closeLinger bounds how long Close waits for queued chunks to reach
	// gRPC before it ends the call anyway.
	closeLinger = 5 * time.Second
)

// errCallEnded is the write error after the router ended the call.
var errCallEnded = fmt.Errorf("the router ended the connection: %w", io.ErrClosedPipe)

// errPeerEOF is what byteCall.recv returns for the router's eof message:
// the mesh peer closed its direction, the call goes on.
var errPeerEOF = errors.New("mesh peer closed its direction")

// byteCall is the data phase of a Dial or Accept call.
type byteCall interface {
	send(p []byte) error // one data message; p is not kept after return
	// recv returns the next data message, errPeerEOF for eof, or the end
	// of the call (io.EOF for OK).
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
// implements net.Conn with TCP's half-close rules: CloseWrite half-closes
// (the mesh peer reads EOF), and once the peer has closed its direction
// Read returns io.EOF while Write keeps working.
//
// Writes are copied into one of two 64 KiB buffers and sent by a writer
// goroutine, so Write returns once its bytes are queued (like a socket send
// buffer) and write deadlines work even while gRPC flow control blocks.
//
// Close after the peer's EOF is orderly, like closing a socket that has
// read everything: queued data goes out, the call is half-closed, and Close
// waits (at most closeLinger) for the router to confirm delivery. Before
// the peer's EOF, Close ends the call at once, like closing a socket with
// unread data.
type Conn struct {
	call          byteCall
	cancel        context.CancelFunc
	local, remote mesh.Addr

	closing   chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup // reader and writer

	deadlines

	rmu     sync.Mutex // serializes Read; guards pending, readErr
	chunks  chan chunk
	pending []byte
	readErr error

	peerEOF   chan struct{} // closed by the reader at the router's eof message
	callEnded chan struct{} // closed by the reader once it saw the call's end (or gave up at Close)

	wmu         sync.Mutex // serializes Write and CloseWrite; guards writeClosed
	free        chan []byte
	queue       chan writeItem
	writeClosed bool
	writerDone  chan struct{}
	errMu       sync.Mutex
	writeErr    error // set by the writer
	endErr      error // a non-OK end of the call after eof; set by the reader
}

var _ net.Conn = (*Conn)(nil)

func newConn(call byteCall, cancel context.CancelFunc, local, remote mesh.Addr) *Conn {
	c := &Conn{
		call: call, cancel: cancel, local: local, remote: remote,
		closing:    make(chan struct{}),
		deadlines:  newDeadlines(),
		chunks:     make(chan chunk),
		peerEOF:    make(chan struct{}),
		callEnded:  make(chan struct{}),
		free:       make(chan []byte, writeBuffers),
		queue:      make(chan writeItem, writeBuffers+1),
		writerDone: make(chan struct{}),
	}
	// The buffers are made at the first writes, as large as those need
	// (Write): most connections of remote work carry a line or two, and
	// two 64 KiB buffers made up front per connection were 1.4 % of the
	// all-in-one's CPU in a burst of 200 small units over 2 hops (perf).
	for range writeBuffers {
		c.free <- nil
	}
	c.wg.Go(c.readLoop)
	c.wg.Go(c.writeLoop)
	return c
}

// readLoop receives chunks one at a time: gRPC flow control holds the
// rest, and through the router the mesh stream.
func (c *Conn) readLoop() {
	defer close(c.callEnded)
	for {
		data, err := c.call.recv()
		if errors.Is(err, errPeerEOF) {
			// Read has taken every earlier chunk (the channel is
			// unbuffered), so it may report io.EOF once this is closed.
			close(c.peerEOF)
			c.awaitEnd()
			return
		}
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

// awaitEnd receives the end of the call after eof: OK once the router has
// our half-close, or the status of a failed delivery, which Write and
// Close then report.
func (c *Conn) awaitEnd() {
	_, err := c.call.recv()
	if errors.Is(err, io.EOF) {
		return
	}
	if err == nil || errors.Is(err, errPeerEOF) {
		err = errors.New("the router sent more after eof")
		c.cancel() // a broken contract: give up on the call
	}
	c.errMu.Lock()
	c.endErr = err
	c.errMu.Unlock()
}

func (c *Conn) writeLoop() {
	defer close(c.writerDone)
	for {
		var it writeItem
		select {
		case it = <-c.queue:
		case <-c.closing:
			// Close lets queued chunks go out first; see Close. After the
			// peer's EOF it also half-closes, for an orderly end.
			select {
			case it = <-c.queue:
			default:
				if isClosed(c.peerEOF) && c.getWriteErr() == nil {
					_ = c.call.closeSend()
				}
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
					// The real reason is the call's status. After eof the
					// reader is only waiting for it, so it comes at once.
					if isClosed(c.peerEOF) {
						select {
						case <-c.callEnded:
						case <-c.closing:
						}
					}
					err = firstErr(c.getEndErr(), errCallEnded)
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

func (c *Conn) getEndErr() error {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	return c.endErr
}

// Read reads data from the mesh peer; io.EOF once the peer closed its
// direction (Write keeps working). Call failures are returned as gRPC
// status errors.
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
		case <-c.peerEOF:
			c.readErr = io.EOF
			return 0, io.EOF
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
		if len(buf) < len(p) && len(buf) < MaxChunk {
			buf = make([]byte, min(MaxChunk, max(len(p), 2*len(buf), minWriteBuffer)))
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
	if err := c.getEndErr(); err != nil {
		return c.opError("write", err)
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
// gRPC first; after the peer's EOF the call is half-closed and Close waits
// for its end, returning an error if the router could not deliver
// everything to the peer. Both waits together take at most closeLinger;
// then the call is cancelled.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing) // wakes blocked Read and Write calls
		linger := time.NewTimer(closeLinger)
		defer linger.Stop()
		lingered := false
		select {
		case <-c.writerDone:
		case <-linger.C:
			lingered = true
		}
		if !lingered && isClosed(c.peerEOF) {
			select {
			case <-c.callEnded:
				if err := firstErr(c.getEndErr(), c.getWriteErr()); err != nil {
					c.closeErr = c.opError("close", err)
				}
			case <-linger.C:
				c.closeErr = c.opError("close", errors.New("the router did not confirm delivery in time"))
			}
		}
		c.cancel()
		c.wg.Wait()
		c.deadlines.stop()
	})
	return c.closeErr
}

// LocalAddr is the local end as a mesh.Addr (for a dialed connection the
// router's ephemeral service; for an accepted one the listener's service).
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the mesh peer as a mesh.Addr.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

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
	switch m := resp.GetMsg().(type) {
	case *meshv1.DialResponse_Data:
		return m.Data, nil
	case *meshv1.DialResponse_Eof:
		return nil, errPeerEOF
	case nil:
		return nil, nil // a member newer than this client: skipped
	}
	return nil, errors.New("meshclient: router sent a second connected message")
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
	switch m := resp.GetMsg().(type) {
	case *meshv1.AcceptResponse_Data:
		return m.Data, nil
	case *meshv1.AcceptResponse_Eof:
		return nil, errPeerEOF
	case nil:
		return nil, nil // a member newer than this client: skipped
	}
	return nil, errors.New("meshclient: router sent a second accepted message")
}

func (a *acceptCall) closeSend() error { return a.s.CloseSend() }
