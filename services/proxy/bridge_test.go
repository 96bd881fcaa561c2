package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
)

// tcpPair returns the two ends of one loopback TCP connection.
func tcpPair(tb testing.TB) (client, server *net.TCPConn) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	s := <-acc
	if s == nil {
		tb.Fatal("accept failed")
	}
	tb.Cleanup(func() { _ = c.Close(); _ = s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

type bridgeResult struct {
	aToB, bToA int64
	err        error
}

// runBridge bridges the server ends of two TCP pairs and returns the two
// outer client ends: left talks to a, right talks to b.
func runBridge(tb testing.TB, ctx context.Context) (left, right *net.TCPConn, res <-chan bridgeResult) {
	left, a := tcpPair(tb)
	right, b := tcpPair(tb)
	ch := make(chan bridgeResult, 1)
	go func() {
		x, y, err := Bridge(ctx, a, b)
		ch <- bridgeResult{x, y, err}
	}()
	return left, right, ch
}

func TestBridge(t *testing.T) {
	tests := []struct {
		name        string
		toB, toA    int
		replyAfterB bool // right answers only after reading left's data to EOF
	}{
		{"empty both ways", 0, 0, false},
		{"one byte each", 1, 1, false},
		{"a to b only", 300 << 10, 0, false},
		{"b to a only", 0, 300 << 10, false},
		{"both ways at once", 1 << 20, 700 << 10, false},
		{"half-close then reply", 200 << 10, 100 << 10, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			left, right, res := runBridge(t, context.Background())
			toB, toA := pattern(tc.toB, 1), pattern(tc.toA, 2)
			gotAtB := make(chan []byte, 1)
			go func() {
				got, _ := io.ReadAll(right)
				gotAtB <- got
			}()
			go func() {
				_, _ = left.Write(toB)
				_ = left.CloseWrite()
			}()
			var atB []byte
			if tc.replyAfterB {
				atB = <-gotAtB
			}
			go func() {
				_, _ = right.Write(toA)
				_ = right.CloseWrite()
			}()
			atA, err := io.ReadAll(left)
			if err != nil {
				t.Fatalf("read at left: %v", err)
			}
			if !tc.replyAfterB {
				atB = <-gotAtB
			}
			if !bytes.Equal(atB, toB) || !bytes.Equal(atA, toA) {
				t.Fatalf("got %d/%d bytes, want %d/%d (or content differs)", len(atB), len(atA), len(toB), len(toA))
			}
			r := <-res
			if r.err != nil || r.aToB != int64(tc.toB) || r.bToA != int64(tc.toA) {
				t.Fatalf("Bridge = %d, %d, %v; want %d, %d, nil", r.aToB, r.bToA, r.err, tc.toB, tc.toA)
			}
		})
	}
}

func TestBridgeCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	left, right, res := runBridge(t, ctx)
	if _, err := left.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1)
	if _, err := io.ReadFull(right, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	r := <-res
	if r.err != nil || r.aToB != 1 {
		t.Fatalf("Bridge after cancel = %d, %d, %v; want 1, 0, nil", r.aToB, r.bToA, r.err)
	}
	// Both outer ends see their connection end.
	for _, c := range []net.Conn{left, right} {
		if _, err := c.Read(buf); err == nil {
			t.Fatalf("%v: read after cancel succeeded", c.LocalAddr())
		}
	}
}

func TestBridgeResetTearsDownBoth(t *testing.T) {
	left, right, res := runBridge(t, context.Background())
	// A reset on the right (linger 0) is an error, not a half-close.
	_ = right.SetLinger(0)
	_ = right.Close()
	r := <-res
	if r.err == nil {
		t.Fatal("Bridge after reset returned no error")
	}
	buf := make([]byte, 1)
	if _, err := left.Read(buf); err == nil {
		t.Fatal("left still open after reset on the right")
	}
}

// noHalfClose hides CloseWrite, like a transport that cannot half-close.
type noHalfClose struct{ net.Conn }

func TestBridgeWithoutHalfClose(t *testing.T) {
	left, a := tcpPair(t)
	right, b := tcpPair(t)
	res := make(chan error, 1)
	go func() {
		_, _, err := Bridge(context.Background(), a, noHalfClose{b})
		res <- err
	}()
	if _, err := left.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	_ = left.CloseWrite()
	got, err := io.ReadAll(right)
	if err != nil || string(got) != "hello" {
		t.Fatalf("right read %q, %v", got, err)
	}
	// The fallback full close ends the bridge without an error.
	if err := <-res; err != nil {
		t.Fatalf("Bridge = %v", err)
	}
	if _, err := io.ReadAll(left); err != nil {
		t.Fatalf("left after the bridge ended: %v, want EOF", err)
	}
}
