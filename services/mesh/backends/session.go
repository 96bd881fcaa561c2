package backends

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// Queue bounds shared by the transports. Each session holds at most
// recvQueueLen received and sendQueueLen unsent messages (of at most
// MaxMessageSize bytes each, except websocket receive, see wsReadLimit).
const (
	recvQueueLen = 32
	// recvQueueBytes and sendQueueBytes bound the same queues in bytes: a
	// peer sending large messages (a websocket message may be up to
	// wsReadLimit) cannot make a session hold more than this. A reader
	// waits for room (backpressure on the transport); Enqueue drops.
	recvQueueBytes = 2 << 20
	sendQueueBytes = 4 << 20
	// sendQueueLen is the mesh's only data queue toward a stream peer
	// (Enqueue bypasses the mesh's own), so it matches the mesh's default
	// SendQueueLen: a shorter one drops QUIC packets in bursts.
	sendQueueLen = 256
	// maxWriteBatch caps how many queued messages one flush coalesces.
	maxWriteBatch = 64
	// closeFlushTimeout bounds the best-effort write of messages queued
	// before Close (typically a Reject, docs/protocol.md §4.6).
	closeFlushTimeout = time.Second
)

// session is the Session of every transport. Received messages arrive on
// in (filled by a reader goroutine or, for UDP listeners, by the listener's
// receive loop). Sends go through out to a writer goroutine that hands
// them over in batches (one write for TCP and websocket, one sendmmsg for
// UDP).
type session struct {
	remote  string
	in      chan []byte
	out     chan []byte
	inBytes byteGate // bytes queued in in
	// outBytes counts the bytes queued in out.
	outBytes byteGate
	// sizeCheck, when set, vets every message before it is queued (UDP's
	// smaller bound, which ends the session as upstream does).
	sizeCheck func(msg []byte) error
	// onFail runs once when the session ends, for any reason; it must not
	// block (it unblocks the transport, e.g. sets a deadline or closes).
	onFail func()

	closing   chan struct{}
	closeOnce sync.Once
	errMu     sync.Mutex
	err       error

	// Direct writing (see useDirectWrites): a sender whose message finds
	// nobody writing puts it on the wire itself, non-blocking, instead of
	// waking the writer goroutine, which then runs only when kicked. wmu
	// serialises every write to the transport and guards batch.
	direct directConn
	write  func(batch [][]byte) error
	wmu    sync.Mutex
	kick   chan struct{}
	batch  [][]byte
	// lastQueued is when (monotime) a message last joined the queue.
	lastQueued atomic.Int64

	// Direct reading (see useDirectReads): Recv reads the connection
	// itself instead of taking what a reader goroutine queued in in.
	rd directReader
	// rdl is the read deadline Recv last set (the receiver's alone).
	rdl time.Time
	// onClosed runs once after closing is closed; a direct-reading
	// transport uses it to cut a blocked read short.
	onClosed func()
}

// directConn is the connection end a direct-writing session writes
// through (nbConn for streams, udpSender for datagrams): writes are
// non-blocking unless setBlocking(true), and what a non-blocking write
// could not put on the wire stays as a backlog, written before anything
// else.
type directConn interface {
	canDirect() bool
	// backlogged reports whether a backlog waits for the socket.
	backlogged() bool
	// setBlocking switches the mode; only the holder of wmu calls it.
	setBlocking(blocking bool)
	// flush writes the backlog, blocking.
	flush() error
	// oneAtATime reports that non-blocking writes cost a syscall per
	// message where the writer's batches cost one per batch (UDP's
	// sendmmsg): only a lone queued message is then written directly.
	oneAtATime() bool
}

// writeMode is what both directConns keep the same way: the mode, and
// whether a backlog waits. mu also guards the backlog of the embedding type.
type writeMode struct {
	mu       sync.Mutex
	blocking bool
	pending  atomic.Bool // a backlog waits; read without mu
}

func (m *writeMode) backlogged() bool { return m.pending.Load() }

