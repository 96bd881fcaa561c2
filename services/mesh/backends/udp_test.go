package backends

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func newUDPListener(t *testing.T, maxSessions int) (*UDPListener, *running) {
	t.Helper()
	l, err := NewUDPListener(UDPListenerOptions{Address: "127.0.0.1:0", MaxSessions: maxSessions})
	if err != nil {
		t.Fatal(err)
	}
	return l, start(t, l)
}

func udpClient(t *testing.T, l *UDPListener) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// udpPair dials addr (the listener lr runs) and sends "hello", from which
// the listener learns of the dialer; it returns both ends.
func udpPair(t *testing.T, addr string, redial bool, lr *running) (ds, ls Session) {
	t.Helper()
	d, err := NewUDPDialer(UDPDialerOptions{Address: addr, Redial: redial, Backoff: fastBackoff()})
	if err != nil {
		t.Fatal(err)
	}
	ds = start(t, d).next()
	if err := ds.Send([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	ls = lr.next()
	mustEqual(t, recv(t, ls), []byte("hello"))
	return ds, ls
}

func TestUDPRoundTrip(t *testing.T) {
	l, lr := newUDPListener(t, 0)
	ds, ls := udpPair(t, l.Addr().String(), true, lr)
	// Around the pooled buffer's size the batch reader switches to its
	// overflow buffer (udpbatch.go).
	exchange(t, ds, ls, []int{1, 1000, PooledMessageCap - 1, PooledMessageCap, PooledMessageCap + 1, MaxUDPMessageSize})
	if _, ok := ds.(PeerIdentified); ok {
		t.Fatal("udp session claims a peer identity")
	}
}

// TestUDPDualStackListener: a listener on the IPv6 wildcard (a dual-stack
// socket) answers an IPv4 peer one datagram at a time (x/net's batch
// calls cannot address it) and still carries every size.
func TestUDPDualStackListener(t *testing.T) {
	l, err := NewUDPListener(UDPListenerOptions{Address: "[::]:0"})
	if err != nil {
		t.Fatal(err)
	}
	lr := start(t, l)
	if l.Addr().IP.To4() != nil {
		t.Skip("no dual-stack socket here")
	}
	ds, ls := udpPair(t, fmt.Sprintf("127.0.0.1:%d", l.Addr().Port), true, lr)
	exchange(t, ds, ls, []int{1, PooledMessageCap, PooledMessageCap + 1, MaxUDPMessageSize})
}

func TestUDPSendLimits(t *testing.T) {
	l, lr := newUDPListener(t, 0)
	c := udpClient(t, l)
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	ls := lr.next()
	recv(t, ls)
	if err := ls.Send(nil); !errors.Is(err, ErrEmptyMessage) {
		t.Fatalf("empty Send = %v", err)
	}
	if err := ls.Send([]byte("still up")); err != nil {
		t.Fatalf("Send after refused empty message: %v", err)
	}
	// As upstream, an oversized datagram ends the session (docs/protocol.md §3.3).
	for _, n := range []int{MaxUDPMessageSize + 1, MaxMessageSize + 1} {
		if err := ls.Send(make([]byte, n)); !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("Send(%d) = %v, want ErrMessageTooLarge", n, err)
		}
	}
	if err := recvErr(t, ls); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("session ended with %v", err)
	}
	// Its source is forgotten: its datagrams start a new session.
	nextSessionFrom(t, c, lr)
}

// nextSessionFrom sends "again" from c until the listener lr makes a new
// session of it, and checks that the session receives it. Until the
// writer of the source's ended session has closed that session's own
// socket (udpListenerSession.own), the datagrams are lost there.
func nextSessionFrom(t *testing.T, c *net.UDPConn, lr *running) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := c.Write([]byte("again")); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-lr.sessions:
			mustEqual(t, recv(t, s), []byte("again"))
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no new session for the source after its session ended")
		}
	}
}

