package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
)

// maxDatagram is the receive buffer of every datagram socket: one UDP
// datagram or mesh payload always fits (docs/protocol.md §11.3).
const maxDatagram = 65536

// errorPause keeps a session reader from spinning on repeated errors
// (e.g. ICMP port unreachable on a connected UDP socket).
const errorPause = 10 * time.Millisecond

// backend is the per-source half of a datagram proxy session: a mesh
// socket on a fresh ephemeral service (udp-server) or a connected local UDP
// socket (udp-client).
type backend interface {
	// send forwards one datagram from the source.
	send(p []byte) error
	// recv returns the next datagram for the source; drop reports one
	// that must not be passed on (wrong origin).
	recv(buf []byte) (n int, drop bool, err error)
	setReadDeadline(t time.Time) error
	close()
}

// relay is the engine of both datagram proxies: datagrams read on front
// are keyed by their source, each source gets its own backend, and what a
// backend receives goes back to that source from front. Sessions idle in
// both directions for opts.UDPIdleTimeout expire; at most
// opts.MaxUDPSessions exist at once.
type relay struct {
	front net.PacketConn
	open  func(src net.Addr) (backend, error)
	opts  Options
	log   *slog.Logger

	wg       sync.WaitGroup
	mu       sync.Mutex
	sessions map[string]*session
	stopped  bool
	full     bool // a "limit reached" warning was logged since the last free slot
}

type session struct {
	key  string
	src  net.Addr
	b    backend
	last time.Time // last datagram in either direction; guarded by relay.mu
}

func newRelay(front net.PacketConn, open func(net.Addr) (backend, error), opts Options, log *slog.Logger) *relay {
	return &relay{front: front, open: open, opts: opts, log: log, sessions: map[string]*session{}}
}

// start serves until ctx ends; wait blocks until front and every session
// are closed and all goroutines have exited.
func (r *relay) start(ctx context.Context) (wait func()) {
	stop := context.AfterFunc(ctx, func() { _ = r.front.Close() })
	r.wg.Go(func() {
		r.frontLoop(ctx)
		r.closeAll()
	})
	return func() {
		r.wg.Wait()
		stop()
	}
}

func (r *relay) frontLoop(ctx context.Context) {
	buf := make([]byte, maxDatagram)
	for {
		n, src, err := r.front.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Warn("proxy: datagram read failed", "err", err)
			if !backoff.Sleep(ctx, errorPause) {
				return
			}
			continue
		}
		s := r.session(src)
		if s == nil {
			continue
		}
		if err := s.b.send(buf[:n]); err != nil {
			r.log.Warn("proxy: datagram dropped", "from", src, "bytes", n, "err", err)
		}
	}
}

// session returns the live session for src, creating it if needed, and
// marks it active; nil when the datagram must be dropped.
func (r *relay) session(src net.Addr) *session {
	key := src.String()
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.sessions[key]; ok {
		s.last = time.Now()
		return s
	}
	if r.stopped {
		return nil
	}
	if len(r.sessions) >= r.opts.MaxUDPSessions {
		if !r.full {
			r.log.Warn("proxy: session limit reached, dropping datagrams from new sources",
				"limit", r.opts.MaxUDPSessions, "from", src)
			r.full = true
		}
		return nil
	}
	b, err := r.open(src)
	if err != nil {
		// Upstream stops the whole proxy here; we drop only this datagram.
		r.log.Warn("proxy: cannot open session, datagram dropped", "from", src, "err", err)
		return nil
	}
	s := &session{key: key, src: src, b: b, last: time.Now()}
	r.sessions[key] = s
	r.wg.Go(func() { r.returnLoop(s) })
	r.log.Debug("proxy: session opened", "from", src)
	return s
}

// returnLoop passes what the session's backend receives back to its
// source, and expires the session once it has been idle long enough.
func (r *relay) returnLoop(s *session) {
	buf := make([]byte, maxDatagram)
	idle := r.opts.UDPIdleTimeout
	for {
		_ = s.b.setReadDeadline(time.Now().Add(idle))
		n, drop, err := s.b.recv(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if r.expire(s) {
					return
				}
				continue
			}
			if r.gone(s) {
				return
			}
			r.log.Debug("proxy: session read failed", "from", s.src, "err", err)
			time.Sleep(errorPause)
			continue
		}
		if drop {
			continue
		}
		r.mu.Lock()
		s.last = time.Now()
		r.mu.Unlock()
		if _, err := r.front.WriteTo(buf[:n], s.src); err != nil {
			if r.gone(s) {
				return
			}
			r.log.Warn("proxy: datagram dropped", "to", s.src, "bytes", n, "err", err)
		}
	}
}

// expire closes s if it has been idle for the whole timeout.
func (r *relay) expire(s *session) bool {
	r.mu.Lock()
	if r.sessions[s.key] != s {
		r.mu.Unlock()
		return true
	}
	if time.Since(s.last) < r.opts.UDPIdleTimeout {
		r.mu.Unlock()
		return false
	}
	delete(r.sessions, s.key)
	r.full = false
	r.mu.Unlock()
	s.b.close()
	r.log.Debug("proxy: idle session expired", "from", s.src)
	return true
}

// gone reports whether s was removed (closed by expiry or shutdown).
func (r *relay) gone(s *session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped || r.sessions[s.key] != s
}

func (r *relay) closeAll() {
	r.mu.Lock()
	r.stopped = true
	all := make([]*session, 0, len(r.sessions))
	for k, s := range r.sessions {
		all = append(all, s)
		delete(r.sessions, k)
	}
	r.mu.Unlock()
	for _, s := range all {
		s.b.close()
	}
}

// numSessions is for tests.
func (r *relay) numSessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}
