package backends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
)

const (
	// MaxUDPMessageSize is the largest message a UDP session sends; larger
	// sends fail the session, as upstream's do (docs/protocol.md §3.3).
	MaxUDPMessageSize = 65507
	// udpReceiveBufferSize fits any datagram.
	udpReceiveBufferSize = 65536
	// DefaultUDPMaxSessions bounds a udp-listener's concurrent sessions.
	DefaultUDPMaxSessions = 256
)

// PeerSpeaksFirst is implemented by sessions whose peer is not verified
// by the transport: the node must send nothing on them until the peer has
// sent a valid first message. A udp-listener session is made for any
// source address, which may be spoofed; answering it at once with routing
// updates would let anyone aim our replies at a third party.
type PeerSpeaksFirst interface {
	PeerSpeaksFirst() bool
}

// Confirmer is implemented by sessions that want to know when the node has
// verified their peer: the mesh calls Confirm once the peer has shown that
// it receives our messages (it listed us in its routing update). A
// udp-listener keeps confirmed sessions when it must make room.
type Confirmer interface {
	Confirm()
}

// udpListenerSession is a session of a udp-listener: it waits for its
// peer to speak first, and records whether we answered it.
type udpListenerSession struct {
	*session
	created   time.Time
	confirmed atomic.Bool // see Confirmer
	// ended is closed when the node is done with the session (accept
	// returned): a session that evicted this one starts only then.
	ended chan struct{}
}

// evictionWait bounds how long a new session waits for the node to let go
// of the session it evicted.
const evictionWait = time.Second

func (s *udpListenerSession) PeerSpeaksFirst() bool { return true }

func (s *udpListenerSession) Confirm() { s.confirmed.Store(true) }

// UDPListenerOptions configures a udp-listener.
type UDPListenerOptions struct {
	Address     string // bindaddr:port
	MaxSessions int    // 0: DefaultUDPMaxSessions; datagrams from new sources beyond it are dropped
	Logger      *slog.Logger
}

// UDPListener turns every distinct source address into a session.
type UDPListener struct {
	opts UDPListenerOptions
	log  *slog.Logger
	addr atomic.Pointer[net.UDPAddr]
}

// NewUDPListener checks the options; nothing is bound until Start.
func NewUDPListener(opts UDPListenerOptions) (*UDPListener, error) {
	if _, _, err := net.SplitHostPort(opts.Address); err != nil {
		return nil, fmt.Errorf("udp-listener address %q: %w", opts.Address, err)
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultUDPMaxSessions
	}
	log := loggerOr(opts.Logger).With("backend", "udp-listener", "address", opts.Address)
	return &UDPListener{opts: opts, log: log}, nil
}

// Kind implements Backend.
func (l *UDPListener) Kind() string { return "udp-listener" }

// Addr returns the bound address of the last Start (nil before).
func (l *UDPListener) Addr() *net.UDPAddr { return l.addr.Load() }

// udpSessions is the listener's table of live sessions by source address.
type udpSessions struct {
	mu   sync.Mutex
	byIP map[string]*udpListenerSession
	// evicted counts unanswered sessions closed to make room for new ones.
	evicted uint64
}

func (t *udpSessions) get(key string) *udpListenerSession {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byIP[key]
}

// oldestUnconfirmedLocked returns the key of the oldest session whose
// peer the node has not confirmed, or "" when all are confirmed.
func (t *udpSessions) oldestUnconfirmedLocked() string {
	var (
		key    string
		oldest time.Time
	)
	for k, s := range t.byIP {
		if !s.confirmed.Load() && (key == "" || s.created.Before(oldest)) {
			key, oldest = k, s.created
		}
	}
	return key
}

func (t *udpSessions) remove(key string, s *udpListenerSession) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byIP[key] == s {
		delete(t.byIP, key)
	}
}

// Start implements Backend.
func (l *UDPListener) Start(ctx context.Context, accept func(Session)) (func(), error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", l.opts.Address)
	if err != nil {
		return nil, fmt.Errorf("udp-listener: listen on %q: %w", l.opts.Address, err)
	}
	if a, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		l.addr.Store(a)
	}
	growSocketBuffers(pc)
	g := &group{}
	if !g.spawn(func() { l.receiveLoop(ctx, g, pc, accept) }) {
		_ = pc.Close()
	}
	return g.wait, nil
}