func (m *writeMode) setBlocking(b bool) {
	m.mu.Lock()
	m.blocking = b
	m.mu.Unlock()
}

// directReader is a connection the receiver reads messages from itself.
// A read cut short by the deadline must leave the reader where it was, so
// that the next read resumes the same message (frameReader does).
type directReader interface {
	readMessage() ([]byte, error)
	// buffered reports whether a whole message is buffered, so that
	// readMessage would return without touching the connection.
	buffered() bool
	SetReadDeadline(t time.Time) error
}

func newSession(remote string) *session {
	s := &session{
		remote:  remote,
		in:      make(chan []byte, recvQueueLen),
		out:     make(chan []byte, sendQueueLen),
		closing: make(chan struct{}),
	}
	s.inBytes.limit = recvQueueBytes
	s.outBytes.limit = sendQueueBytes
	return s
}

// fail ends the session with err (the first cause wins).
func (s *session) fail(err error) {
	s.closeOnce.Do(func() {
		s.errMu.Lock()
		s.err = err
		s.errMu.Unlock()
		// onFail first: whoever sees closing also sees its effects.
		if s.onFail != nil {
			s.onFail()
		}
		close(s.closing)
		// After: a direct reader checks closing after each deadline it
		// sets, so it cannot set one past this one's and miss the close.
		if s.onClosed != nil {
			s.onClosed()
		}
	})
}

// useDirectWrites makes senders write through c themselves when nobody
// else is writing (see nbConn); write is the transport's batch writer,
// which ends in c. Called before the writer starts; a nil c, or one that
// cannot write non-blocking, leaves the session as it was.
func (s *session) useDirectWrites(c directConn, write func(batch [][]byte) error) {
	if c == nil || !c.canDirect() {
		return
	}
	s.direct, s.write = c, write
	s.kick = make(chan struct{}, 1)
	s.batch = make([][]byte, 0, maxWriteBatch)
}

// useDirectReads makes Recv read r itself; onClosed unblocks a read in
// progress when the session ends. Called before the session is handed out.
func (s *session) useDirectReads(r directReader) {
	s.rd = r
	s.onClosed = func() { _ = r.SetReadDeadline(aLongTimeAgo) }
}

// aLongTimeAgo is a deadline that has always passed.
var aLongTimeAgo = time.Unix(1, 0)

// cause reports why the session ended.
func (s *session) cause() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func (s *session) Close() error {
	s.fail(ErrSessionClosed)
	return nil
}

func (s *session) RemoteAddr() string { return s.remote }

func (s *session) Send(msg []byte) error {
	if len(msg) == 0 {
		return fmt.Errorf("send to %s: %w", s.remote, ErrEmptyMessage)
	}
	select {
	case <-s.closing:
		return s.cause()
	default:
	}
	if s.sizeCheck != nil {
		if err := s.sizeCheck(msg); err != nil {
			return err
		}
	}
	if len(msg) > MaxMessageSize {
		return fmt.Errorf("send %d bytes to %s: %w", len(msg), s.remote, ErrMessageTooLarge)
	}
	cp := make([]byte, len(msg))
	copy(cp, msg)
	if !s.outBytes.take(len(cp), s.closing, nil) {
		return s.cause()
	}
	select {
	case s.out <- cp:
		s.queued()
		return nil
	case <-s.closing:
		s.outBytes.release(len(cp))
		return s.cause()
	}
}

// Enqueue implements Enqueuer.
func (s *session) Enqueue(msg []byte) (bool, error) { return s.enqueue(msg, nil, false, false) }

// EnqueueWait implements Enqueuer.
func (s *session) EnqueueWait(msg []byte, cancel <-chan struct{}) (bool, error) {
	return s.enqueue(msg, cancel, true, false)
}

// EnqueueHeld implements HeldEnqueuer.
func (s *session) EnqueueHeld(msg []byte) (bool, error) { return s.enqueue(msg, nil, false, true) }

// Flush implements HeldEnqueuer.
func (s *session) Flush() {
	if s.direct != nil && s.outBytes.held() > 0 {
		s.flush()
	}
}

