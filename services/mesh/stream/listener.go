package stream

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/receptor-mesh/receptor/services/mesh"
)

// maxPending bounds connections that are handshaking, waiting for their
// first stream, or ready but not yet taken by Accept. When it is reached we
// stop taking connections from quic-go, whose own queue then refuses more.
const maxPending = 64

// maxInflight bounds a listener's incoming connections from their first
// packet until the application accepts them (handshaking, queued inside
// quic-go, waiting for their first stream, or ready). quic-go bounds only
// completed handshakes waiting for Accept, not handshakes in progress, and
// every one holds goroutines and buffers; beyond this bound a new
// connection is refused before any state is made for it. Every listener
// has its own bound (and its own QUIC transport and mesh socket), so a
// flood of connections on one service cannot starve another, such as
// control.
const maxInflight = 2 * maxPending

// errTooManyInflight refuses a connection over maxInflight.
var errTooManyInflight = errors.New("too many connections not yet accepted on this service")

// inflightGate counts a listener's connections not yet handed to Accept.
type inflightGate struct {
	n       atomic.Int64
	refused atomic.Uint64
	max     int64
}

type inflightKey struct{}

// admit is the QUIC transport's ConnContext: it counts the new connection
// or refuses it. The count is released once, on hand-off to Accept (see
// releaseInflight) or when quic-go cancels ctx (the connection ended).
func (g *inflightGate) admit(ctx context.Context, _ *quic.ClientInfo) (context.Context, error) {
	// Compare-and-swap, not add-then-undo: the count must never read over
	// the bound, even for an instant (it is observed while connections
	// arrive).
	for {
		cur := g.n.Load()
		if cur >= g.max {
			g.refused.Add(1)
			return nil, errTooManyInflight
		}
		if g.n.CompareAndSwap(cur, cur+1) {
			break
		}
	}
	release := sync.OnceFunc(func() { g.n.Add(-1) })
	context.AfterFunc(ctx, release)
	return context.WithValue(ctx, inflightKey{}, release), nil
}

// releaseInflight gives qc's slot back: the application took it.
func releaseInflight(qc *quic.Conn) {
	if release, ok := qc.Context().Value(inflightKey{}).(func()); ok {
		release()
	}
}

// ListenOptions configures Listen.
type ListenOptions struct {
	// TLS is the user TLS server config (ConnType 2); ALPN is forced to
	// netceptor, and with tls.RequireAndVerifyClientCert each client's
	// certificate must also carry the node ID its packets come from
	// (tlsconf.WithClientNodeCheck, as upstream). Nil selects the insecure scheme (ConnType 1) with a
	// self-signed certificate made on the first handshake and shared by the
	// process's listeners.
	TLS *tls.Config
	// Advertise floods a service advertisement while the listener is open.
	Advertise bool
	// Tags are the advertisement's tags.
	Tags map[string]string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Listener accepts mesh streams on one service. It implements net.Listener.
type Listener struct {
	pc   *packetConn
	tr   *quic.Transport
	ql   *quic.Listener
	addr mesh.Addr
	log  *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	pending  chan struct{} // semaphore, see maxPending
	inflight *inflightGate
	ready    chan *Conn

	mu     sync.Mutex
	closed bool
	conns  map[string]*quic.Conn // by remote "node:service", for unreachables and Close
	wg     sync.WaitGroup        // accept loop, per-connection goroutines
	unrWG  sync.WaitGroup        // unreachable dispatcher

	closeOnce sync.Once
	closeErr  error
}

// Listen binds service on the node and accepts QUIC streams on it. ctx only
// bounds the setup; the listener lives until Close.
func Listen(ctx context.Context, network mesh.PacketNetwork, service string, opts ListenOptions) (*Listener, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	var tlsConf *tls.Config
	connType := mesh.ConnTypeStream
	if opts.TLS == nil {
		tlsConf = insecureServerTLS()
	} else {
		connType = mesh.ConnTypeStreamTLS
		tlsConf = userServerTLS(opts.TLS)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("stream: listen on %q: %w", service, err)
	}
	var (
		mpc mesh.PacketConn
		err error
	)
	if opts.Advertise {
		mpc, err = network.ListenPacketAndAdvertise(service, mesh.ServiceAd{ConnType: connType, Tags: opts.Tags})
	} else {
		mpc, err = network.ListenPacket(service)
	}
	if err != nil {
		return nil, fmt.Errorf("stream: listen on %q: %w", service, err)
	}
	pc := newPacketConn(mpc)
	tr, err := newTransport(pc)
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("stream: listen on %q: %w", service, err)
	}
	gate := &inflightGate{max: maxInflight}
	tr.ConnContext = gate.admit
	ql, err := tr.Listen(tlsConf, quicConfig(false))
	if err != nil {
		_ = pc.Close()
		_ = tr.Close()
		return nil, fmt.Errorf("stream: listen on %q: %w", service, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		pc: pc, tr: tr, ql: ql,
		addr:     toMeshAddr(mpc.LocalAddr()),
		log:      log,
		ctx:      lctx,
		cancel:   cancel,
		pending:  make(chan struct{}, maxPending),
		inflight: gate,
		ready:    make(chan *Conn),
		conns:    make(map[string]*quic.Conn),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	l.unrWG.Add(1)
	go l.watchUnreachable(mpc.Unreachable())
	return l, nil
}

// newTransport runs QUIC over pc with a random stateless-reset key and no
// address validation (Retry), as upstream.
func newTransport(pc net.PacketConn) (*quic.Transport, error) {
	var key quic.StatelessResetKey
	if _, err := rand.Read(key[:]); err != nil {
		return nil, fmt.Errorf("stateless reset key: %w", err)
	}
	return &quic.Transport{Conn: pc, StatelessResetKey: &key}, nil
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		select {
		case l.pending <- struct{}{}:
		case <-l.ctx.Done():
			return
		}
		qc, err := l.ql.Accept(l.ctx)
		if err != nil {
			<-l.pending
			if l.ctx.Err() == nil {
				l.log.Error("stream: accept QUIC connection failed", "service", l.addr.Service, "err", err)
			}
			return
		}
		remote := qc.RemoteAddr().String()
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			<-l.pending
			_ = qc.CloseWithError(codeError, reasonListenerClosed)
			continue
		}
		old := l.conns[remote]
		l.conns[remote] = qc
		l.wg.Add(1)
		l.mu.Unlock()
		if old != nil {
			// A second connection from the same ephemeral service: upstream
			// dialers never do this; keep the newer one.
			_ = old.CloseWithError(codeError, "duplicate connection")
		}
		go l.initConn(qc, remote)
	}
}

