package backends

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	})
}

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
		return nil
	case <-s.closing:
		s.outBytes.release(len(cp))
		return s.cause()
	}
}

// Enqueue implements Enqueuer.
func (s *session) Enqueue(msg []byte) (bool, error) { return s.enqueue(msg, nil, false) }

// EnqueueWait implements Enqueuer.
func (s *session) EnqueueWait(msg []byte, cancel <-chan struct{}) (bool, error) {
	return s.enqueue(msg, cancel, true)
}

func (s *session) enqueue(msg []byte, cancel <-chan struct{}, wait bool) (bool, error) {
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
		return true, nil
	default:
		if !wait {
			s.outBytes.release(len(msg))
			return false, nil
		}
	}
	select {
	case s.out <- msg:
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
		// Queued messages belong to the session (Send copies, Enqueue
		// takes ownership) and are written out now.
		freed := 0
		for _, m := range batch {
			freed += len(m)
			ReleaseMessage(m)
		}
		s.outBytes.release(freed)
		clear(batch)
		batch = batch[:0]
	}
}

// drain appends whatever is queued without waiting.
func (s *session) drain(batch [][]byte) [][]byte {
	for len(batch) < maxWriteBatch {
		select {
		case m := <-s.out:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
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
