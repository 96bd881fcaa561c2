package backends

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
)

func newTCPPair(t *testing.T, serverTLS, clientTLS *tls.Config) (*running, *running) {
	t.Helper()
	l, err := NewTCPListener(TCPListenerOptions{Address: "127.0.0.1:0", TLS: serverTLS})
	if err != nil {
		t.Fatal(err)
	}
	lr := start(t, l)
	d, err := NewTCPDialer(TCPDialerOptions{Address: l.Addr().String(), Redial: true, TLS: clientTLS, Backoff: fastBackoff()})
	if err != nil {
		t.Fatal(err)
	}
	return lr, start(t, d)
}

func TestTCPRoundTrip(t *testing.T) {
	pki := newTestPKI(t)
	cases := []struct {
		name      string
		serverTLS *tls.Config
		clientTLS *tls.Config
	}{
		{"plain", nil, nil},
		{"tls", pki.serverConfig(), pki.clientConfig()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lr, dr := newTCPPair(t, tc.serverTLS, tc.clientTLS)
			ds, ls := dr.next(), lr.next()
			exchange(t, ds, ls, []int{1, 1000, MaxMessageSize})
			if tc.serverTLS == nil {
				if _, ok := ls.(PeerIdentified); ok {
					t.Fatalf("plain session claims a peer identity")
				}
				return
			}
			if got := nodeIDs(t, ls); !slices.Equal(got, []string{"client-node"}) {
				t.Fatalf("listener sees peer node IDs %q", got)
			}
			if got := nodeIDs(t, ds); !slices.Equal(got, []string{"server-node"}) {
				t.Fatalf("dialer sees peer node IDs %q", got)
			}
		})
	}
}

