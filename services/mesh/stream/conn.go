package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/receptor-mesh/receptor/services/mesh"
)

// Teardown after both stream directions are finished. A CONNECTION_CLOSE
// makes the peer's QUIC stack drop data its application has not read yet,
// and nothing on the wire says when the peer's application has read it. So
// only the dialer closes (as upstream's remote-work client does), and only
// once it has read the listener's FIN — the listener has then consumed what
// it needed — and the connection has sent nothing for a few probe timeouts
// (quic-go does not say when our FIN was acknowledged; unacknowledged data
// would have been retransmitted in that time), at least lingerMinQuiet. The
// listener side only sends its FIN, like upstream, and lets the dialer (or
// the idle timeout, or a listener or node shutdown) end the connection.
const (
	lingerPoll     = 20 * time.Millisecond
	lingerMinQuiet = time.Second
	lingerMax      = 10 * time.Second
	drainMin       = 50 * time.Millisecond // see drain
	drainMax       = time.Second
	maxAckDelay    = 26 * time.Millisecond
)

// Conn is one mesh stream: the first bidirectional stream of a QUIC
// connection. It implements net.Conn; Close sends FIN, stops reading and
// then tears the QUIC connection down once the peer has our data.
type Conn struct {
	qc     *quic.Conn
	qs     *quic.Stream
	local  mesh.Addr
	remote mesh.Addr
	log    *slog.Logger

	// wmu serialises Write with the FIN: quic-go forbids closing the send
	// side during a Write, while net.Conn wants Close to end a blocked Write.
	wmu sync.Mutex

	mu        sync.Mutex
	readDone  bool // peer's FIN read, or reading cancelled
	writeDone bool // our FIN sent
	closed    bool // Close or CloseConnection called
	finished  chan struct{}

	ended chan struct{} // closed when the QUIC connection is gone and cleaned up

	dialer bool // we opened the connection: only the dialer closes it (see linger)
}

// newConn wraps an established stream and starts its owner goroutine, which
// runs until the QUIC connection ends and then calls cleanup.
func newConn(qc *quic.Conn, qs *quic.Stream, local, remote mesh.Addr, log *slog.Logger, dialer bool, cleanup func()) *Conn {
	c := &Conn{
		qc: qc, qs: qs, local: local, remote: remote, log: log, dialer: dialer,
		finished: make(chan struct{}),
		ended:    make(chan struct{}),
	}
	go c.run(cleanup)
	return c
}

func (c *Conn) run(cleanup func()) {
	quicStats.open.Add(1)
	defer close(c.ended)
	defer func() {
		c.drain()
		quicStats.lost.Add(c.qc.ConnectionStats().PacketsLost)
		quicStats.open.Add(-1)
		cleanup()
	}()
	select {
	case <-c.qc.Context().Done():
		return
	case <-c.finished:
	}
	if !c.dialer {
		<-c.qc.Context().Done()
		return
	}
	c.linger()
}

// drain keeps a dialer's ephemeral service bound for a short draining
// period after we closed the connection (RFC 9000 §10.2): the peer's
// packets still in flight then reach our closed connection, which answers
// with CONNECTION_CLOSE, instead of an unbound service, whose "service
// unknown" would make the peer see that instead of our close reason.
func (c *Conn) drain() {
	if !c.dialer {
		return
	}
	var appErr *quic.ApplicationError
	if err := context.Cause(c.qc.Context()); !errors.As(err, &appErr) || appErr.Remote {
		return
	}
	st := c.qc.ConnectionStats()
	pto := st.SmoothedRTT + max(4*st.MeanDeviation, time.Millisecond) + maxAckDelay
	time.Sleep(min(max(3*pto, drainMin), drainMax))
}

// linger waits until the connection is quiet, then closes it normally.
func (c *Conn) linger() {
	tick := time.NewTicker(lingerPoll)
	defer tick.Stop()
	start := time.Now()
	lastSent := c.qc.ConnectionStats().PacketsSent
	quietSince := start
	for {
		select {
		case <-c.qc.Context().Done():
			return
		case now := <-tick.C:
			st := c.qc.ConnectionStats()
			if st.PacketsSent != lastSent {
				lastSent, quietSince = st.PacketsSent, now
			}
			pto := st.SmoothedRTT + max(4*st.MeanDeviation, time.Millisecond) + maxAckDelay
			if now.Sub(quietSince) >= max(4*pto, lingerMinQuiet) || now.Sub(start) >= lingerMax {
				_ = c.qc.CloseWithError(codeNormalClose, reasonNormal)
				return
			}
		}
	}
}

