package backends

import (
	"errors"
	"testing"
)

func TestEnqueue(t *testing.T) {
	cases := []struct {
		name    string
		queued  bool // transport with a send queue (TCP, websocket)
		prefill int  // messages already queued
		closed  bool
		msg     []byte
		want    bool
		wantErr error
	}{
		{"queued", true, 0, false, []byte("m"), true, nil},
		{"last free slot", true, sendQueueLen - 1, false, []byte("m"), true, nil},
		{"full queue drops", true, sendQueueLen, false, []byte("m"), false, nil},
		{"closed session", true, 0, true, []byte("m"), false, ErrSessionClosed},
		{"empty message", true, 0, false, nil, false, ErrEmptyMessage},
		{"oversize message", true, 0, false, make([]byte, MaxMessageSize+1), false, ErrMessageTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession("test")
			for range tc.prefill {
				s.out <- []byte("x")
			}
			if tc.closed {
				_ = s.Close()
			}
			got, err := s.Enqueue(tc.msg)
			if got != tc.want || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Enqueue = %v, %v; want %v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestEnqueueWait: a full queue makes EnqueueWait wait until there is room,
// cancel is closed, or the session ends.
func TestEnqueueWait(t *testing.T) {
	cases := []struct {
		name    string
		then    func(s *session, cancel chan struct{}) // run while the caller waits
		want    bool
		wantErr error
	}{
		{"room made", func(s *session, _ chan struct{}) { <-s.out }, true, nil},
		{"cancelled", func(_ *session, cancel chan struct{}) { close(cancel) }, false, nil},
		{"session closed", func(s *session, _ chan struct{}) { _ = s.Close() }, false, ErrSessionClosed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession("test")
			for range sendQueueLen {
				s.out <- []byte("x")
			}
			cancel := make(chan struct{})
			type result struct {
				ok  bool
				err error
			}
			done := make(chan result, 1)
			go func() {
				ok, err := s.EnqueueWait([]byte("m"), cancel)
				done <- result{ok, err}
			}()
			tc.then(s, cancel)
			r := <-done
			if r.ok != tc.want || !errors.Is(r.err, tc.wantErr) {
				t.Fatalf("EnqueueWait = %v, %v; want %v, %v", r.ok, r.err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestTCPEnqueueDelivers: enqueued messages cross a TCP session intact and
// in order, interleaved with Send.
func TestTCPEnqueueDelivers(t *testing.T) {
	lr, dr := newTCPPair(t, nil, nil)
	ds, ls := dr.next(), lr.next()
	q, ok := ds.(Enqueuer)
	if !ok {
		t.Fatalf("%T does not implement Enqueuer", ds)
	}
	var want [][]byte
	for i, size := range []int{1, 1200, MaxMessageSize, 7} {
		msg := pattern(size, byte(i))
		want = append(want, msg)
		if i%2 == 0 {
			if queued, err := q.Enqueue(msg); !queued || err != nil {
				t.Fatalf("Enqueue %d bytes: %v, %v", size, queued, err)
			}
		} else if err := ds.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range want {
		mustEqual(t, recv(t, ls), w)
	}
}