func TestTCPTLSInsecureSkipVerifyReportsNoNodeIDs(t *testing.T) {
	pki := newTestPKI(t)
	srv := pki.serverConfig()
	srv.ClientAuth = tls.NoClientCert
	lr, dr := newTCPPair(t, srv, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the point of the test
	ds, ls := dr.next(), lr.next()
	exchange(t, ds, ls, []int{10})
	if got := nodeIDs(t, ds); got != nil {
		t.Fatalf("unverified server certificate yields node IDs %q", got)
	}
	if got := nodeIDs(t, ls); got != nil {
		t.Fatalf("absent client certificate yields node IDs %q", got)
	}
}

func TestTCPTLSUntrustedClientGetsNoSession(t *testing.T) {
	pki := newTestPKI(t)
	l, err := NewTCPListener(TCPListenerOptions{Address: "127.0.0.1:0", TLS: pki.serverConfig()})
	if err != nil {
		t.Fatal(err)
	}
	lr := start(t, l)
	rogue := pki.clientConfig()
	rogue.Certificates = []tls.Certificate{pki.rogue.TLS}
	d, err := NewTCPDialer(TCPDialerOptions{Address: l.Addr().String(), TLS: rogue})
	if err != nil {
		t.Fatal(err)
	}
	dr := start(t, d)
	// Redial is false: the dialer gives up by itself once the server
	// refuses the certificate (its first read fails).
	// Under TLS 1.3 the client finishes its handshake before the server
	// refuses the certificate, so a session may appear and then fail.
	ended := make(chan struct{})
	go func() {
		dr.wait()
		close(ended)
	}()
	select {
	case s := <-dr.sessions:
		if err := recvErr(t, s); err == nil {
			t.Fatal("session over a refused certificate stayed up")
		}
		<-ended
	case <-ended:
	}
	select {
	case s := <-lr.sessions:
		t.Fatalf("listener accepted a session from untrusted %s", s.RemoteAddr())
	default:
	}
	// The listener still serves trusted clients.
	d2, err := NewTCPDialer(TCPDialerOptions{Address: l.Addr().String(), TLS: pki.clientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	d2r := start(t, d2)
	exchange(t, d2r.next(), lr.next(), []int{5})
}

func TestTCPSendRejectsEmptyAndOversize(t *testing.T) {
	lr, dr := newTCPPair(t, nil, nil)
	ds, ls := dr.next(), lr.next()
	cases := []struct {
		size int
		want error
	}{
		{0, ErrEmptyMessage},
		{MaxMessageSize + 1, ErrMessageTooLarge},
	}
	for _, tc := range cases {
		if err := ds.Send(make([]byte, tc.size)); !errors.Is(err, tc.want) {
			t.Fatalf("Send(%d bytes) = %v, want %v", tc.size, err, tc.want)
		}
	}
	// Nothing reached the wire and the session still works.
	exchange(t, ds, ls, []int{3})
}

func TestTCPGarbageFramingEndsOnlyThatSession(t *testing.T) {
	cases := []struct {
		name  string
		bytes []byte
		want  error
	}{
		{"length larger than data, then EOF", []byte{10, 0, 1, 2, 3}, io.ErrUnexpectedEOF},
		{"zero-length frame", []byte{1, 0, 42, 0, 0}, ErrEmptyMessage},
		{"half a length prefix", []byte{5}, io.ErrUnexpectedEOF},
	}
	l, err := NewTCPListener(TCPListenerOptions{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	lr := start(t, l)
	good, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	goodSession := lr.next()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			s := lr.next()
			if _, err := c.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			_ = c.(*net.TCPConn).CloseWrite()
			if tc.want == ErrEmptyMessage {
				mustEqual(t, recv(t, s), []byte{42}) // the frame before it arrives
			}
			if err := recvErr(t, s); !errors.Is(err, tc.want) {
				t.Fatalf("session error = %v, want %v", err, tc.want)
			}
			// The other session is unaffected.
			frame, _ := AppendFrame(nil, []byte(tc.name))
			if _, err := good.Write(frame); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, recv(t, goodSession), []byte(tc.name))
		})
	}
}

func TestTCPListenerAcceptsManySessions(t *testing.T) {
	const n = 20
	l, err := NewTCPListener(TCPListenerOptions{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	lr := start(t, l)
	var dialers []*running
	for range n {
		d, err := NewTCPDialer(TCPDialerOptions{Address: l.Addr().String(), Redial: true, Backoff: fastBackoff()})
		if err != nil {
			t.Fatal(err)
		}
		dialers = append(dialers, start(t, d))
	}
	for i, dr := range dialers {
		if err := dr.next().Send([]byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range n {
		seen[string(recv(t, lr.next()))] = true
	}
	for i := range n {
		if !seen[strconv.Itoa(i)] {
			t.Fatalf("message %d missing; got %v", i, seen)
		}
	}
}

func TestTCPDialerRedialsAfterListenerRestart(t *testing.T) {
	l, err := NewTCPListener(TCPListenerOptions{Address: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	lr := start(t, l)
	addr := l.Addr().String()
	d, err := NewTCPDialer(TCPDialerOptions{Address: addr, Redial: true, Backoff: fastBackoff()})
	if err != nil {
		t.Fatal(err)
	}
	dr := start(t, d)
	first := dr.next()
	exchange(t, first, lr.next(), []int{1})
	lr.stop()
	if err := recvErr(t, first); err == nil {
		t.Fatal("session survived its listener")
	}
	l2, err := NewTCPListener(TCPListenerOptions{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	lr2 := start(t, l2)
	exchange(t, dr.next(), lr2.next(), []int{2})
}

func TestDialerWithoutRedialStops(t *testing.T) {
	t.Run("after a failed dial", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		d, err := NewTCPDialer(TCPDialerOptions{Address: addr, Backoff: fastBackoff()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		wait, err := d.Start(ctx, func(s Session) { t.Error("unexpected session") })
		if err != nil {
			t.Fatal(err)
		}
		waitReturns(t, wait) // without cancel
	})
	t.Run("after one session", func(t *testing.T) {
		l, err := NewTCPListener(TCPListenerOptions{Address: "127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		lr := start(t, l)
		d, err := NewTCPDialer(TCPDialerOptions{Address: l.Addr().String(), Backoff: fastBackoff()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var mu sync.Mutex
		sessions := 0
		wait, err := d.Start(ctx, func(s Session) {
			mu.Lock()
			sessions++
			mu.Unlock()
			_ = s.Close()
		})
		if err != nil {
			t.Fatal(err)
		}
		waitReturns(t, wait) // without cancel
		lr.next()
		if sessions != 1 {
			t.Fatalf("%d sessions, want 1", sessions)
		}
		select {
		case s := <-lr.sessions:
			t.Fatalf("listener got a second session from %s", s.RemoteAddr())
		default:
		}
	})
}

func TestCancelClosesSessionsAndWaitReturns(t *testing.T) {
	for _, cancelListener := range []bool{false, true} {
		t.Run(fmt.Sprintf("cancel listener %v", cancelListener), func(t *testing.T) {
			lr, dr := newTCPPair(t, nil, nil)
			ds, ls := dr.next(), lr.next()
			exchange(t, ds, ls, []int{1})
			local, remote, cancelled := ds, ls, dr
			if cancelListener {
				local, remote, cancelled = ls, ds, lr
			}
			cancelled.stop() // returns once its goroutines are gone
			if err := recvErr(t, local); !errors.Is(err, ErrSessionClosed) {
				t.Fatalf("Recv after cancel = %v, want ErrSessionClosed", err)
			}
			if err := local.Send([]byte{1}); !errors.Is(err, ErrSessionClosed) {
				t.Fatalf("Send after cancel = %v, want ErrSessionClosed", err)
			}
			if err := recvErr(t, remote); !errors.Is(err, io.EOF) {
				t.Fatalf("peer of a cancelled session sees %v, want EOF", err)
			}
		})
	}
}

func TestCloseUnblocksRecvAndFlushesQueuedSends(t *testing.T) {
	lr, dr := newTCPPair(t, nil, nil)
	ds, ls := dr.next(), lr.next()
	type result struct {
		msg []byte
		err error
	}
	blocked := make(chan result, 1)
	go func() {
		msg, err := ds.Recv(0) // no timeout: only Close can end it
		blocked <- result{msg, err}
	}()
	// A Reject followed at once by Close must still reach the peer.
	reject := []byte{3, '[', ']'}
	if err := ds.Send(reject); err != nil {
		t.Fatal(err)
	}
	if err := ds.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-blocked; !errors.Is(r.err, ErrSessionClosed) {
		t.Fatalf("blocked Recv after Close = %q, %v; want ErrSessionClosed", r.msg, r.err)
	}
	mustEqual(t, recv(t, ls), reject)
	if err := recvErr(t, ls); errors.Is(err, ErrSessionClosed) {
		t.Fatalf("remote close reported as a local one: %v", err)
	}
	if err := ds.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