// receiveLoop dispatches datagrams to sessions. It never waits for a
// session: when one's queue is full (slow or closing), the datagram is
// dropped, unlike upstream whose listener stalls (docs/protocol.md §3.3).
func (l *UDPListener) receiveLoop(ctx context.Context, g *group, pc net.PacketConn, accept func(Session)) {
	defer g.stop()
	defer pc.Close() //nolint:errcheck // nothing to do about it
	stop := context.AfterFunc(ctx, func() { _ = pc.Close() })
	defer stop()
	table := &udpSessions{byIP: make(map[string]*udpListenerSession)}
	// recvmmsg on IPv4 sockets; a dual-stack socket reads one datagram
	// per call, with the source addresses ReadFrom reports.
	buf := make([]byte, udpReceiveBufferSize)
	readFrom := func() ([]byte, net.Addr, error) {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return nil, nil, err
		}
		var msg []byte
		if n <= PooledMessageCap {
			msg = MessageBuffer()[:n]
		} else {
			msg = make([]byte, n)
		}
		copy(msg, buf[:n])
		return msg, from, nil
	}
	if a, ok := pc.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() != nil {
		readFrom = newUDPBatchReader(pc).read
	}
	for {
		msg, from, err := readFrom()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			l.log.Warn("udp receive failed", "err", err)
			if !backoff.Sleep(ctx, 10*time.Millisecond) {
				return
			}
			continue
		}
		key := from.String()
		if len(msg) == 0 {
			// An empty datagram crashes upstream; here it is only noise.
			ReleaseMessage(msg)
			l.log.Warn("dropped empty udp datagram", "remote", key)
			continue
		}
		s := table.get(key)
		if s == nil {
			if s = l.newSession(ctx, g, pc, from, table, accept); s == nil {
				ReleaseMessage(msg)
				continue
			}
		}
		if !s.offer(msg) {
			ReleaseMessage(msg)
			l.log.Debug("dropped udp datagram: session queue full or closing", "remote", key)
		}
	}
}

