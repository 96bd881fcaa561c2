package backends

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http/httpproxy"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

const (
	// wsReadLimit bounds one received websocket message. Upstream has no
	// limit (docs/protocol.md §3.4) and may relay data messages slightly over
	// MaxMessageSize (a 65507-byte proxied datagram plus its header), so
	// the bound is generous but finite; a larger message ends the session.
	wsReadLimit = 1 << 20
	// wsHeaderTimeout is upstream's HTTP header read timeout.
	wsHeaderTimeout = 5 * time.Second
	// wsReadBuffer is gorilla's read buffer per connection: one read
	// syscall takes in many mesh messages (the default 4 KiB holds three).
	wsReadBuffer = 32 << 10
	// wsHandshakeTimeout bounds a dial (TCP, proxy CONNECT, TLS, upgrade).
	// Upstream has none; a hung peer would otherwise stall the redial loop.
	wsHandshakeTimeout = 15 * time.Second
)

// WebsocketListenerOptions configures a ws-listener.
type WebsocketListenerOptions struct {
	Address string      // bindaddr:port
	Path    string      // ServeMux pattern; "" means "/" (every path)
	TLS     *tls.Config // nil: plain HTTP; else a server config with certificates
	Logger  *slog.Logger
	// MaxConnections bounds concurrent connections, websockets or not
	// yet upgraded (0: DefaultMaxConnections); connections beyond it are
	// closed at once.
	MaxConnections int
}

// WebsocketListener serves websocket upgrades, one session per websocket.
type WebsocketListener struct {
	opts WebsocketListenerOptions
	log  *slog.Logger
	tls  *tls.Config
	addr atomic.Pointer[net.TCPAddr]
}

// NewWebsocketListener checks the options; nothing is bound until Start.
func NewWebsocketListener(opts WebsocketListenerOptions) (*WebsocketListener, error) {
	if _, _, err := net.SplitHostPort(opts.Address); err != nil {
		return nil, fmt.Errorf("ws-listener address %q: %w", opts.Address, err)
	}
	if opts.Path == "" {
		opts.Path = "/"
	}
	if !strings.HasPrefix(opts.Path, "/") {
		return nil, fmt.Errorf("ws-listener path %q: must start with /", opts.Path)
	}
	if _, err := newMux(opts.Path, http.NotFoundHandler()); err != nil {
		return nil, err
	}
	l := &WebsocketListener{opts: opts, log: loggerOr(opts.Logger).With("backend", "ws-listener", "address", opts.Address)}
	if opts.TLS != nil {
		if !hasCertificate(opts.TLS) {
			return nil, errors.New("ws-listener: TLS config has no certificate")
		}
		l.tls = serverTLSForHTTP2(opts.TLS)
	}
	return l, nil
}

// serverTLSForHTTP2 mirrors upstream: the HTTPS server enables HTTP/2 (the
// server offers ALPN h2 and http/1.1) and, when TLS 1.2 suites are
// restricted, puts the suite HTTP/2 requires first (docs/protocol.md §3.4).
func serverTLSForHTTP2(base *tls.Config) *tls.Config {
	const h2Suite = tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	// Derive: also for the configs base chooses per connection (a
	// reloaded certificate).
	return tlsconf.Derive(base, func(cfg *tls.Config) {
		if len(cfg.CipherSuites) > 0 && cfg.MinVersion < tls.VersionTLS13 && !slices.Contains(cfg.CipherSuites, h2Suite) {
			cfg.CipherSuites = append([]uint16{h2Suite}, cfg.CipherSuites...)
		}
	})
}

// newMux registers h at path, turning ServeMux's panic on a bad pattern
// (user input) into an error.
func newMux(path string, h http.Handler) (mux *http.ServeMux, err error) {
	defer func() {
		if r := recover(); r != nil {
			mux, err = nil, fmt.Errorf("ws-listener path %q: %v", path, r)
		}
	}()
	mux = http.NewServeMux()
	mux.Handle(path, h)
	return mux, nil
}

// Kind implements Backend.
func (l *WebsocketListener) Kind() string { return "ws-listener" }

// Addr returns the bound address of the last Start (nil before).
func (l *WebsocketListener) Addr() *net.TCPAddr { return l.addr.Load() }

