// Package memory is an in-process backend: named listeners and dialers on
// a Network exchange messages over bounded channels, so tests and
// benchmarks can build meshes without sockets.
package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
	"github.com/receptor-mesh/receptor/services/mesh/backends"
)

// DefaultQueueLen is the per-direction message buffer of a session.
const DefaultQueueLen = 256

// ErrClosed is returned by Send and Recv on a closed session.
var ErrClosed = errors.New("memory session closed")

// ErrNoListener is returned when dialing a name nobody listens on.
var ErrNoListener = errors.New("no memory listener")

// session is one end of a pipe. Both ends share done.
type session struct {
	in     chan []byte // messages for this end
	out    chan []byte // the peer's in
	done   chan struct{}
	once   *sync.Once
	remote string
}

// Pipe returns two connected sessions; each direction buffers queueLen
// messages (DefaultQueueLen if ≤ 0) and Send blocks when that is full.
func Pipe(queueLen int, nameA, nameB string) (a, b backends.Session) {
	if queueLen <= 0 {
		queueLen = DefaultQueueLen
	}
	ab, ba := make(chan []byte, queueLen), make(chan []byte, queueLen)
	done, once := make(chan struct{}), new(sync.Once)
	return &session{in: ba, out: ab, done: done, once: once, remote: "memory " + nameB},
		&session{in: ab, out: ba, done: done, once: once, remote: "memory " + nameA}
}

func (s *session) Send(msg []byte) error {
	switch {
	case len(msg) == 0:
		return backends.ErrEmptyMessage
	case len(msg) > backends.MaxMessageSize:
		return backends.ErrMessageTooLarge
	}
	select {
	case <-s.done:
		return ErrClosed
	default:
	}
	m := append([]byte(nil), msg...)
	select {
	case s.out <- m:
		return nil
	case <-s.done:
		return ErrClosed
	}
}

func (s *session) Recv(timeout time.Duration) ([]byte, error) {
	// Deliver what was queued before a close, like a socket would.
	select {
	case m := <-s.in:
		return m, nil
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case m := <-s.in:
		return m, nil
	case <-s.done:
		select {
		case m := <-s.in:
			return m, nil
		default:
			return nil, ErrClosed
		}
	case <-t.C:
		return nil, backends.ErrTimeout
	}
}

func (s *session) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *session) RemoteAddr() string { return s.remote }

// Network is a namespace of in-process listeners.
type Network struct {
	mu        sync.Mutex
	listeners map[string]*listener
	queueLen  int
}

// NewNetwork returns an empty network whose sessions buffer queueLen
// messages per direction (DefaultQueueLen if ≤ 0).
func NewNetwork(queueLen int) *Network {
	return &Network{listeners: map[string]*listener{}, queueLen: queueLen}
}

type listener struct {
	ctx    context.Context
	accept func(backends.Session)
	wg     sync.WaitGroup
}

// Listener returns a backend that accepts dials to name.
func (n *Network) Listener(name string) backends.Backend {
	return &listenerBackend{net: n, name: name}
}

type listenerBackend struct {
	net  *Network
	name string
}

func (l *listenerBackend) Kind() string { return "memory-listener" }

func (l *listenerBackend) Start(ctx context.Context, accept func(backends.Session)) (func(), error) {
	n := l.net
	ent := &listener{ctx: ctx, accept: accept}
	n.mu.Lock()
	if _, taken := n.listeners[l.name]; taken {
		n.mu.Unlock()
		return nil, fmt.Errorf("memory listener %q: name already in use", l.name)
	}
	n.listeners[l.name] = ent
	n.mu.Unlock()
	// Unregister when the owner stops; sessions close via their own hooks.
	context.AfterFunc(ctx, func() {
		n.mu.Lock()
		if n.listeners[l.name] == ent {
			delete(n.listeners, l.name)
		}
		n.mu.Unlock()
	})
	return func() {
		<-ctx.Done()
		ent.wg.Wait()
	}, nil
}

// Dial connects to the listener called name and returns the dialer's end
// of the new session. Tests use it to play a hand-written peer.
func (n *Network) Dial(name string) (backends.Session, error) {
	n.mu.Lock()
	ent := n.listeners[name]
	if ent == nil || ent.ctx.Err() != nil {
		n.mu.Unlock()
		return nil, fmt.Errorf("dial memory %q: %w", name, ErrNoListener)
	}
	// Add under the lock so the listener's wait cannot miss this session.
	ent.wg.Add(1)
	n.mu.Unlock()
	mine, theirs := Pipe(n.queueLen, "dialer", name)
	go func() {
		defer ent.wg.Done()
		stop := context.AfterFunc(ent.ctx, func() { theirs.Close() })
		defer stop()
		ent.accept(theirs)
		theirs.Close()
	}()
	return mine, nil
}

// DialerOptions tune a dialer's redial loop.
type DialerOptions struct {
	// Backoff is the first redial delay (default 100 ms; the in-process
	// default is shorter than the real backends' 5 s to keep tests fast).
	Backoff time.Duration
	// MaxBackoff caps the delay, which grows ×1.5 (default 1 s).
	MaxBackoff time.Duration
	// NoRedial stops the dialer after its first session or failure.
	NoRedial bool
}

// Dialer returns a backend that keeps one session to the listener name.
func (n *Network) Dialer(name string, opts DialerOptions) backends.Backend {
	if opts.Backoff <= 0 {
		opts.Backoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff < opts.Backoff {
		opts.MaxBackoff = max(time.Second, opts.Backoff)
	}
	return &dialerBackend{net: n, name: name, opts: opts}
}

type dialerBackend struct {
	net  *Network
	name string
	opts DialerOptions
}

func (d *dialerBackend) Kind() string { return "memory-dialer" }

func (d *dialerBackend) Start(ctx context.Context, accept func(backends.Session)) (func(), error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		delay := backoff.Policy{Initial: d.opts.Backoff, Max: d.opts.MaxBackoff, Factor: 1.5}.Start()
		for ctx.Err() == nil {
			s, err := d.net.Dial(d.name)
			if err == nil {
				delay.Reset()
				stop := context.AfterFunc(ctx, func() { s.Close() })
				accept(s)
				s.Close()
				stop()
			}
			if d.opts.NoRedial {
				return
			}
			if !backoff.Sleep(ctx, delay.Next()) {
				return
			}
		}
	}()
	return func() { <-ctx.Done(); <-done }, nil
}