// update records a finished direction and starts teardown when both are.
func (c *Conn) update(read, write bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	was := c.readDone && c.writeDone
	c.readDone = c.readDone || read
	c.writeDone = c.writeDone || write
	if !was && c.readDone && c.writeDone {
		close(c.finished)
	}
}

// Read reads stream data; io.EOF means the peer half-closed.
func (c *Conn) Read(b []byte) (int, error) {
	n, err := c.qs.Read(b)
	if err != nil {
		if c.isClosed() {
			return n, net.ErrClosed
		}
		if !isTimeout(err) {
			c.update(true, false)
		}
	}
	return n, err
}

// Write writes stream data.
func (c *Conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.isClosed() {
		return 0, net.ErrClosed
	}
	n, err := c.qs.Write(b)
	if err != nil {
		if c.isClosed() {
			return n, net.ErrClosed
		}
		if !isTimeout(err) {
			c.update(false, true) // the peer stopped reading or the connection is gone
		}
	}
	return n, err
}

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// Close ends both directions for the application: it sends FIN after any
// buffered data, stops reading (STOP_SENDING 499 if the peer's data was not
// read to the end) and closes the QUIC connection in the background once the
// peer has everything. Use CloseWrite for a half-close.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	readDone := c.readDone
	c.mu.Unlock()
	if !readDone {
		c.qs.CancelRead(codeCancelRead) // also ends a blocked Read
	}
	err := c.finishWrite(true)
	c.update(true, true)
	if err != nil {
		return fmt.Errorf("stream: close %s: %w", c.remote, err)
	}
	return nil
}

// CloseWrite half-closes the connection: FIN on our direction, reading
// continues until the peer's FIN.
func (c *Conn) CloseWrite() error {
	err := c.finishWrite(false)
	c.update(false, true)
	if err != nil {
		return fmt.Errorf("stream: close write to %s: %w", c.remote, err)
	}
	return nil
}

// finishWrite sends FIN after the current Write; with interrupt it first
// ends a blocked Write through an expired write deadline.
func (c *Conn) finishWrite(interrupt bool) error {
	if !c.wmu.TryLock() {
		if interrupt {
			_ = c.qs.SetWriteDeadline(time.Unix(1, 0))
		}
		c.wmu.Lock()
	}
	defer c.wmu.Unlock()
	return c.qs.Close()
}

// CancelRead stops reading: the peer's writes fail (STOP_SENDING 499).
func (c *Conn) CancelRead() {
	c.qs.CancelRead(codeCancelRead)
	c.update(true, false)
}

// CloseConnection closes the whole QUIC connection at once
// (CONNECTION_CLOSE 0 "normal close"); unsent data is discarded.
func (c *Conn) CloseConnection() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.qc.CloseWithError(codeNormalClose, reasonNormal)
}

// abort closes the QUIC connection with an error code and reason.
func (c *Conn) abort(code quic.ApplicationErrorCode, reason string) {
	_ = c.qc.CloseWithError(code, reason)
}

// Done is closed when the QUIC connection has ended and its resources
// (for a dialer: the ephemeral service) are released.
func (c *Conn) Done() <-chan struct{} { return c.ended }

// Wait blocks until Done or ctx ends.
func (c *Conn) Wait(ctx context.Context) error {
	select {
	case <-c.ended:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stream: wait for %s to end: %w", c.remote, context.Cause(ctx))
	}
}

// LocalAddr is our mesh address (for a dialer: the ephemeral service).
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the peer's mesh address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error { return c.qs.SetDeadline(t) }

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.qs.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.qs.SetWriteDeadline(t) }

// ConnectionState reports the TLS state of the QUIC handshake.
func (c *Conn) ConnectionState() tls.ConnectionState { return c.qc.ConnectionState().TLS }

// IsStopSending reports whether err came from the peer cancelling its read
// side (STOP_SENDING) or our own CancelRead.
func IsStopSending(err error) bool {
	var se *quic.StreamError
	return errors.As(err, &se) && se.ErrorCode == codeCancelRead
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

var _ io.ReadWriteCloser = (*Conn)(nil)
