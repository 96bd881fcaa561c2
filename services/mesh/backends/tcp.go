package backends

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
)

// tlsDialTimeout bounds a TLS dial including the handshake, as upstream
// does; plain TCP dials have no timeout of their own (docs/protocol.md §2.4).
const tlsDialTimeout = 15 * time.Second

// tcpReadBufferSize is the per-session read buffer; frames larger than it
// are read straight into their own allocation.
const tcpReadBufferSize = 32 << 10

var errStopping = errors.New("backend stopping")

// TCPListenerOptions configures a tcp-listener.
type TCPListenerOptions struct {
	Address string      // bindaddr:port
	TLS     *tls.Config // nil: plain TCP; else a server config with certificates
	Logger  *slog.Logger
	// MaxConnections bounds concurrent connections (0: DefaultMaxConnections);
	// connections beyond it are closed at once.
	MaxConnections int
}

// TCPListener accepts TCP (optionally TLS) connections, one session each.
type TCPListener struct {
	opts TCPListenerOptions
	log  *slog.Logger
	addr atomic.Pointer[net.TCPAddr]
}

// NewTCPListener checks the options; nothing is bound until Start.
func NewTCPListener(opts TCPListenerOptions) (*TCPListener, error) {
	if _, _, err := net.SplitHostPort(opts.Address); err != nil {
		return nil, fmt.Errorf("tcp-listener address %q: %w", opts.Address, err)
	}
	if opts.TLS != nil && !hasCertificate(opts.TLS) {
		return nil, errors.New("tcp-listener: TLS config has no certificate")
	}
	log := loggerOr(opts.Logger).With("backend", "tcp-listener", "address", opts.Address)
	return &TCPListener{opts: opts, log: log}, nil
}

// Kind implements Backend.
func (l *TCPListener) Kind() string { return "tcp-listener" }

// Addr returns the bound address of the last Start (nil before).
func (l *TCPListener) Addr() *net.TCPAddr { return l.addr.Load() }

// Start implements Backend.
func (l *TCPListener) Start(ctx context.Context, accept func(Session)) (func(), error) {
	var lc net.ListenConfig // keep-alive: Go default (15 s), as upstream
	ln, err := lc.Listen(ctx, "tcp", l.opts.Address)
	if err != nil {
		return nil, fmt.Errorf("tcp-listener: listen on %q: %w", l.opts.Address, err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		l.addr.Store(a)
	}
	ln = newCapListener(ln, l.opts.MaxConnections, l.log)
	g := &group{}
	if !g.spawn(func() { l.acceptLoop(ctx, g, ln, accept) }) {
		_ = ln.Close()
	}
	return g.wait, nil
}

func (l *TCPListener) acceptLoop(ctx context.Context, g *group, ln net.Listener, accept func(Session)) {
	defer g.stop()
	defer ln.Close() //nolint:errcheck // nothing to do about it
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	pauses := backoff.AcceptRetry.Start()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// E.g. out of file descriptors: back off instead of spinning.
			pause := pauses.Next()
			l.log.Warn("tcp accept failed", "err", err, "retry_in", pause)
			if !backoff.Sleep(ctx, pause) {
				return
			}
			continue
		}
		pauses.Reset()
		if !g.spawn(func() { l.serveConn(ctx, g, conn, accept) }) {
			_ = conn.Close()
			return
		}
	}
}

func (l *TCPListener) serveConn(ctx context.Context, g *group, conn net.Conn, accept func(Session)) {
	remote := "tcp " + conn.RemoteAddr().String()
	var ids []string
	nb := newNBConn(conn)
	conn = nb
	if l.opts.TLS != nil {
		tc := tls.Server(conn, l.opts.TLS)
		hctx, cancel := context.WithTimeout(ctx, tlsDialTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			l.log.Warn("tls handshake failed", "remote", remote, "err", err)
			_ = conn.Close()
			return
		}
		ids = verifiedNodeIDs(l.log, tc.ConnectionState())
		conn = tc
	}
	s, err := newTCPSession(g, remote, conn, nb, l.opts.TLS != nil, ids)
	if err != nil {
		return
	}
	runSession(ctx, s, accept)
}

// TCPDialerOptions configures a tcp-peer.
type TCPDialerOptions struct {
	Address string      // host:port; host is also the TLS server name
	Redial  bool        // keep reconnecting (docs/protocol.md §3.1)
	TLS     *tls.Config // nil: plain TCP; else a client config
	// CurrentTLS, when set with TLS, is asked before every dial for the
	// config to use instead of TLS (a nil answer keeps TLS): certificates
	// and CA bundles reloaded since take effect at the next dial.
	CurrentTLS func() *tls.Config
	Logger     *slog.Logger
	Backoff    Backoff // zero: DefaultBackoff
}

