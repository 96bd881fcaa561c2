package backends

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
)

func TestBackoffSchedule(t *testing.T) {
	// docs/protocol.md §3.1: 5, 7.5, 11.25, 16.875, 20, 20, ... s.
	b := Backoff{}.withDefaults()
	want := []time.Duration{
		5 * time.Second, 7500 * time.Millisecond, 11250 * time.Millisecond,
		16875 * time.Millisecond, 20 * time.Second, 20 * time.Second,
	}
	d := b.Initial
	for i, w := range want {
		if d != w {
			t.Fatalf("delay %d = %v, want %v", i, d, w)
		}
		d = b.policy().Next(d)
	}
}

func TestBackoffDefaults(t *testing.T) {
	cases := []struct {
		name string
		in   Backoff
		want Backoff
	}{
		{"zero", Backoff{}, DefaultBackoff()},
		{"custom kept", Backoff{Initial: time.Millisecond, Max: 3 * time.Millisecond, Factor: 2, Jitter: 0.5},
			Backoff{Initial: time.Millisecond, Max: 3 * time.Millisecond, Factor: 2, Jitter: 0.5}},
		{"max below initial", Backoff{Initial: time.Minute, Max: time.Second},
			Backoff{Initial: time.Minute, Max: time.Minute, Factor: 1.5, Jitter: 0.1}},
		{"bad factor and jitter", Backoff{Factor: 0.5, Jitter: 2}, DefaultBackoff()},
	}
	for _, tc := range cases {
		if got := tc.in.withDefaults(); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestBackoffJitter: the redial schedule spreads each wait by ±10% (how
// backoff.Policy spreads is tested in services/internal/backoff), also when the
// options leave Jitter unset.
func TestBackoffJitter(t *testing.T) {
	want := backoff.Policy{Initial: 5 * time.Second, Max: 20 * time.Second, Factor: 1.5, Jitter: 0.1}
	for _, b := range []Backoff{{}, DefaultBackoff()} {
		if got := b.policy(); got != want {
			t.Fatalf("%+v.policy() = %+v, want %+v", b, got, want)
		}
	}
}

// TestCancelDuringHandshake dials servers that accept and then say nothing:
// cancelling must end the dial well before any handshake timeout.
func TestCancelDuringHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	accepted := make(chan struct{}, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			accepted <- struct{}{}
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	}()
	addr := ln.Addr().String()
	pki := newTestPKI(t)
	tcp, err := NewTCPDialer(TCPDialerOptions{Address: addr, Redial: true, TLS: pki.clientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := NewWebsocketDialer(WebsocketDialerOptions{URL: "ws://" + addr + "/", Redial: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []Backend{tcp, ws} {
		t.Run(b.Kind(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			wait, err := b.Start(ctx, func(Session) { t.Error("unexpected session") })
			if err != nil {
				t.Fatal(err)
			}
			<-accepted // the dial is now stuck in its handshake
			cancel()
			done := make(chan struct{})
			go func() {
				wait()
				close(done)
			}()
			// Failure bound below the 15 s handshake timeouts.
			select {
			case <-done:
			case <-time.After(tlsDialTimeout / 2):
				t.Fatal("cancel did not interrupt the handshake")
			}
		})
	}
}
