package interop

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/wire"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// udpEchoServer echoes every datagram on c back to its sender until the
// test ends.
func udpEchoServer(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		wg.Wait()
	})
	return c.LocalAddr().String()
}

// udpExchange sends random datagrams of each size from a fresh local
// socket to addr and checks each echo is byte-exact. UDP over the mesh
// has no retransmission, so a lost datagram is resent (bounded), which
// also covers the first datagram racing the route.
func udpExchange(t *testing.T, addr string, sizes ...int) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 65536)
	for _, n := range sizes {
		want := make([]byte, n)
		if _, err := rand.Read(want); err != nil {
			t.Fatal(err)
		}
		ok := false
		for attempt := 0; attempt < 10 && !ok; attempt++ {
			if _, err := c.Write(want); err != nil {
				t.Fatalf("udp write of %d bytes to %s: %v", n, addr, err)
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			for {
				got, err := c.Read(buf)
				if err != nil {
					break // timeout: resend
				}
				if bytes.Equal(buf[:got], want) {
					ok = true
					break
				}
				// A late echo of an earlier resend: keep reading.
			}
		}
		if !ok {
			t.Fatalf("no byte-exact echo of a %d-byte datagram via %s", n, addr)
		}
	}
}

// tcpExchange connects to addr and echoes 1 B and 1 MiB byte-exact.
func tcpExchange(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoRoundTrip(t, c, 1)
	echoRoundTrip(t, c, bulkSize)
}

// checkUDPSources checks on the wire that the udp-server on the given side
// (fromDialer: ours) sent the datagrams of its two local clients from two
// distinct 8-character ephemeral services to udpecho, and that the
// udp-client answered each of them (docs/protocol.md §11.3).
func checkUDPSources(t *testing.T, r *tcpRelay, fromDialer bool) {
	t.Helper()
	sent, answered := map[string]bool{}, map[string]bool{}
	for _, f := range r.Frames() {
		if f.Len < wire.DataHeaderLen || f.Data[0] != 0 || len(f.Data) < wire.DataHeaderLen {
			continue
		}
		from := strings.TrimRight(string(f.Data[20:28]), "\x00")
		to := strings.TrimRight(string(f.Data[28:36]), "\x00")
		switch {
		case f.FromDialer == fromDialer && to == "udpecho":
			sent[from] = true
		case f.FromDialer != fromDialer && from == "udpecho":
			answered[to] = true
		}
	}
	if len(sent) != 2 {
		t.Fatalf("udp-server source services on the wire: %v, want 2 (one per local client)", sent)
	}
	for svc := range sent {
		if len(svc) != 8 || !answered[svc] {
			t.Fatalf("udp-server source service %q: 8 characters and answered? answered %v", svc, answered)
		}
	}
	t.Logf("PASS on the wire: one ephemeral source service per local client %v, each answered", sent)
}

// TestBinaryProxies checks docs/protocol.md §11 (in part): tcp-server and
// udp-server on one implementation reaching tcp-client and udp-client on
// the other, both ways, byte-exact, with our binary and upstream's.
func TestBinaryProxies(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()

	tcpEcho, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, tcpEcho)
	udpEcho := udpEchoServer(t)

	// Each node serves "tcpecho"/"udpecho" as *-client entities and has
	// *-server entities on local ports pointing at the other node.
	var meshPort, upTCP, upUDP, oTCP, oUDP int
	up1 := startListening(t, upBin, "up1", func() []string {
		meshPort, upTCP, upUDP = freeTCPPort(t), freeTCPPort(t), freeUDPPort(t)
		return []string{
			"--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(meshPort),
			"--tcp-client", "service=tcpecho", "address=" + tcpEcho.Addr().String(),
			"--udp-client", "service=udpecho", "address=" + udpEcho,
			"--tcp-server", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(upTCP), "remotenode=obin", "remoteservice=tcpecho",
			"--udp-server", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(upUDP), "remotenode=obin", "remoteservice=udpecho",
		}
	})
	// The mesh session runs through a relay so the wire can be checked.
	var relay *tcpRelay
	obin := startListening(t, bin, "obin", func() []string {
		oTCP, oUDP = freeTCPPort(t), freeUDPPort(t)
		relay = newTCPRelay(t, fmt.Sprintf("127.0.0.1:%d", meshPort))
		return []string{
			"--tcp-peer", "address=" + relay.Addr(),
			"--tcp-client", "service=tcpecho", "address=" + tcpEcho.Addr().String(),
			"--udp-client", "service=udpecho", "address=" + udpEcho,
			"--tcp-server", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(oTCP), "remotenode=up1", "remoteservice=tcpecho",
			"--udp-server", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(oUDP), "remotenode=up1", "remoteservice=udpecho",
		}
	})
	obin.waitRoute("up1", "up1")
	up1.waitRoute("obin", "obin")

	local := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
	t.Run("tcp/upstream-server-to-our-client", func(t *testing.T) {
		tcpExchange(t, local(upTCP))
		t.Log("PASS upstream tcp-server → our tcp-client: 1 B and 1 MiB byte-exact")
	})
	t.Run("tcp/our-server-to-upstream-client", func(t *testing.T) {
		tcpExchange(t, local(oTCP))
		t.Log("PASS our tcp-server → upstream tcp-client: 1 B and 1 MiB byte-exact")
	})
	// Two local clients per direction: each must get only its own echoes
	// (udpExchange compares content), 1 B and 60000 B over a TCP backend.
	t.Run("udp/upstream-server-to-our-client", func(t *testing.T) {
		udpExchange(t, local(upUDP), 1, 60000)
		udpExchange(t, local(upUDP), 60000, 1)
		checkUDPSources(t, relay, false)
		t.Log("PASS upstream udp-server → our udp-client: 1 B and 60000 B from two local clients")
	})
	t.Run("udp/our-server-to-upstream-client", func(t *testing.T) {
		udpExchange(t, local(oUDP), 1, 60000)
		udpExchange(t, local(oUDP), 60000, 1)
		checkUDPSources(t, relay, true)
		t.Log("PASS our udp-server → upstream udp-client: 1 B and 60000 B from two local clients")
	})
	t.Run("ads", func(t *testing.T) {
		// Both kinds of client ads as the other side stores them.
		for _, c := range []struct {
			p        *procNode
			node     string
			service  string
			connType int
			tags     map[string]string
		}{
			{up1, "obin", "udpecho", 0, map[string]string{"address": udpEcho, "type": "UDP Proxy"}},
			{up1, "obin", "tcpecho", 1, map[string]string{"address": tcpEcho.Addr().String(), "type": "TCP Proxy"}},
			{obin, "up1", "udpecho", 0, map[string]string{"address": udpEcho, "type": "UDP Proxy"}},
			{obin, "up1", "tcpecho", 1, map[string]string{"address": tcpEcho.Addr().String(), "type": "TCP Proxy"}},
		} {
			testkit.Eventually(t, adTimeout, fmt.Sprintf("%s lists %s:%s", c.p.ID, c.node, c.service), func() error {
				s, err := c.p.Status()
				if err != nil {
					return err
				}
				a, ok := s.Ad(c.node, c.service)
				if ok && a.ConnType == c.connType && fmt.Sprint(a.Tags) == fmt.Sprint(c.tags) {
					return nil
				}
				return fmt.Errorf("%+v", s.Advertisements)
			})
		}
		t.Log("PASS proxy ads (ConnType 0 UDP Proxy, 1 TCP Proxy, address tags) seen both ways")
	})
}