// TCPDialer keeps one TCP (optionally TLS) session to a listener.
type TCPDialer struct {
	opts TCPDialerOptions
	log  *slog.Logger
	tls  *tls.Config
	host string
}

// NewTCPDialer checks the options; nothing is dialed until Start.
func NewTCPDialer(opts TCPDialerOptions) (*TCPDialer, error) {
	host, _, err := net.SplitHostPort(opts.Address)
	if err != nil {
		return nil, fmt.Errorf("tcp-peer address %q: %w", opts.Address, err)
	}
	d := &TCPDialer{opts: opts, log: loggerOr(opts.Logger).With("backend", "tcp-peer", "address", opts.Address), host: host}
	if opts.TLS != nil {
		d.tls = d.withServerName(opts.TLS)
	}
	return d, nil
}

func (d *TCPDialer) withServerName(cfg *tls.Config) *tls.Config {
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = d.host
	}
	return cfg
}

// Kind implements Backend.
func (d *TCPDialer) Kind() string { return "tcp-peer" }

// Start implements Backend.
func (d *TCPDialer) Start(ctx context.Context, accept func(Session)) (func(), error) {
	return startDialer(ctx, d.log, d.opts.Redial, d.opts.Backoff, d.dial, accept)
}

func (d *TCPDialer) dial(ctx context.Context, g *group) (Session, error) {
	if d.tls == nil {
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", d.opts.Address)
		if err != nil {
			return nil, err // net errors name the operation and address
		}
		nb := newNBConn(conn)
		return newTCPSession(g, "tcp "+conn.RemoteAddr().String(), nb, nb, false, nil)
	}
	cfg := d.tls
	if d.opts.CurrentTLS != nil {
		if cur := d.opts.CurrentTLS(); cur != nil {
			cfg = d.withServerName(cur)
		}
	}
	// TLS over an nbConn, so that records can go out non-blocking too;
	// the timeout covers the dial and the handshake, as upstream's does.
	tctx, cancel := context.WithTimeout(ctx, tlsDialTimeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(tctx, "tcp", d.opts.Address)
	if err != nil {
		return nil, err
	}
	nb := newNBConn(raw)
	conn := tls.Client(nb, cfg)
	if err := conn.HandshakeContext(tctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	ids := verifiedNodeIDs(d.log, conn.ConnectionState())
	return newTCPSession(g, "tcp "+conn.RemoteAddr().String(), conn, nb, true, ids)
}

// tcpReader is the direct reader of a TCP session (see useDirectReads).
type tcpReader struct {
	frameReader
	br   *bufio.Reader // frameReader's source
	conn net.Conn
}

func (r *tcpReader) buffered() bool {
	if r.msg != nil || r.nhdr != 0 {
		return false // part of a frame was read before a deadline passed
	}
	n := r.br.Buffered()
	if n < frameHeaderLen {
		return false
	}
	hdr, _ := r.br.Peek(frameHeaderLen)
	return n >= frameHeaderLen+int(binary.LittleEndian.Uint16(hdr))
}

func (r *tcpReader) SetReadDeadline(t time.Time) error { return r.conn.SetReadDeadline(t) }

// newTCPSession starts the coalescing writer of a framed stream session on
// conn (nb is the connection under TLS, or conn itself); Recv reads conn
// itself. On error conn is closed.
func newTCPSession(g *group, remote string, conn net.Conn, nb *nbConn, isTLS bool, ids []string) (Session, error) {
	s := newSession(remote)
	s.onFail = func() { _ = conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout)) }
	fw := newFrameWriter(conn)
	br := bufio.NewReaderSize(conn, tcpReadBufferSize)
	s.useDirectReads(&tcpReader{frameReader: frameReader{r: br, alloc: pooledAlloc}, br: br, conn: conn})
	s.useDirectWrites(nb, fw.writeBatch)
	if !g.spawn(s.writer(fw.writeBatch, func() { _ = conn.Close() })) {
		_ = conn.Close()
		return nil, errStopping
	}
	return withIdentity(s, isTLS, ids), nil
}

// hasCertificate reports whether a server config can present a certificate.
func hasCertificate(cfg *tls.Config) bool {
	return len(cfg.Certificates) > 0 || cfg.GetCertificate != nil || cfg.GetConfigForClient != nil
}