// initConn waits for the first stream and its 0x00 byte (docs/protocol.md §10.4), then
// hands the connection to Accept.
func (l *Listener) initConn(qc *quic.Conn, remote string) {
	ok := false
	defer func() {
		if !ok {
			<-l.pending
			l.forget(remote, qc)
			l.wg.Done()
		}
	}()
	ctx, cancel := context.WithTimeout(l.ctx, acceptStreamTimeout)
	defer cancel()
	qs, err := qc.AcceptStream(ctx)
	if err != nil {
		switch {
		case l.ctx.Err() != nil:
			_ = qc.CloseWithError(codeError, reasonListenerClosed)
		case errors.Is(err, context.DeadlineExceeded):
			_ = qc.CloseWithError(codeError, reasonAcceptTimeout)
		default:
			_ = qc.CloseWithError(codeError, "AcceptStream Error: "+err.Error())
		}
		l.log.Debug("stream: connection closed before its first stream", "from", remote, "err", err)
		return
	}
	deadline, _ := ctx.Deadline()
	_ = qs.SetReadDeadline(deadline)
	var first [1]byte
	if _, err := io.ReadFull(qs, first[:]); err != nil {
		_ = qc.CloseWithError(codeError, "Read Error: "+err.Error())
		l.log.Debug("stream: reading the first byte failed", "from", remote, "err", err)
		return
	}
	if first[0] != 0 {
		_ = qc.CloseWithError(codeError, reasonReadData)
		l.log.Debug("stream: first byte is not 0x00", "from", remote, "byte", first[0])
		return
	}
	_ = qs.SetReadDeadline(time.Time{})
	ok = true
	c := newConn(qc, qs, l.addr, toMeshAddr(qc.RemoteAddr()), l.log, false, func() {
		l.forget(remote, qc)
		l.wg.Done()
	})
	select {
	case l.ready <- c:
		releaseInflight(qc)
		<-l.pending
	case <-l.ctx.Done():
		<-l.pending
		c.abort(codeError, reasonListenerClosed)
	}
}

func (l *Listener) forget(remote string, qc *quic.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns[remote] == qc {
		delete(l.conns, remote)
	}
}

// watchUnreachable closes connections whose dialer's service is gone
// (docs/protocol.md §10.5). Upstream only sends FIN; the peer socket no longer exists,
// so we end the whole connection and local reads fail at once.
func (l *Listener) watchUnreachable(ch <-chan mesh.Unreachable) {
	defer l.unrWG.Done()
	for {
		select {
		case <-l.ctx.Done():
			return
		case u, ok := <-ch:
			if !ok {
				return
			}
			if u.Problem != mesh.ProblemServiceUnknown {
				continue
			}
			remote := mesh.Addr{Node: u.ToNode, Service: u.ToService}.String()
			l.mu.Lock()
			qc := l.conns[remote]
			l.mu.Unlock()
			if qc != nil {
				l.log.Warn("stream: remote service is unreachable, closing connection", "remote", remote, "reported_by", u.ReportedBy)
				_ = qc.CloseWithError(codeError, reasonServiceUnknown)
			}
		}
	}
}

// Accept waits for the next connection. It implements net.Listener; the
// returned net.Conn is a *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	return l.AcceptContext(context.Background())
}

// AcceptContext is Accept bounded by ctx.
func (l *Listener) AcceptContext(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.ctx.Done():
		return nil, fmt.Errorf("stream: accept on %s: %w", l.addr, net.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("stream: accept on %s: %w", l.addr, context.Cause(ctx))
	}
}

// Close stops accepting, closes every connection of this listener
// (500 "Listener Closed", as upstream tears them down with the socket),
// releases the service and waits for all goroutines to end.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		conns := make([]*quic.Conn, 0, len(l.conns))
		for _, qc := range l.conns {
			conns = append(conns, qc)
		}
		l.mu.Unlock()
		l.cancel()
		err := l.ql.Close()
		var wg sync.WaitGroup
		for _, qc := range conns {
			wg.Go(func() { _ = qc.CloseWithError(codeError, reasonListenerClosed) })
		}
		wg.Wait()
		l.wg.Wait()
		if perr := l.pc.Close(); perr != nil && err == nil {
			err = perr
		}
		_ = l.tr.Close()
		l.unrWG.Wait()
		if err != nil {
			l.closeErr = fmt.Errorf("stream: close listener %s: %w", l.addr, err)
		}
	})
	return l.closeErr
}

// Addr is the listener's mesh address.
func (l *Listener) Addr() net.Addr { return l.addr }
