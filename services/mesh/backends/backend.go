// Package backends carries netceptor messages between two neighbouring nodes.
//
// A backend (tcp, udp, websocket; listener or dialer) produces sessions. A
// session is a bidirectional pipe of discrete messages: every Send is exactly
// one netceptor message at the other end, every Recv returns exactly one.
// Backends know nothing about routing; the mesh node (package mesh) runs the
// session state machine on top of the sessions a backend hands it.
//
// As a library: build a listener or dialer (NewTCPListener, NewTCPDialer,
// NewUDPListener, NewUDPDialer, NewWebsocketListener, NewWebsocketDialer;
// TLS through their options) and hand it to mesh.Node.AddBackend, which
// starts it and runs its sessions; the node stops it when it closes. A
// TCP listener on 127.0.0.1:0 reports its bound address through Addr once
// started. Package memory is the in-process equivalent for tests.
package backends

import (
	"context"
	"errors"
	"time"
)

// MaxMessageSize is the largest message a backend accepts to send or
// receive. TCP framing has a 16-bit length, so nothing larger can cross a
// TCP session; the same bound protects the other transports.
const MaxMessageSize = 65535

// ErrMessageTooLarge is returned by Send for messages over MaxMessageSize
// and by Recv when the peer announces one.
var ErrMessageTooLarge = errors.New("message exceeds the 65535-byte backend limit")

// ErrEmptyMessage is returned by Send for a zero-length message (which
// would crash upstream nodes) and by Recv when the peer sends one.
var ErrEmptyMessage = errors.New("empty backend message")

// ErrTimeout is returned by Recv when no message arrived within the timeout.
var ErrTimeout = errors.New("receive timeout")

// Session is one connection to a neighbour. Send and Recv may be called
// concurrently with each other (one sender, one receiver); Close unblocks both.
type Session interface {
	// Send writes one message. It must not retain msg after returning.
	Send(msg []byte) error
	// Recv returns the next message, which then belongs to the caller (the
	// mesh forwards it in place), or ErrTimeout after timeout with
	// nothing received (the session stays usable), or another error when the
	// session is finished.
	Recv(timeout time.Duration) ([]byte, error)
	// Close ends the session; it is safe to call more than once.
	Close() error
	// RemoteAddr describes the transport peer, for logs ("tcp 127.0.0.1:4000").
	RemoteAddr() string
}

// Backend is a source of sessions.
//
// Start returns at once: an error if the backend cannot begin (bind failed,
// bad address), else it keeps listening or dialing in goroutines of its own
// until ctx is cancelled. For every new session it calls accept on a
// goroutine of its own; accept owns the session and returns when the
// session has ended (a dialer waits for that before it redials). Errors
// after Start are logged and retried by the backend. The returned wait
// function blocks until, after ctx is cancelled, every session the backend
// created is closed and every goroutine it started has exited.
type Backend interface {
	Start(ctx context.Context, accept func(Session)) (wait func(), err error)
	// Kind names the backend in logs and status, e.g. "tcp-listener".
	Kind() string
}

// Enqueuer is implemented by sessions with a send queue of their own. The
// mesh hands data messages straight to it instead of to a writer goroutine
// of its own that would call Send: that saves a goroutine hand-off and a
// copy per message on the forwarding path.
type Enqueuer interface {
	// Enqueue queues msg without blocking and takes ownership of it: the
	// caller must not modify msg afterwards (the session only reads it).
	// It reports false when the queue is full and msg was dropped, an error
	// once the session has ended, and ErrNotQueued when the session has no
	// queue (the caller then uses Send).
	Enqueue(msg []byte) (queued bool, err error)
	// EnqueueWait is Enqueue that waits for room in a full queue until
	// cancel is closed (then it reports false). A locally originated
	// datagram waits like a UDP socket's sendto on a full send buffer,
	// instead of being lost to its own sender.
	EnqueueWait(msg []byte, cancel <-chan struct{}) (queued bool, err error)
}

// HeldEnqueuer is implemented by sessions that can hold queued messages
// until told to write them. A node forwarding what one session received
// queues each message on its next hop with EnqueueHeld, and calls Flush
// on those next hops once the receiving session has nothing more at hand
// (Buffered): a burst then leaves in one write, made by the receiving
// goroutine, and a lone message leaves at once, without waking a writer
// goroutine.
type HeldEnqueuer interface {
	// EnqueueHeld is Enqueue that may leave msg queued until Flush.
	EnqueueHeld(msg []byte) (queued bool, err error)
	// Flush writes what EnqueueHeld left: from the calling goroutine when
	// that cannot block, else by waking the session's writer.
	Flush()
}

// Buffered is implemented by sessions that can tell whether their next
// Recv would return at once.
type Buffered interface {
	// Buffered reports whether a received message is at hand.
	Buffered() bool
}

// ErrNotQueued is returned by Enqueue of a session that sends directly
// (UDP): use Send.
var ErrNotQueued = errors.New("backend session has no send queue")

// ErrSessionClosed is returned by Send and Recv after the session was closed
// locally.
var ErrSessionClosed = errors.New("backend session closed")

// PeerIdentified is implemented by sessions that run over TLS with a
// verified peer certificate. The mesh may use it to bind the peer's node ID
// (learned from its routing updates) to its certificate; upstream never does
// this on backends (docs/protocol.md §9.3), so it is an optional, stricter check.
type PeerIdentified interface {
	// PeerNodeIDs returns the Receptor node-ID SANs (OID
	// 1.3.6.1.4.1.2312.19.1) of the peer's leaf certificate, or nil when the
	// peer presented no certificate or it carries none.
	PeerNodeIDs() []string
}
