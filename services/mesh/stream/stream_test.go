package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

func TestEcho(t *testing.T) {
	tests := []struct {
		name string
		size int
		loss int64 // per million
	}{
		{"empty", 0, 0},
		{"1MiB", 1 << 20, 0},
		{"10MiB", 10 << 20, 0},
		{"1MiB with 2% loss", 1 << 20, 20_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(4096)
			w.net.setLoss(tt.loss)
			l := mustListen(t, w, "echo", ListenOptions{})
			served := serveEcho(testCtx(t), l)
			c, err := DialConn(testCtx(t), w.client, "node2", "echo", DialOptions{})
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			echoRoundTrip(t, c, randomBytes(t, tt.size))
			if err := <-served; err != nil {
				t.Fatalf("server: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			// Both sides finished: the connection tears itself down and
			// the dialer's ephemeral service is released.
			waitEnded(t, c)
			testkit.Eventually(t, failAfter, "ephemeral service released", func() error {
				if w.client.numBound() == 0 {
					return nil
				}
				return errors.New("want w.client.numBound() == 0")
			})
			if got := w.net.maxSize.Load(); got > MaxDatagram {
				t.Fatalf("largest datagram %d bytes, want <= %d", got, MaxDatagram)
			}
		})
	}
}

func TestAddresses(t *testing.T) {
	w := newWorld(1024)
	l := mustListen(t, w, "addr", ListenOptions{})
	if got, want := l.Addr(), (mesh.Addr{Node: "node2", Service: "addr"}); got != want {
		t.Fatalf("listener Addr = %v, want %v", got, want)
	}
	c, err := DialConn(testCtx(t), w.client, "node2", "addr", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseConnection()
	s, err := l.AcceptContext(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.RemoteAddr() != c.LocalAddr() {
		t.Fatalf("server sees %v, dialer is %v", s.RemoteAddr(), c.LocalAddr())
	}
	if ra := s.RemoteAddr().(mesh.Addr); ra.Node != "node1" || len(ra.Service) != 8 {
		t.Fatalf("remote addr %v: want node1 and an 8-char ephemeral service", ra)
	}
	if c.RemoteAddr() != l.Addr() {
		t.Fatalf("dialer remote %v, listener %v", c.RemoteAddr(), l.Addr())
	}
	if st := s.ConnectionState(); st.NegotiatedProtocol != ALPN {
		t.Fatalf("ALPN %q, want %q", st.NegotiatedProtocol, ALPN)
	}
	if st := c.ConnectionState(); st.ServerName != "" {
		// The client side does not report SNI; make sure the server got ours.
		t.Logf("client ServerName %q", st.ServerName)
	}
	if st := s.ConnectionState(); st.ServerName != "node1" {
		t.Fatalf("SNI seen by listener %q, want the dialer's node ID", st.ServerName)
	}
}

func TestHalfClose(t *testing.T) {
	for _, dialerFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("dialerClosesFirst=%v", dialerFirst), func(t *testing.T) {
			w := newWorld(1024)
			l := mustListen(t, w, "half", ListenOptions{})
			c, err := DialConn(testCtx(t), w.client, "node2", "half", DialOptions{})
			if err != nil {
				t.Fatal(err)
			}
			s, err := l.AcceptContext(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			first, second := c, s
			if !dialerFirst {
				first, second = s, c
			}
			if _, err := first.Write([]byte("request")); err != nil {
				t.Fatal(err)
			}
			if err := first.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(second)
			if err != nil || string(got) != "request" {
				t.Fatalf("read after peer half-close: %q, %v", got, err)
			}
			// The other direction still works after the half-close.
			if _, err := second.Write([]byte("reply")); err != nil {
				t.Fatalf("write after peer half-close: %v", err)
			}
			if err := second.Close(); err != nil {
				t.Fatal(err)
			}
			got, err = io.ReadAll(first)
			if err != nil || string(got) != "reply" {
				t.Fatalf("read reply: %q, %v", got, err)
			}
			if _, err := first.Write([]byte("x")); err == nil {
				t.Fatal("write after CloseWrite succeeded")
			}
			_ = first.Close()
			waitEnded(t, c)
			waitEnded(t, s)
		})
	}
}

func TestDialServiceUnknownFailsFast(t *testing.T) {
	w := newWorld(1024)
	// Fast means well before the 15 s handshake timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Dial(ctx, w.client, "node2", "nosvc", DialOptions{})
	if err == nil {
		t.Fatal("Dial to an unbound service succeeded")
	}
	if !errors.Is(err, ErrServiceUnknown) {
		t.Fatalf("error %v does not wrap ErrServiceUnknown", err)
	}
	if got, want := err.Error(), "mesh: dial node2:nosvc: service unknown"; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
	if n := w.client.numBound(); n != 0 {
		t.Fatalf("%d sockets still bound on the dialing node", n)
	}
}

func TestDialUnknownNodeHonoursContext(t *testing.T) {
	w := newWorld(1024)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := Dial(ctx, w.client, "nowhere", "svc", DialOptions{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial error %v, want a deadline error", err)
	}
	if !strings.HasPrefix(err.Error(), "mesh: dial nowhere:svc: ") {
		t.Fatalf("error %q does not name the target", err)
	}
	if n := w.client.numBound(); n != 0 {
		t.Fatalf("%d sockets still bound on the dialing node", n)
	}
}

func TestListenerClose(t *testing.T) {
	w := newWorld(1024)
	l, err := Listen(testCtx(t), w.server, "lc", ListenOptions{Advertise: true})
	if err != nil {
		t.Fatal(err)
	}
	if ad, ok := w.server.advertised("lc"); !ok || ad.ConnType != mesh.ConnTypeStream {
		t.Fatalf("advertisement %+v, %v; want ConnType 1", ad, ok)
	}
	c, err := DialConn(testCtx(t), w.client, "node2", "lc", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	acceptErr := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		acceptErr <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("pending Accept returned %v, want net.ErrClosed", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close returned %v", err)
	}
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a connection of a closed listener succeeded")
	}
	// The dialer learns through CONNECTION_CLOSE.
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("dialer read succeeded after listener close")
	}
	waitEnded(t, c)
	if w.server.bound("lc") {
		t.Fatal("service still bound after Close")
	}
	if _, ok := w.server.advertised("lc"); ok {
		t.Fatal("service still advertised after Close")
	}
	// The name is free again.
	l2 := mustListen(t, w, "lc", ListenOptions{})
	_ = l2.Close()
}

func TestManyConcurrentConnections(t *testing.T) {
	const conns = 24
	w := newWorld(4096)
	l := mustListen(t, w, "many", ListenOptions{})
	var serverWG sync.WaitGroup
	serverWG.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			serverWG.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*Conn).CloseWrite()
			})
		}
	})
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Go(func() {
			c, err := DialConn(testCtx(t), w.client, "node2", "many", DialOptions{})
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			data := bytes.Repeat([]byte{byte(i)}, 64<<10+i)
			go func() {
				_, _ = c.Write(data)
				_ = c.CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				errs <- err
			} else if !bytes.Equal(got, data) {
				errs <- fmt.Errorf("conn %d: echo differs (%d bytes)", i, len(got))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	serverWG.Wait()
	testkit.Eventually(t, failAfter, "all ephemeral services released", func() error {
		if w.client.numBound() == 0 {
			return nil
		}
		return errors.New("want w.client.numBound() == 0")
	})
}

func TestStopSending(t *testing.T) {
	w := newWorld(1024)
	l := mustListen(t, w, "stop", ListenOptions{})
	c, err := DialConn(testCtx(t), w.client, "node2", "stop", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseConnection()
	s, err := l.AcceptContext(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	s.CancelRead()
	if _, err := s.Read(make([]byte, 1)); !IsStopSending(err) {
		t.Fatalf("read after CancelRead: %v", err)
	}
	buf := make([]byte, 32<<10)
	var werr error
	testkit.Eventually(t, failAfter, "writes to fail after STOP_SENDING", func() error {
		_, werr = c.Write(buf)
		if werr != nil {
			return nil
		}
		return errors.New("want werr != nil")
	})
	if !IsStopSending(werr) {
		t.Fatalf("write error %v, want STOP_SENDING 499", werr)
	}
	// The other direction is unaffected.
	if _, err := s.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 10)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "still here" {
		t.Fatalf("read %q, %v", got, err)
	}
}

func TestCloseConnection(t *testing.T) {
	w := newWorld(1024)
	l := mustListen(t, w, "cc", ListenOptions{})
	c, err := DialConn(testCtx(t), w.client, "node2", "cc", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.AcceptContext(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CloseConnection(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Read(make([]byte, 1))
	var appErr interface{ Error() string }
	if err == nil {
		t.Fatal("read after peer CloseConnection succeeded")
	}
	appErr = err
	if !strings.Contains(appErr.Error(), "normal close") {
		t.Fatalf("peer saw %v, want the normal-close reason", err)
	}
	waitEnded(t, s)
	waitEnded(t, c)
	testkit.Eventually(t, failAfter, "ephemeral service released", func() error {
		if w.client.numBound() == 0 {
			return nil
		}
		return errors.New("want w.client.numBound() == 0")
	})
}

func TestDeadlines(t *testing.T) {
	w := newWorld(1024)
	l := mustListen(t, w, "dl", ListenOptions{})
	c, err := DialConn(testCtx(t), w.client, "node2", "dl", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseConnection()
	s, err := l.AcceptContext(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline: %v, want a timeout", err)
	}
	// A timeout does not end the stream: clear it and read on.
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte{42}); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 42 {
		t.Fatalf("read after clearing deadline: %v %v", b, err)
	}
	if err := s.SetWriteDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte{1}); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("write past deadline: %v, want a timeout", err)
	}
}

func TestListenerReactsToServiceUnknown(t *testing.T) {
	w := newWorld(1024)
	l := mustListen(t, w, "unr", ListenOptions{})
	c, err := DialConn(testCtx(t), w.client, "node2", "unr", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.AcceptContext(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	// An unreachable about some other service changes nothing.
	w.net.unreachable("node1", l.Addr().(mesh.Addr), mesh.Addr{Node: "node1", Service: "other"}, mesh.ProblemServiceUnknown)
	if _, err := c.Write([]byte{7}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, 1)); err != nil {
		t.Fatalf("connection broken by an unrelated unreachable: %v", err)
	}
	// The dialer's service vanishes without a word (all its packets are
	// lost, including CONNECTION_CLOSE): the next packet from the listener
	// draws a "service unknown", which must end the connection long before
	// the 30 s idle timeout (and the 20 s bound of waitEnded).
	w.net.setLoss(1_000_000)
	_ = c.CloseConnection()
	testkit.Eventually(t, failAfter, "dialer socket released", func() error {
		if w.client.numBound() == 0 {
			return nil
		}
		return errors.New("want w.client.numBound() == 0")
	})
	select {
	case <-s.Done():
		t.Fatal("listener connection ended before the unreachable arrived")
	default:
	}
	w.net.unreachable("node1", l.Addr().(mesh.Addr), s.RemoteAddr().(mesh.Addr), mesh.ProblemServiceUnknown)
	waitEnded(t, s)
}

func TestFirstByteMustBeZero(t *testing.T) {
	rig := newFirstByteRig(t)
	for _, first := range [][]byte{{0}, {0, 'h', 'i'}, {1, 0, 0}, {0xff}} {
		t.Run(fmt.Sprintf("%x", first), func(t *testing.T) { rig.check(t, first) })
	}
}

func TestListenRejectsBoundService(t *testing.T) {
	w := newWorld(16)
	_ = mustListen(t, w, "dup", ListenOptions{})
	if _, err := Listen(testCtx(t), w.server, "dup", ListenOptions{}); err == nil {
		t.Fatal("second Listen on the same service succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Listen(ctx, w.server, "other", ListenOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Listen with a cancelled context: %v", err)
	}
}

func TestCloseEndsBlockedReadAndWrite(t *testing.T) {
	w := newWorld(1024)
	l := mustListen(t, w, "blk", ListenOptions{})
	c, err := DialConn(testCtx(t), w.client, "node2", "blk", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.AcceptContext(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseConnection()
	readErr := make(chan error, 1)
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	go func() {
		// Nobody reads on the other side: flow control blocks this write.
		_, err := c.Write(make([]byte, 64<<20))
		writeErr <- err
	}()
	testkit.Eventually(t, failAfter, "the write to block on flow control", func() error {
		if c.qc.ConnectionStats().BytesSent > initialStreamWindow/2 {
			return nil
		}
		return errors.New("want c.qc.ConnectionStats().BytesSent > initialStreamWindow/2")
	})
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked Read returned %v, want net.ErrClosed", err)
	}
	if err := <-writeErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked Write returned %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte{1}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
}
