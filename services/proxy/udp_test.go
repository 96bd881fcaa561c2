package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// udpEcho answers every datagram with the source address it came from
// followed by the payload, so clients can tell sessions apart.
func udpEcho(tb testing.TB) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			reply := append([]byte(from.String()+"|"), buf[:n]...)
			_, _ = pc.WriteTo(reply, from)
		}
	}()
	tb.Cleanup(func() { _ = pc.Close(); <-done })
	return pc.LocalAddr().String()
}

func udpChain(tb testing.TB, opts Options) (*UDPServer, *UDPClient, *mesh.Node) {
	tb.Helper()
	n1, _, n3 := newChain(tb)
	opts.Logger = quietLog
	cl, err := NewUDPClient(n3, config.UDPClient{Service: "dns", Address: udpEcho(tb)}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	start(tb, cl)
	srv, err := NewUDPServer(n1, config.UDPServer{BindAddr: "127.0.0.1", RemoteNode: "node3", RemoteService: "dns"}, opts)
	if err != nil {
		tb.Fatal(err)
	}
	start(tb, srv)
	return srv, cl, n1
}

// exchange sends payload from c until a reply arrives (datagrams may be
// lost while the mesh settles) and returns it split at the first '|'.
func exchange(tb testing.TB, c net.Conn, payload []byte) (farSource string, echoed []byte) {
	tb.Helper()
	buf := make([]byte, maxDatagram)
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		if _, err := c.Write(payload); err != nil {
			tb.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err != nil {
			continue
		}
		src, rest, ok := bytes.Cut(buf[:n], []byte("|"))
		if !ok {
			tb.Fatalf("malformed reply %q", buf[:n])
		}
		return string(src), append([]byte(nil), rest...)
	}
	tb.Fatalf("no reply within %v", bound)
	return "", nil
}

func TestUDPProxyRoundTrip(t *testing.T) {
	srv, cl, _ := udpChain(t, Options{})
	var clients []net.Conn
	for range 2 {
		c, err := net.Dial("udp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	sources := map[string]bool{}
	for i, c := range clients {
		for _, size := range []int{1, 1000, 60000} {
			payload := pattern(size, byte(i))
			src, got := exchange(t, c, payload)
			// Each client has its own session, hence its own far source port.
			sources[src] = true
			if !bytes.Equal(got, payload) {
				t.Fatalf("client %d, %d bytes: reply differs (%d bytes)", i, size, len(got))
			}
		}
	}
	if len(sources) != 2 {
		t.Fatalf("far side saw sources %v, want one per client", sources)
	}
	if n := srv.relay.Load().numSessions(); n != 2 {
		t.Fatalf("udp-server sessions = %d, want 2", n)
	}
	if n := cl.relay.Load().numSessions(); n != 2 {
		t.Fatalf("udp-client sessions = %d, want 2", n)
	}
}

func TestUDPProxyAdvertisement(t *testing.T) {
	_, cl, n1 := udpChain(t, Options{})
	want := map[string]string{"address": cl.cfg.Address, "type": "UDP Proxy"}
	testkit.Eventually(t, bound, "node1 sees node3's dns advertised with ConnType 0 and the UDP Proxy tags", func() error {
		for _, ad := range n1.Status().Advertisements {
			if ad.NodeID == "node3" && ad.Service == "dns" {
				if ad.ConnType == mesh.ConnTypeDatagram && maps.Equal(ad.Tags, want) {
					return nil
				}
				return fmt.Errorf("advertised with ConnType %d, tags %v", ad.ConnType, ad.Tags)
			}
		}
		return errors.New("no such advertisement yet")
	})
}

func TestUDPProxyIdleExpiry(t *testing.T) {
	srv, cl, _ := udpChain(t, Options{UDPIdleTimeout: 200 * time.Millisecond})
	c, err := net.Dial("udp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	exchange(t, c, []byte("hi"))
	testkit.Eventually(t, bound, "idle sessions expire on both sides", func() error {
		if srv.relay.Load().numSessions() == 0 && cl.relay.Load().numSessions() == 0 {
			return nil
		}
		return errors.New("want srv.relay.Load().numSessions() == 0 && cl.relay.Load().numSessions() == 0")
	})
	// A new datagram opens a new session and still gets through.
	if _, got := exchange(t, c, []byte("again")); string(got) != "again" {
		t.Fatalf("reply after expiry = %q", got)
	}
}

func TestUDPProxySessionLimit(t *testing.T) {
	srv, _, _ := udpChain(t, Options{MaxUDPSessions: 1})
	first, err := net.Dial("udp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	exchange(t, first, []byte("one"))
	second, err := net.Dial("udp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	// The second source is dropped while the first session is live.
	for i := range 5 {
		if _, err := second.Write([]byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	_ = second.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := second.Read(make([]byte, 100)); err == nil {
		t.Fatalf("second source got a %d-byte reply past the session limit", n)
	}
	if n := srv.relay.Load().numSessions(); n != 1 {
		t.Fatalf("sessions = %d, want 1", n)
	}
}

// Replies from anyone but the configured remote service are dropped.
func TestUDPServerDropsForeignOrigin(t *testing.T) {
	n1, _, n3 := newChain(t)
	// A hand-written far side: it answers from a service other than the one
	// the udp-server targets, then from the right one.
	target, err := n3.ListenPacket("target")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	other, err := n3.ListenPacket("other")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	srv, err := NewUDPServer(n1, config.UDPServer{BindAddr: "127.0.0.1", RemoteNode: "node3", RemoteService: "target"},
		Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, srv)
	c, err := net.Dial("udp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = target.SetReadDeadline(time.Now().Add(bound))
	n, from, err := target.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "q" {
		t.Fatalf("target read %q, %v", buf[:n], err)
	}
	if _, err := other.WriteTo([]byte("forged"), from); err != nil {
		t.Fatal(err)
	}
	if _, err := target.WriteTo([]byte("real"), from); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(bound))
	n, err = c.Read(buf)
	if err != nil || string(buf[:n]) != "real" {
		t.Fatalf("client read %q, %v; want only the reply from the target", buf[:n], err)
	}
}

// A datagram larger than a mesh data message can carry is dropped; the
// session keeps working.
func TestUDPServerDropsOversize(t *testing.T) {
	n1, _, n3 := newChain(t)
	target, err := n3.ListenPacket("target")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	srv, err := NewUDPServer(n1, config.UDPServer{BindAddr: "127.0.0.1", RemoteNode: "node3", RemoteService: "target"},
		Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, srv)
	c, err := net.Dial("udp", srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(make([]byte, 65507)); err != nil { // largest IPv4 UDP payload
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("small")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, maxDatagram)
	_ = target.SetReadDeadline(time.Now().Add(bound))
	n, _, err := target.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "small" {
		t.Fatalf("target read %d bytes (%q...), %v; want only \"small\"", n, buf[:min(n, 8)], err)
	}
}
