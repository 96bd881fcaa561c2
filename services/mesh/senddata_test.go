package mesh

import (
	"errors"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
)

// queueSession is a backend session with a one-slot send queue.
type queueSession struct {
	q      chan []byte
	closed chan struct{}
}

func (q *queueSession) Send([]byte) error                  { return nil }
func (q *queueSession) Recv(time.Duration) ([]byte, error) { return nil, backends.ErrTimeout }
func (q *queueSession) Close() error                       { return nil }
func (q *queueSession) RemoteAddr() string                 { return "queue" }

func (q *queueSession) Enqueue(msg []byte) (bool, error) {
	select {
	case q.q <- msg:
		return true, nil
	default:
		return false, nil
	}
}

func (q *queueSession) EnqueueWait(msg []byte, cancel <-chan struct{}) (bool, error) {
	select {
	case q.q <- msg:
		return true, nil
	case <-cancel:
		return false, nil
	case <-q.closed:
		return false, backends.ErrSessionClosed
	}
}

// TestSendDataFullQueue: with the backend queue full, forwarded messages
// are dropped (and counted) at once, while a local socket's datagram waits
// for room, for its socket's close, or for the session's end.
func TestSendDataFullQueue(t *testing.T) {
	cases := []struct {
		name      string
		local     bool                                      // sent by a local socket (waits)
		then      func(q *queueSession, wait chan struct{}) // while a local send waits
		wantErr   error
		wantDrops uint64
	}{
		{"transit drops", false, nil, errQueueFull, 1},
		{"local waits for room", true, func(q *queueSession, _ chan struct{}) { <-q.q }, nil, 0},
		{"local ends with its socket", true, func(_ *queueSession, w chan struct{}) { close(w) }, errQueueFull, 0},
		{"local ends with the session", true, func(q *queueSession, _ chan struct{}) { close(q.closed) }, backends.ErrSessionClosed, 0},
	}
	n, err := New(fastOptions("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := &queueSession{q: make(chan []byte, 1), closed: make(chan struct{})}
			q.q <- []byte("queued before")
			s := &session{n: n, tr: q, remote: "b"}
			s.wroteFirst.Store(true) // past the initial routing update: data goes to the backend's queue
			var wait chan struct{}
			if tc.local {
				wait = make(chan struct{})
			}
			done := make(chan error, 1)
			go func() { done <- s.sendData([]byte("msg"), wait, nil) }()
			if tc.then != nil {
				tc.then(q, wait)
			}
			if err := <-done; !errors.Is(err, tc.wantErr) {
				t.Fatalf("sendData = %v, want %v", err, tc.wantErr)
			}
			if got := s.dropped.Load(); got != tc.wantDrops {
				t.Fatalf("%d drops counted, want %d", got, tc.wantDrops)
			}
		})
	}
}

// TestSendDataBeforeFirstMessage: until the session writer has sent the
// initial routing update, data (a link probe) goes to the writer's queue,
// which sends control messages first, not straight to the backend's queue
// where it could overtake the update (docs/protocol.md §5.3).
func TestSendDataBeforeFirstMessage(t *testing.T) {
	n, err := New(fastOptions("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	q := &queueSession{q: make(chan []byte, 1), closed: make(chan struct{})}
	s := &session{n: n, tr: q, remote: "b", data: make(chan []byte, 1)}
	if err := s.sendData([]byte("probe"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(q.q) != 0 || len(s.data) != 1 {
		t.Fatalf("before the first message: %d in the backend queue, %d in the writer's; want 0, 1", len(q.q), len(s.data))
	}
	<-s.data
	s.wroteFirst.Store(true)
	if err := s.sendData([]byte("probe"), nil, nil); err != nil {
		t.Fatal(err)
	}
	if len(q.q) != 1 || len(s.data) != 0 {
		t.Fatalf("after the first message: %d in the backend queue, %d in the writer's; want 1, 0", len(q.q), len(s.data))
	}
}