// Start implements Backend.
func (l *WebsocketListener) Start(ctx context.Context, accept func(Session)) (func(), error) {
	g := &group{}
	mux, err := newMux(l.opts.Path, l.handler(ctx, g, accept))
	if err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", l.opts.Address)
	if err != nil {
		return nil, fmt.Errorf("ws-listener: listen on %q: %w", l.opts.Address, err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		l.addr.Store(a)
	}
	// Corked connections let a session write a batch of messages with one
	// syscall (see corkConn).
	ln = corkListener{newCapListener(ln, l.opts.MaxConnections, l.log)}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: wsHeaderTimeout,
		TLSConfig:         l.tls,
		ErrorLog:          slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	if !g.spawn(func() { l.serve(ctx, g, srv, ln) }) {
		_ = ln.Close()
	}
	return g.wait, nil
}

func (l *WebsocketListener) serve(ctx context.Context, g *group, srv *http.Server, ln net.Listener) {
	defer g.stop()
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	var err error
	if l.tls != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		l.log.Error("websocket listener stopped", "err", err)
	}
	_ = srv.Close()
}

func (l *WebsocketListener) handler(ctx context.Context, g *group, accept func(Session)) http.Handler {
	// CheckOrigin nil selects gorilla's rule, which is upstream's: no
	// Origin is fine, else its host[:port] must equal Host, else 403.
	up := websocket.Upgrader{ReadBufferSize: wsReadBuffer}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.enter() {
			http.Error(w, "backend stopping", http.StatusServiceUnavailable)
			return
		}
		defer g.leave()
		conn, err := up.Upgrade(w, r, nil) // answers failures itself (400, 403, ...)
		if err != nil {
			l.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
			return
		}
		var ids []string
		if r.TLS != nil {
			ids = verifiedNodeIDs(l.log, *r.TLS)
		}
		s, err := newWebsocketSession(g, l.log, "ws "+r.RemoteAddr, conn, r.TLS != nil, ids)
		if err != nil {
			return
		}
		runSession(ctx, s, accept)
	})
}

// WebsocketDialerOptions configures a ws-peer.
type WebsocketDialerOptions struct {
	URL    string      // ws://host[:port]/path or wss://...
	Redial bool        // keep reconnecting (docs/protocol.md §3.1)
	TLS    *tls.Config // for wss; nil means system roots (upstream fails instead)
	// CurrentTLS, when set, is asked before every wss dial for the config
	// to use instead of TLS (a nil answer keeps TLS): certificates and CA
	// bundles reloaded since take effect at the next dial.
	CurrentTLS  func() *tls.Config
	ExtraHeader string // optional "Name:value"
	Logger      *slog.Logger
	Backoff     Backoff // zero: DefaultBackoff
}

// WebsocketDialer keeps one websocket session to a listener. Proxies come
// from HTTPS_PROXY, HTTP_PROXY and NO_PROXY as read at construction.
type WebsocketDialer struct {
	opts   WebsocketDialerOptions
	log    *slog.Logger
	header http.Header
	dialer *websocket.Dialer
	isTLS  bool
}

// NewWebsocketDialer checks the URL and extra header; nothing is dialed
// until Start.
func NewWebsocketDialer(opts WebsocketDialerOptions) (*WebsocketDialer, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("ws-peer address %q: %w", opts.URL, err)
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("ws-peer address %q: want ws://host[:port]/path or wss://...", opts.URL)
	}
	d := &WebsocketDialer{
		opts:  opts,
		log:   loggerOr(opts.Logger).With("backend", "ws-peer", "address", opts.URL),
		isTLS: u.Scheme == "wss",
	}
	origin := "http://" + u.Host
	if d.isTLS {
		origin = "https://" + u.Host
	}
	d.header = http.Header{"Origin": {origin}}
	if opts.ExtraHeader != "" {
		name, value, ok := strings.Cut(opts.ExtraHeader, ":")
		value = strings.TrimSpace(value)
		if !ok || !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Errorf("ws-peer extraheader %q: want Name:value", opts.ExtraHeader)
		}
		d.header.Set(name, value)
	}
	proxy := httpproxy.FromEnvironment().ProxyFunc()
	d.dialer = &websocket.Dialer{
		Proxy:            func(r *http.Request) (*url.URL, error) { return proxy(r.URL) },
		HandshakeTimeout: wsHandshakeTimeout,
		ReadBufferSize:   wsReadBuffer,
	}
	if d.isTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if opts.TLS != nil {
			cfg = opts.TLS.Clone()
		}
		cfg.NextProtos = nil // never offer h2: the upgrade needs HTTP/1.1
		d.dialer.TLSClientConfig = cfg
	}
	return d, nil
}