// Buffered implements Buffered.
func (s *session) Buffered() bool {
	if s.rd != nil {
		return s.rd.buffered()
	}
	return len(s.in) > 0
}

// enqueue queues msg; hold leaves a direct-writing session's queue for
// Flush instead of writing it now.
func (s *session) enqueue(msg []byte, cancel <-chan struct{}, wait, hold bool) (bool, error) {
	if err := checkFrameLen(len(msg)); err != nil {
		return false, fmt.Errorf("send to %s: %w", s.remote, err)
	}
	if s.sizeCheck != nil {
		if err := s.sizeCheck(msg); err != nil {
			return false, err
		}
	}
	select {
	case <-s.closing:
		return false, s.cause()
	default:
	}
	if !s.outBytes.tryTake(len(msg)) {
		if !wait {
			return false, nil
		}
		if !s.outBytes.take(len(msg), cancel, s.closing) {
			select {
			case <-s.closing:
				return false, s.cause()
			default:
				return false, nil
			}
		}
	}
	select {
	case s.out <- msg:
		if !hold {
			s.queued()
		}
		return true, nil
	default:
		if !wait {
			s.outBytes.release(len(msg))
			return false, nil
		}
	}
	select {
	case s.out <- msg:
		s.queued()
		return true, nil
	case <-cancel:
		s.outBytes.release(len(msg))
		return false, nil
	case <-s.closing:
		s.outBytes.release(len(msg))
		return false, s.cause()
	}
}

// Recv returns the next message. A timeout <= 0 waits without limit.
// Messages received before the peer went away are still returned; after a
// local Close, Recv returns ErrSessionClosed at once.
func (s *session) Recv(timeout time.Duration) ([]byte, error) {
	if s.rd != nil {
		return s.recvDirect(timeout)
	}
	select {
	case m := <-s.in:
		return s.received(m), nil
	default:
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case m := <-s.in:
		return s.received(m), nil
	case <-s.closing:
		err := s.cause()
		if !errors.Is(err, ErrSessionClosed) {
			select {
			case m := <-s.in:
				return s.received(m), nil
			default:
			}
		}
		return nil, err
	case <-expired:
		return nil, ErrTimeout
	}
}

// recvDirect is Recv of a direct-reading session. A message still in the
// socket when the session ends is not returned (there is no queue of
// received messages to drain).
func (s *session) recvDirect(timeout time.Duration) ([]byte, error) {
	var until time.Time // zero: no limit
	now := time.Now()
	if timeout > 0 {
		until = now.Add(timeout)
	}
	// A deadline set earlier that is still ahead, but before until, is
	// kept: arming the runtime's timer on every message costs more than
	// the rare early wake-up, after which the read is re-armed to until.
	var rearm bool
	switch {
	case until.IsZero():
		rearm = !s.rdl.IsZero()
	case s.rdl.IsZero():
		rearm = true
	default:
		rearm = until.Before(s.rdl) || !now.Before(s.rdl)
	}
	if rearm {
		if err := s.setReadDeadline(until); err != nil {
			return nil, err
		}
	}
	for {
		select {
		case <-s.closing:
			return nil, s.cause()
		default:
		}
		msg, err := s.rd.readMessage()
		if err == nil {
			return msg, nil
		}
		select {
		case <-s.closing:
			return nil, s.cause()
		default:
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			s.fail(fmt.Errorf("receive from %s: %w", s.remote, err))
			return nil, s.cause()
		}
		if !until.IsZero() && !time.Now().Before(until) {
			return nil, ErrTimeout
		}
		if err := s.setReadDeadline(until); err != nil {
			return nil, err
		}
	}
}

func (s *session) setReadDeadline(t time.Time) error {
	s.rdl = t
	if err := s.rd.SetReadDeadline(t); err != nil {
		s.fail(fmt.Errorf("receive from %s: %w", s.remote, err))
		return s.cause()
	}
	return nil
}

// received releases m's bytes from the receive queue's budget.
func (s *session) received(m []byte) []byte {
	s.inBytes.release(len(m))
	return m
}

