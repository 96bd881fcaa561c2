package control

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/backoff"
)

// Origin says where a connection came from. It decides two things upstream
// derives from the connection type: whether work signatures are verified
// (never for Unix-socket clients, docs/protocol.md §14.3) and how a results stream ends
// (full close, or closing only the write direction of a mesh stream).
type Origin int

const (
	OriginUnix Origin = iota + 1 // local Unix socket: trusted, full close
	OriginTCP                    // TCP or TLS listener: untrusted, full close
	OriginMesh                   // mesh service listener: untrusted, half close
)

func (o Origin) String() string {
	switch o {
	case OriginUnix:
		return "unix"
	case OriginTCP:
		return "tcp"
	case OriginMesh:
		return "mesh"
	}
	return fmt.Sprintf("origin(%d)", int(o))
}

// Defaults for Options.
const (
	DefaultMaxSessions      = 1024
	DefaultMaxLineBytes     = 1 << 20
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultIdleTimeout      = 60 * time.Second
	DefaultFirstLineTimeout = 10 * time.Second
)

// Options tune a Server. Zero values take the defaults above.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	// MaxSessions bounds concurrent sessions per Serve call; further
	// connections wait in the listener's backlog.
	MaxSessions int
	// MaxLineBytes bounds one request line. Upstream has no limit; longer
	// lines get "ERROR: line too long" and the session is closed.
	MaxLineBytes int
	// HandshakeTimeout bounds the server TLS handshake.
	HandshakeTimeout time.Duration
	// Policy authorizes every command for the session's principal (the
	// unix peer's uid, the TLS client certificate, the mesh node, or
	// anonymous). Nil lets every command through: only for tests and
	// embedders with checks of their own.
	Policy *authz.Policy
	// IdleTimeout bounds the wait for each complete request line after the
	// first, and each pause in a work submit payload; a session that lets
	// it pass is closed. Results streams and connect bridges are not
	// bounded. Upstream has no limit, so idle clients hold session slots.
	IdleTimeout time.Duration
	// FirstLineTimeout bounds the wait for the first complete request line
	// after the greeting (at most IdleTimeout).
	FirstLineTimeout time.Duration
}

// Server runs control sessions against an Ops implementation.
type Server struct {
	ops              Ops
	log              *slog.Logger
	maxSessions      int
	maxLine          int
	handshakeTimeout time.Duration
	policy           *authz.Policy
	idleTimeout      time.Duration
	firstLineTimeout time.Duration
	stats            *stats // shared by the copies of WithIdleTimeout
}

// NewServer returns a Server answering with ops.
func NewServer(ops Ops, opts Options) *Server {
	s := &Server{
		ops:              ops,
		log:              opts.Logger,
		maxSessions:      opts.MaxSessions,
		maxLine:          opts.MaxLineBytes,
		handshakeTimeout: opts.HandshakeTimeout,
		policy:           opts.Policy,
		stats:            &stats{},
	}
	s.setIdleTimeouts(opts.IdleTimeout, opts.FirstLineTimeout)
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.maxSessions <= 0 {
		s.maxSessions = DefaultMaxSessions
	}
	if s.maxLine <= 0 {
		s.maxLine = DefaultMaxLineBytes
	}
	if s.handshakeTimeout <= 0 {
		s.handshakeTimeout = DefaultHandshakeTimeout
	}
	return s
}

func (s *Server) setIdleTimeouts(idle, first time.Duration) {
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	if first <= 0 {
		first = DefaultFirstLineTimeout
	}
	s.idleTimeout, s.firstLineTimeout = idle, min(first, idle)
}

// WithIdleTimeout returns a copy of s whose sessions use the idle timeout
// idle (the first-line timeout is capped to it); 0 returns s. It serves
// listeners configured with their own timeout.
func (s *Server) WithIdleTimeout(idle time.Duration) *Server {
	if idle <= 0 {
		return s
	}
	c := *s
	c.setIdleTimeouts(idle, s.firstLineTimeout)
	return &c
}

// Serve accepts connections on ln until ctx is cancelled or ln fails, and
// runs one session per connection. It closes ln, ends every session it
// started and waits for them before returning. A cancelled ctx returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener, origin Origin) error {
	stopClose := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stopClose()
	defer ln.Close()

	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, s.maxSessions)
	pauses := backoff.AcceptRetry.Start()
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		conn, err := ln.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("control service accept on %s: %w", ln.Addr(), err)
			}
			// Transient failures (e.g. out of file descriptors): back off.
			s.log.Error("control service accept failed", "addr", ln.Addr().String(), "err", err)
			if !backoff.Sleep(ctx, pauses.Next()) {
				return nil
			}
			continue
		}
		pauses.Reset()
		wg.Go(func() {
			defer func() { <-slots }()
			s.ServeConn(ctx, conn, origin)
		})
	}
}

// identify names the caller of a control connection: the uid of a unix
// peer, the verified client certificate of a TLS connection, the node of
// a mesh stream (the node ID its mesh address claims), else anonymous.
func identify(conn net.Conn, origin Origin) authz.Principal {
	switch origin {
	case OriginUnix:
		if pr, err := authz.UnixPeer(conn); err == nil {
			return pr
		}
	case OriginTCP:
		if tc, ok := conn.(*tls.Conn); ok {
			return authz.FromTLS(tc.ConnectionState())
		}
	case OriginMesh:
		if node, _, ok := strings.Cut(conn.RemoteAddr().String(), ":"); ok && node != "" {
			return authz.Principal{Kind: authz.KindNode, Name: node}
		}
	}
	return authz.Anonymous
}

// ServeConn runs one session on conn and closes it. A *tls.Conn gets its
// handshake first, bounded by the handshake timeout; on failure the
// connection is closed without a greeting.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn, origin Origin) {
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Closing the conn is what unblocks a session stuck in a read or write.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	log := s.log.With("remote", conn.RemoteAddr().String(), "origin", origin.String())
	if tc, ok := conn.(*tls.Conn); ok {
		hctx, hcancel := context.WithTimeout(ctx, s.handshakeTimeout)
		err := tc.HandshakeContext(hctx)
		hcancel()
		if err != nil {
			log.Error("control service TLS handshake error, closing", "err", err)
			return
		}
	}
	s.stats.sessionStarted(origin)
	defer s.stats.sessionEnded(origin)
	pr := identify(conn, origin)
	log = log.With("principal", pr.String())
	log.Debug("control client connected")
	sess := newSession(s, conn, origin, log)
	sess.principal = pr
	sess.run(authz.NewContext(ctx, pr))
	log.Debug("control client disconnected")
}
