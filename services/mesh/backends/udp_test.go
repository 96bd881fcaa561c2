package backends

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
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
	// Its source is forgotten: the next datagram starts a new session.
	if _, err := c.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, recv(t, lr.next()), []byte("again"))
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
	// One socket, so every slow datagram was dispatched before "fast":
	// what the slow session holds now is all it will ever get of them.
	got := 0
	for {
		if _, err := slowSession.Recv(100 * time.Millisecond); errors.Is(err, ErrTimeout) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got++
	}
	if got == 0 || got > recvQueueLen {
		t.Fatalf("slow session holds %d messages; want 1..%d (the rest dropped)", got, recvQueueLen)
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

// TestUDPListenerEvictedSessionEndsFirst: a session that evicted another
// reaches the node only once the node has let go of the evicted one, so the
// node never holds more sessions from the listener than its limit; the new
// source's first datagram waits meanwhile.
func TestUDPListenerEvictedSessionEndsFirst(t *testing.T) {
	l, err := NewUDPListener(UDPListenerOptions{Address: "127.0.0.1:0", MaxSessions: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type accepted struct {
		s  Session
		at time.Time
	}
	sessions := make(chan accepted, 4)
	var firstReturned atomic.Int64 // unix nanoseconds
	n := atomic.Int32{}
	wait, err := l.Start(ctx, func(s Session) {
		sessions <- accepted{s, time.Now()}
		<-closedChan(t, s)
		if n.Add(1) == 1 {
			// The node takes a while to let go of the first session.
			time.Sleep(300 * time.Millisecond)
			firstReturned.Store(time.Now().UnixNano())
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); waitReturns(t, wait) }()
	first := udpClient(t, l)
	if _, err := first.Write([]byte("a")); err != nil {
		t.Fatal(err)
	}
	a := <-sessions
	mustEqual(t, recv(t, a.s), []byte("a"))
	second := udpClient(t, l)
	if _, err := second.Write([]byte("b")); err != nil {
		t.Fatal(err)
	}
	var b accepted
	select {
	case b = <-sessions:
	case <-time.After(failAfter):
		t.Fatal("no session for the second source")
	}
	if ret := firstReturned.Load(); ret == 0 || b.at.UnixNano() < ret {
		t.Fatalf("second session accepted before the node let go of the evicted one (returned at %d, accepted at %d)", ret, b.at.UnixNano())
	}
	mustEqual(t, recv(t, b.s), []byte("b"))
}