// deliver queues a received message, waiting for room (in messages and
// bytes); false once the session has ended.
func (s *session) deliver(msg []byte) bool {
	if !s.inBytes.take(len(msg), s.closing, nil) {
		return false
	}
	select {
	case s.in <- msg:
		return true
	case <-s.closing:
		s.inBytes.release(len(msg))
		return false
	}
}

// offer queues a received message if there is room now (the UDP
// listener's receive loop never waits for one session).
func (s *session) offer(msg []byte) bool {
	if !s.inBytes.tryTake(len(msg)) {
		return false
	}
	select {
	case s.in <- msg:
		return true
	default:
		s.inBytes.release(len(msg))
		return false
	}
}

// readLoop feeds in from read until read fails or the session ends.
func (s *session) readLoop(read func() ([]byte, error)) {
	for {
		msg, err := read()
		if err != nil {
			s.fail(fmt.Errorf("receive from %s: %w", s.remote, err))
			return
		}
		if !s.deliver(msg) {
			return
		}
	}
}

// writeLoop drains out, handing write everything queued at once so that
// one flush (one syscall for TCP) carries many small messages. When the
// session ends it writes what was queued before, bounded by the deadline
// onFail set, then calls closeConn.
func (s *session) writeLoop(write func(batch [][]byte) error, closeConn func()) {
	defer closeConn()
	batch := make([][]byte, 0, maxWriteBatch)
	for {
		select {
		case m := <-s.out:
			batch = append(batch, m)
		case <-s.closing:
			if batch = s.drain(batch); len(batch) > 0 && errors.Is(s.cause(), ErrSessionClosed) {
				_ = write(batch) // best effort: the session is over either way
			}
			return
		}
		batch = s.drain(batch)
		if err := write(batch); err != nil {
			s.fail(fmt.Errorf("send to %s: %w", s.remote, err))
			return
		}
		batch = s.written(batch)
	}
}

// written gives back what a batch held, once it is on the wire: queued
// messages belong to the session (Send copies, Enqueue takes ownership).
// It returns the batch emptied, for reuse.
func (s *session) written(batch [][]byte) [][]byte {
	freed := 0
	for _, m := range batch {
		freed += len(m)
		ReleaseMessage(m)
	}
	s.outBytes.release(freed)
	clear(batch)
	return batch[:0]
}

// drain appends whatever is queued without waiting.
func (s *session) drain(batch [][]byte) [][]byte {
	return s.drainUpTo(batch, math.MaxInt)
}

// drainUpTo is drain that stops once the batch holds limit bytes (it
// takes at least one message).
func (s *session) drainUpTo(batch [][]byte, limit int) [][]byte {
	size := 0
	for len(batch) < maxWriteBatch && size < limit {
		select {
		case m := <-s.out:
			batch = append(batch, m)
			size += len(m)
		default:
			return batch
		}
	}
	return batch
}

// directWriteBytes bounds what one sender writes directly: the most a
// direct write can leave in its connection's backlog.
const directWriteBytes = 256 << 10

// directGap is how long after the last one a message must join the queue
// to be written by its sender. Closer messages are a burst or a stream:
// they go to the writer goroutine, whose wake-up delay lets them gather
// into one write (a syscall per small message would cost a stream more
// than the wake-up saves).
const directGap = 50 * time.Microsecond

// monotime is a monotonic clock in nanoseconds.
func monotime() int64 { return int64(time.Since(clockBase)) }

var clockBase = time.Now()

// queued runs after a message joined the send queue of a direct-writing
// session (nothing to do otherwise: the writer goroutine wakes on out).
// The sender writes the queue itself when nobody else is writing and the
// socket took everything before; else the writer goroutine is kicked,
// and also when the direct write left something for it.
func (s *session) queued() {
	if s.direct == nil {
		return
	}
	if now := monotime(); now-s.lastQueued.Swap(now) < int64(directGap) {
		s.kickWriter()
		return
	}
	s.flush()
}