// newSession registers and announces a session for a new source, or
// returns nil when the table is full or the backend is stopping. A full
// table makes room by closing its oldest session whose peer the node has
// not confirmed (a source that never completed the handshake, e.g. a
// spoofed one, which cannot receive our replies), so a flood of such
// sources cannot lock real peers out; when every session is confirmed, the
// datagram is dropped.
func (l *UDPListener) newSession(ctx context.Context, g *group, pc net.PacketConn, from net.Addr,
	table *udpSessions, accept func(Session)) *udpListenerSession {
	key := from.String()
	table.mu.Lock()
	var evict *udpListenerSession
	if len(table.byIP) >= l.opts.MaxSessions {
		old := table.oldestUnconfirmedLocked()
		if old == "" {
			table.mu.Unlock()
			l.log.Debug("dropped udp datagram: session limit reached", "remote", key, "limit", l.opts.MaxSessions)
			return nil
		}
		evict = table.byIP[old]
		delete(table.byIP, old)
		table.evicted++
		if table.evicted%1000 == 1 {
			l.log.Warn("udp sessions at their limit; closing unconfirmed sources to make room",
				"limit", l.opts.MaxSessions, "evicted", table.evicted)
		}
	}
	s := &udpListenerSession{session: newSession("udp " + key), created: time.Now(), ended: make(chan struct{})}
	s.sizeCheck = udpSizeCheck(s.session)
	write := func(batch [][]byte) error {
		for _, msg := range batch {
			if _, err := pc.WriteTo(msg, from); err != nil {
				return err
			}
		}
		return nil
	}
	if batchableUDP(pc.LocalAddr(), from) {
		u := newUDPSender(newUDPBatchWriter(pc, from), pc, udpSockaddr(pc.LocalAddr(), from), false)
		write = u.write
		s.useDirectWrites(u, write)
	}
	s.onFail = func() { table.remove(key, s) }
	table.byIP[key] = s
	table.mu.Unlock()
	if evict != nil {
		evict.fail(errors.New("udp session evicted: peer not confirmed, and the listener is at its session limit"))
	}
	// The socket is the listener's: the writer leaves it open.
	if !g.spawn(s.writer(write, func() {})) {
		s.fail(errStopping)
		close(s.ended)
		return nil
	}
	if !g.spawn(func() {
		defer close(s.ended)
		if evict != nil {
			// The node sees the new session only once it has let go of
			// the evicted one, so that it never holds more than
			// MaxSessions from this listener. Datagrams wait in the new
			// session's queue meanwhile.
			t := time.NewTimer(evictionWait)
			select {
			case <-evict.ended:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		runSession(ctx, s, accept)
	}) {
		s.fail(errStopping)
		close(s.ended)
		return nil
	}
	return s
}

// UDPDialerOptions configures a udp-peer.
type UDPDialerOptions struct {
	Address string // host:port
	Redial  bool
	Logger  *slog.Logger
	Backoff Backoff // zero: DefaultBackoff
}

// UDPDialer keeps one session over a connected UDP socket.
type UDPDialer struct {
	opts UDPDialerOptions
	log  *slog.Logger
}

// NewUDPDialer checks the options; nothing is dialed until Start.
func NewUDPDialer(opts UDPDialerOptions) (*UDPDialer, error) {
	if _, _, err := net.SplitHostPort(opts.Address); err != nil {
		return nil, fmt.Errorf("udp-peer address %q: %w", opts.Address, err)
	}
	log := loggerOr(opts.Logger).With("backend", "udp-peer", "address", opts.Address)
	return &UDPDialer{opts: opts, log: log}, nil
}

// Kind implements Backend.
func (d *UDPDialer) Kind() string { return "udp-peer" }

// Start implements Backend.
func (d *UDPDialer) Start(ctx context.Context, accept func(Session)) (func(), error) {
	return startDialer(ctx, d.log, d.opts.Redial, d.opts.Backoff, d.dial, accept)
}

func (d *UDPDialer) dial(ctx context.Context, g *group) (Session, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, "udp", d.opts.Address)
	if err != nil {
		return nil, err // net errors name the operation and address
	}
	growSocketBuffers(conn)
	s := newSession("udp " + conn.RemoteAddr().String())
	s.sizeCheck = udpSizeCheck(s)
	pc, ok := conn.(net.PacketConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("udp-peer %s: not a packet connection", d.opts.Address)
	}
	// Connected: no address per datagram. Recv reads the socket itself;
	// the writer closes it after writing what was queued before a Close
	// (a Reject).
	u := newUDPSender(newUDPBatchWriter(pc, nil), pc, nil, true)
	s.useDirectReads(&udpReader{r: newUDPBatchReader(pc), conn: conn, log: d.log, remote: s.remote})
	s.useDirectWrites(u, u.write)
	if !g.spawn(s.writer(u.write, func() { _ = conn.Close() })) {
		_ = conn.Close()
		return nil, errStopping
	}
	return s, nil
}

// udpReader is the direct reader of a udp-peer session (see useDirectReads).
type udpReader struct {
	r      *udpBatchReader
	conn   net.Conn
	log    *slog.Logger
	remote string
}

func (r *udpReader) readMessage() ([]byte, error) {
	for {
		msg, _, err := r.r.read()
		if err != nil {
			return nil, err // e.g. ICMP port unreachable: the session ends
		}
		if len(msg) > 0 {
			return msg, nil
		}
		ReleaseMessage(msg)
		r.log.Warn("dropped empty udp datagram", "remote", r.remote)
	}
}

// buffered: a datagram is always whole, so any received one will do.
func (r *udpReader) buffered() bool { return r.r.next < r.r.pending }

func (r *udpReader) SetReadDeadline(t time.Time) error { return r.conn.SetReadDeadline(t) }

// udpSizeCheck refuses messages that do not fit one datagram; like
// upstream, such a message ends the session (docs/protocol.md §3.3), as
// does a failed write (the session's writer).
func udpSizeCheck(s *session) func([]byte) error {
	return func(msg []byte) error {
		if len(msg) > MaxUDPMessageSize {
			err := fmt.Errorf("send %d bytes to %s: %w", len(msg), s.remote, ErrMessageTooLarge)
			s.fail(err)
			return err
		}
		return nil
	}
}

// udpSocketBuffer is the receive and send buffer a udp backend socket asks
// for. Linux caps it at net.core.rmem_max and wmem_max (208 KiB on many
// systems), silently; the default is 208 KiB. At the rates of a stream
// through the mesh the default receive buffer overflows and drops
// datagrams, which QUIC's congestion control reads as loss.
const udpSocketBuffer = 4 << 20

// growSocketBuffers asks for udpSocketBuffer in both directions. It is
// best effort: a system that allows less keeps the datagrams it can.
func growSocketBuffers(c any) {
	if b, ok := c.(interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	}); ok {
		_ = b.SetReadBuffer(udpSocketBuffer)
		_ = b.SetWriteBuffer(udpSocketBuffer)
	}
}