func TestUDPEmptyDatagramIsDropped(t *testing.T) {
	l, lr := newUDPListener(t, 0)
	c := udpClient(t, l)
	if _, err := c.Write(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	ls := lr.next()
	mustEqual(t, recv(t, ls), []byte("after"))
}

func TestUDPDialerDropsEmptyDatagram(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	d, err := NewUDPDialer(UDPDialerOptions{Address: srv.LocalAddr().String()})
	if err != nil {
		t.Fatal(err)
	}
	dr := start(t, d)
	ds := dr.next()
	if err := ds.Send([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_, from, err := srv.ReadFromUDP(buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]byte{nil, []byte("pong")} {
		if _, err := srv.WriteToUDP(m, from); err != nil {
			t.Fatal(err)
		}
	}
	mustEqual(t, recv(t, ds), []byte("pong"))
}

func TestUDPListenerSessionsBySource(t *testing.T) {
	const n = 10
	l, lr := newUDPListener(t, 0)
	var clients []*net.UDPConn
	for i := range n {
		c := udpClient(t, l)
		clients = append(clients, c)
		if _, err := c.Write([]byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	bySource := map[string]Session{}
	for range n {
		s := lr.next()
		bySource[string(recv(t, s))] = s
	}
	// Replies go back to each source.
	for i, c := range clients {
		s := bySource[strconv.Itoa(i)]
		if s == nil {
			t.Fatalf("no session for client %d", i)
		}
		if err := s.Send([]byte("to " + strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		k, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, buf[:k], []byte("to "+strconv.Itoa(i)))
	}
}

func TestUDPListenerNeverBlocksOnASlowSession(t *testing.T) {
	l, lr := newUDPListener(t, 2)
	slow := udpClient(t, l)
	for i := range 2*recvQueueLen + 8 {
		if _, err := slow.Write([]byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	slowSession := lr.next() // not read yet: its queue overflows
	fast := udpClient(t, l)
	if _, err := fast.Write([]byte("fast")); err != nil {
		t.Fatal(err)
	}
	fastSession := lr.next()
	mustEqual(t, recv(t, fastSession), []byte("fast"))
	// What reached the listener's socket before the slow session had its
	// own went through the session's queue, where what did not fit was
	// dropped; the rest waits in the session's own socket.
	got := 0
	for {
		if _, err := slowSession.Recv(100 * time.Millisecond); errors.Is(err, ErrTimeout) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got++
	}
	if max := 2*recvQueueLen + 8; got == 0 || got > max || !peerSockets && got > recvQueueLen {
		t.Fatalf("slow session holds %d messages; want 1..%d", got, max)
	}
	if _, err := slow.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, recv(t, slowSession), []byte("late"))
	// The session limit (2) is reached and both sessions are confirmed: a
	// third source is dropped, the existing ones keep working.
	for _, s := range []Session{slowSession, fastSession} {
		s.(Confirmer).Confirm()
	}
	third := udpClient(t, l)
	if _, err := third.Write([]byte("third")); err != nil {
		t.Fatal(err)
	}
	if _, err := fast.Write([]byte("check")); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, recv(t, fastSession), []byte("check"))
	select {
	case s := <-lr.sessions:
		t.Fatalf("session beyond the limit from %s", s.RemoteAddr())
	case <-time.After(100 * time.Millisecond):
	}
}

func TestUDPDialerPortUnreachableEndsSession(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // nothing listens there: ICMP port unreachable
	d, err := NewUDPDialer(UDPDialerOptions{Address: addr, Backoff: fastBackoff()})
	if err != nil {
		t.Fatal(err)
	}
	dr := start(t, d)
	ds := dr.next()
	if err := ds.Send([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	if err := recvErr(t, ds); errors.Is(err, ErrSessionClosed) {
		t.Fatalf("session error %v, want the socket's", err)
	}
	waitReturns(t, dr.wait) // Redial false: done by itself
}

func TestUDPDialerRedials(t *testing.T) {
	l, lr := newUDPListener(t, 0)
	d, err := NewUDPDialer(UDPDialerOptions{Address: l.Addr().String(), Redial: true, Backoff: fastBackoff()})
	if err != nil {
		t.Fatal(err)
	}
	dr := start(t, d)
	first := dr.next()
	_ = first.Close()
	second := dr.next()
	if err := second.Send([]byte("new")); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, recv(t, lr.next()), []byte("new"))
}

// TestUDPListenerEvictsUnconfirmedSources: at the session limit, a new
// source replaces the oldest session whose peer was not confirmed
// (spoofed sources cannot lock real peers out); confirmed sessions stay.
func TestUDPListenerEvictsUnconfirmedSources(t *testing.T) {
	l, lr := newUDPListener(t, 2)
	answered := udpClient(t, l)
	if _, err := answered.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	as := lr.next()
	if _, ok := as.(PeerSpeaksFirst); !ok {
		t.Fatal("udp-listener session does not ask the peer to speak first")
	}
	recv(t, as)
	if err := as.Send([]byte("answer")); err != nil {
		t.Fatal(err)
	}
	as.(Confirmer).Confirm()
	silent := udpClient(t, l)
	if _, err := silent.Write([]byte("s")); err != nil {
		t.Fatal(err)
	}
	ss := lr.next()
	recv(t, ss)
	third := udpClient(t, l)
	if _, err := third.Write([]byte("t")); err != nil {
		t.Fatal(err)
	}
	ts := lr.next()
	mustEqual(t, recv(t, ts), []byte("t"))
	if err := recvErr(t, ss); errors.Is(err, ErrTimeout) {
		t.Fatal("unconfirmed session not evicted")
	}
	if _, err := answered.Write([]byte("still")); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, recv(t, as), []byte("still"))
}

// TestUDPDialerFlushesBeforeClose: a message sent just before Close (the
// mesh's Reject) still leaves, now that sends are queued.
func TestUDPDialerFlushesBeforeClose(t *testing.T) {
	l, lr := newUDPListener(t, 0)
	ds, ls := udpPair(t, l.Addr().String(), false, lr)
	if err := ds.Send([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	_ = ds.Close()
	mustEqual(t, recv(t, ls), []byte("bye"))
}

// TestUDPListenerSessionsHaveTheirOwnSockets: after its first datagram, a
// source's datagrams reach its session through a socket of its own, bound
// to the listener's address and connected to the source; replies come
// from the listener's address (the client's connected socket would drop
// them otherwise). Once the session is closed, the source's datagrams
// reach the listener again and make a new session.
func TestUDPListenerSessionsHaveTheirOwnSockets(t *testing.T) {
	if !peerSockets {
		t.Skip("no per-peer udp sockets on this platform")
	}
	for _, tc := range []struct {
		listen string
		client net.IP
	}{
		{"127.0.0.1:0", net.IPv4(127, 0, 0, 1)},
		{"0.0.0.0:0", net.IPv4(127, 0, 0, 1)}, // a dual-stack socket
		{"[::]:0", net.IPv6loopback},
	} {
		t.Run(tc.listen, func(t *testing.T) { testUDPOwnSockets(t, tc.listen, tc.client) })
	}
}

func testUDPOwnSockets(t *testing.T, addr string, client net.IP) {
	l, err := NewUDPListener(UDPListenerOptions{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	lr := start(t, l)
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: client, Port: l.Addr().Port})
	if err != nil {
		if client.To4() == nil {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	s := lr.next()
	mustEqual(t, recv(t, s), []byte("first"))
	own := s.(*udpListenerSession).own
	if own == nil {
		t.Fatal("the session has no socket of its own")
	}
	if got, want := own.LocalAddr().(*net.UDPAddr), c.RemoteAddr().(*net.UDPAddr); !got.IP.Equal(want.IP) || got.Port != want.Port {
		t.Fatalf("the session's socket is bound to %s, the client sends to %s", got, want)
	}
	if got, want := own.RemoteAddr().String(), c.LocalAddr().String(); got != want {
		t.Fatalf("the session's socket is connected to %s, the client is %s", got, want)
	}
	for i := range 50 {
		if _, err := c.Write([]byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, recv(t, s), []byte(strconv.Itoa(i)))
	}
	if err := s.Send([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, buf[:n], []byte("reply"))

	_ = s.Close()
	<-closedChan(t, s)
	nextSessionFrom(t, c, lr)
}

// TestUDPListenerQueuedDatagramWakesOwnRead: a datagram that reached the
// listener's socket after the session got its own (it was already there)
// is queued for the session and wakes a read blocked on the session's
// socket; reads then go on from the socket.
func TestUDPListenerQueuedDatagramWakesOwnRead(t *testing.T) {
	if !peerSockets {
		t.Skip("no per-peer udp sockets on this platform")
	}
	l, lr := newUDPListener(t, 0)
	c := udpClient(t, l)
	if _, err := c.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	s := lr.next()
	mustEqual(t, recv(t, s), []byte("first"))
	ls := s.(*udpListenerSession)
	got := make(chan []byte, 1)
	go func() {
		m, err := s.Recv(10 * time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	time.Sleep(50 * time.Millisecond) // let the read block on the socket
	// What the listener's loop does for such a datagram.
	if !ls.offer([]byte("queued")) {
		t.Fatal("offer refused")
	}
	_ = ls.own.SetReadDeadline(aLongTimeAgo)
	select {
	case m := <-got:
		mustEqual(t, m, []byte("queued"))
	case <-time.After(5 * time.Second):
		t.Fatal("the blocked read did not take the queued datagram")
	}
	if _, err := c.Write([]byte("next")); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, recv(t, s), []byte("next"))
}

// TestUDPListenerAddressInUse: the listener's socket shares its address
// with its sessions' sockets (SO_REUSEPORT), yet a second listener on the
// same address still fails to start.
func TestUDPListenerAddressInUse(t *testing.T) {
	l, _ := newUDPListener(t, 0)
	l2, err := NewUDPListener(UDPListenerOptions{Address: l.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	wait, err := l2.Start(context.Background(), func(Session) {})
	if err == nil {
		wait()
		t.Fatalf("a second udp-listener started on %s", l.Addr())
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second listener: %v, want address in use", err)
	}
}