// flush writes the queue of a direct-writing session from the calling
// goroutine when nobody else is writing and the socket took everything
// before; else, or when the write left something, it kicks the writer.
func (s *session) flush() {
	select {
	case <-s.closing:
		return // the writer writes what close leaves
	default:
	}
	if s.direct.oneAtATime() && len(s.out) > 1 {
		s.kickWriter()
		return
	}
	if !s.direct.backlogged() && s.wmu.TryLock() {
		err := s.writeQueued(false)
		more := err == nil && (s.direct.backlogged() || s.outBytes.held() > 0)
		s.wmu.Unlock()
		if err != nil {
			s.fail(fmt.Errorf("send to %s: %w", s.remote, err))
			return
		}
		if !more {
			return
		}
	}
	// Kicked also when the lock was busy: its holder may have looked at
	// the queue before this message joined it.
	s.kickWriter()
}

func (s *session) kickWriter() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// writeQueued writes queued messages; the caller holds wmu. The writer
// goroutine (blocking) writes until the queue is empty and the backlog is
// on the wire; a sender writes one batch without blocking.
func (s *session) writeQueued(blocking bool) error {
	s.direct.setBlocking(blocking)
	defer s.direct.setBlocking(true)
	limit := math.MaxInt
	if !blocking {
		limit = directWriteBytes
	}
	for {
		s.batch = s.drainUpTo(s.batch, limit)
		if len(s.batch) == 0 {
			break
		}
		err := s.write(s.batch)
		s.batch = s.written(s.batch)
		if err != nil {
			return err
		}
		if !blocking {
			return nil
		}
	}
	if blocking {
		return s.direct.flush()
	}
	return nil
}

// writer is the body of the session's writer goroutine: directWriteLoop
// when senders write directly (useDirectWrites), else writeLoop with write.
func (s *session) writer(write func(batch [][]byte) error, closeConn func()) func() {
	if s.direct != nil {
		return func() { s.directWriteLoop(closeConn) }
	}
	return func() { s.writeLoop(write, closeConn) }
}

// directWriteLoop is the writer of a direct-writing session: kicked, it
// writes (blocking) what senders left. When the session ends it writes
// what was queued before, bounded by the deadline onFail set, then calls
// closeConn.
func (s *session) directWriteLoop(closeConn func()) {
	defer closeConn()
	for {
		select {
		case <-s.kick:
		case <-s.closing:
			if errors.Is(s.cause(), ErrSessionClosed) {
				s.wmu.Lock()
				_ = s.writeQueued(true) // best effort: the session is over either way
				s.wmu.Unlock()
			}
			return
		}
		s.wmu.Lock()
		err := s.writeQueued(true)
		s.wmu.Unlock()
		if err != nil {
			s.fail(fmt.Errorf("send to %s: %w", s.remote, err))
			return
		}
	}
}

// identifiedSession is a session over TLS; it reports the peer's node IDs.
type identifiedSession struct {
	*session
	nodeIDs []string
}

func (s *identifiedSession) PeerNodeIDs() []string {
	return append([]string(nil), s.nodeIDs...)
}

// withIdentity wraps s when the transport ran TLS.
func withIdentity(s *session, isTLS bool, nodeIDs []string) Session {
	if !isTLS {
		return s
	}
	return &identifiedSession{session: s, nodeIDs: nodeIDs}
}

// verifiedNodeIDs returns the node-ID SANs of the peer's leaf certificate
// if the TLS handshake verified its chain; nil otherwise (no certificate,
// or one accepted without verification, e.g. insecureskipverify).
func verifiedNodeIDs(log *slog.Logger, cs tls.ConnectionState) []string {
	if len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return nil
	}
	ids, err := tlsconf.NodeIDsFromCert(cs.PeerCertificates[0])
	if err != nil {
		log.Warn("ignoring malformed node-ID SAN in peer certificate", "err", err)
		return nil
	}
	return ids
}

// Queued reports the messages and bytes waiting in the send queue (the
// mesh's link statistics read it).
func (s *session) Queued() (messages, bytes int) { return len(s.out), s.outBytes.held() }
