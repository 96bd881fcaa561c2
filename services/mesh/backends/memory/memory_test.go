package memory

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPipe(t *testing.T) {
	a, b := Pipe(2, "a", "b")
	tests := []struct {
		name string
		msg  []byte
		want error
	}{
		{"empty", nil, backends.ErrEmptyMessage},
		{"too large", make([]byte, backends.MaxMessageSize+1), backends.ErrMessageTooLarge},
		{"max", make([]byte, backends.MaxMessageSize), nil},
		{"small", []byte("hi"), nil},
	}
	for _, tt := range tests {
		if err := a.Send(tt.msg); !errors.Is(err, tt.want) {
			t.Fatalf("%s: Send err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if m, err := b.Recv(time.Second); err != nil || len(m) != backends.MaxMessageSize {
		t.Fatalf("Recv = %d bytes, %v", len(m), err)
	}
	if _, err := a.Recv(10 * time.Millisecond); !errors.Is(err, backends.ErrTimeout) {
		t.Fatalf("Recv on idle = %v", err)
	}
	// Messages queued before Close are still delivered, then ErrClosed.
	a.Close()
	if m, err := b.Recv(time.Second); err != nil || string(m) != "hi" {
		t.Fatalf("Recv after close = %q, %v", m, err)
	}
	if _, err := b.Recv(time.Second); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv on closed = %v", err)
	}
	if err := b.Send([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send on closed = %v", err)
	}
	if b.RemoteAddr() != "memory a" {
		t.Fatal(b.RemoteAddr())
	}
}

func TestSendDoesNotRetain(t *testing.T) {
	a, b := Pipe(1, "a", "b")
	buf := []byte("abc")
	if err := a.Send(buf); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X'
	if m, _ := b.Recv(time.Second); string(m) != "abc" {
		t.Fatalf("got %q", m)
	}
}

func TestListenerDialer(t *testing.T) {
	n := NewNetwork(0)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	got := []string{}
	echo := func(s backends.Session) {
		for {
			m, err := s.Recv(time.Second)
			if errors.Is(err, backends.ErrTimeout) {
				continue
			}
			if err != nil {
				return
			}
			_ = s.Send(m)
		}
	}
	lwait, err := n.Listener("srv").Start(ctx, echo)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Listener("srv").Start(ctx, echo); err == nil {
		t.Fatal("duplicate listener name accepted")
	}
	sessions := make(chan struct{}, 10)
	dwait, err := n.Dialer("srv", DialerOptions{Backoff: time.Millisecond}).Start(ctx, func(s backends.Session) {
		sessions <- struct{}{}
		if err := s.Send([]byte("ping")); err != nil {
			return
		}
		m, err := s.Recv(5 * time.Second)
		if err == nil {
			mu.Lock()
			got = append(got, string(m))
			mu.Unlock()
		}
		// Returning ends the session; the dialer redials.
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		select {
		case <-sessions:
		case <-time.After(10 * time.Second):
			t.Fatal("dialer did not redial")
		}
	}
	cancel()
	lwait()
	dwait()
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 2 || got[0] != "ping" {
		t.Fatalf("echoes = %v", got)
	}
	if _, err := n.Dial("srv"); !errors.Is(err, ErrNoListener) {
		t.Fatalf("dial after stop = %v", err)
	}
}

func TestDialerNoRedial(t *testing.T) {
	n := NewNetwork(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	wait, err := n.Dialer("nobody", DialerOptions{NoRedial: true}).Start(ctx, func(backends.Session) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	wait()
	if calls != 0 {
		t.Fatalf("accept called %d times without a listener", calls)
	}
}