// Kind implements Backend.
func (d *WebsocketDialer) Kind() string { return "ws-peer" }

// Start implements Backend.
func (d *WebsocketDialer) Start(ctx context.Context, accept func(Session)) (func(), error) {
	return startDialer(ctx, d.log, d.opts.Redial, d.opts.Backoff, d.dial, accept)
}

func (d *WebsocketDialer) dial(ctx context.Context, g *group) (Session, error) {
	// gorilla reads the upgrade response without watching ctx: close the
	// connection under it if ctx ends mid-handshake.
	var (
		mu     sync.Mutex
		raw    net.Conn
		cancel bool
	)
	dialer := *d.dialer
	if d.isTLS && d.opts.CurrentTLS != nil {
		if cfg := d.opts.CurrentTLS(); cfg != nil {
			cfg = cfg.Clone()
			cfg.NextProtos = nil
			dialer.TLSClientConfig = cfg
		}
	}
	dialer.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		if cancel {
			_ = c.Close()
			return nil, ctx.Err()
		}
		raw = c
		return newCorkConn(c), nil // see corkConn
	}
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		cancel = true
		if raw != nil {
			_ = raw.Close()
		}
	})
	conn, resp, err := dialer.DialContext(ctx, d.opts.URL, d.header.Clone())
	if !stop() && err == nil {
		_ = conn.Close()
		err = ctx.Err()
	}
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, fmt.Errorf("dial websocket %s: %w", d.opts.URL, err)
	}
	var ids []string
	if tc, ok := conn.NetConn().(*tls.Conn); ok {
		ids = verifiedNodeIDs(d.log, tc.ConnectionState())
	}
	return newWebsocketSession(g, d.log, "ws "+d.opts.URL, conn, d.isTLS, ids)
}

// newWebsocketSession starts the reader and writer of a websocket session;
// every message is one binary websocket message.
func newWebsocketSession(g *group, log *slog.Logger, remote string, conn *websocket.Conn,
	isTLS bool, ids []string) (Session, error) {
	conn.SetReadLimit(wsReadLimit)
	s := newSession(remote)
	// gorilla's SetWriteDeadline must not race with a write, so a writer
	// stuck on a peer that stopped reading is unblocked by closing the
	// connection under it instead.
	var unstick *time.Timer
	s.onFail = func() {
		unstick = time.AfterFunc(closeFlushTimeout, func() { _ = conn.NetConn().Close() })
	}
	// Each message is one websocket message (the wire contract); the
	// batch leaves in one write when the connection is corked.
	cork := corkOf(conn.NetConn())
	write := func(batch [][]byte) error {
		if cork != nil && len(batch) > 1 {
			cork.cork()
		}
		for _, msg := range batch {
			if err := conn.WriteMessage(websocket.BinaryMessage, msg); err != nil {
				if cork != nil {
					_ = cork.uncork()
				}
				return err
			}
		}
		if cork != nil {
			return cork.uncork()
		}
		return nil
	}
	closeConn := func() {
		unstick.Stop() // set: closeConn runs after the session failed
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeFlushTimeout))
		_ = conn.Close()
	}
	read := func() ([]byte, error) {
		for {
			_, r, err := conn.NextReader() // text messages are accepted too, as upstream does
			if err != nil {
				return nil, err
			}
			msg, err := readPooled(r)
			if err != nil {
				return nil, err
			}
			if len(msg) > 0 {
				return msg, nil
			}
			ReleaseMessage(msg)
			log.Warn("dropped empty websocket message", "remote", remote)
		}
	}
	if !g.spawn(s.writer(write, closeConn)) {
		_ = conn.Close()
		return nil, errStopping
	}
	if !g.spawn(func() { s.readLoop(read) }) {
		s.fail(errStopping)
		return nil, errStopping
	}
	return withIdentity(s, isTLS, ids), nil
}
