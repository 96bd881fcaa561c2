package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// echoServers are TCP and UDP echo servers on loopback owned by a test:
// Close (registered as cleanup) stops them and waits for their goroutines.
type echoServers struct {
	tcp   net.Listener
	udp   net.PacketConn
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startEchoServers(t *testing.T) *echoServers {
	t.Helper()
	e := &echoServers{}
	var err error
	if e.tcp, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if e.udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		_ = e.tcp.Close()
		t.Fatal(err)
	}
	e.wg.Add(2)
	go e.serveTCP()
	go e.serveUDP()
	t.Cleanup(e.Close)
	return e
}

func (e *echoServers) serveTCP() {
	defer e.wg.Done()
	for {
		c, err := e.tcp.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		e.conns = append(e.conns, c)
		e.mu.Unlock()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

func (e *echoServers) serveUDP() {
	defer e.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := e.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = e.udp.WriteTo(buf[:n], from)
	}
}

// Close stops the servers and their connections.
func (e *echoServers) Close() {
	_ = e.tcp.Close()
	_ = e.udp.Close()
	e.mu.Lock()
	for _, c := range e.conns {
		_ = c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

// echoThrough sends size random bytes on a connection to network/addr and
// requires the same bytes back.
func echoThrough(t *testing.T, network, addr string, size int) {
	t.Helper()
	var c net.Conn
	testkit.Eventually(t, startTimeout, "dial "+addr, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, commandTimeout)
		return err
	})
	defer c.Close()
	payload := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range payload {
		payload[i] = byte(rng.UintN(256))
	}
	_ = c.SetDeadline(time.Now().Add(convergeTimeout))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		errc <- err
	}()
	got := make([]byte, size)
	_, rerr := io.ReadFull(c, got)
	if werr := <-errc; werr != nil {
		t.Fatalf("write through %s: %v", addr, werr)
	}
	if rerr != nil {
		t.Fatalf("read back through %s: %v", addr, rerr)
	}
	if !bytes.Equal(got, payload) {
		t.Fatalf("echo through %s: %d bytes differ", addr, size)
	}
}

// TestServiceProxies: tcp-server, unix-socket-server and udp-server on
// nodeb reach tcp-client and udp-client services on nodea two hops away
// (through nodem), which forward to local echo servers (docs/protocol.md §11).
func TestServiceProxies(t *testing.T) {
	t.Parallel()
	echo := startEchoServers(t)
	a, m, b := NewNode(t, "nodea"), NewNode(t, "nodem"), NewNode(t, "nodeb")
	unixSock := filepath.Join(b.Dir, "proxy.sock")
	a.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, asYAML(tcpTransport.listener(n)),
			entity("tcp-client", "service", "techo", "address", echo.tcp.Addr().String()),
			entity("udp-client", "service", "uecho", "address", echo.udp.LocalAddr().String()))
	}})
	m.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, asYAML(tcpTransport.peer(a)), asYAML(tcpTransport.listener(n)))
	}})
	b.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, asYAML(tcpTransport.peer(m)),
			entity("tcp-server", "port", fmt.Sprint(n.Port("tcpproxy")), "bindaddr", "127.0.0.1",
				"remotenode", "nodea", "remoteservice", "techo"),
			entity("udp-server", "port", fmt.Sprint(n.Port("udpproxy")), "bindaddr", "127.0.0.1",
				"remotenode", "nodea", "remoteservice", "uecho"),
			entity("unix-socket-server", "filename", unixSock, "permissions", "0660",
				"remotenode", "nodea", "remoteservice", "techo"))
	}})
	a.WaitRoutes(map[string]string{"nodem": "nodem", "nodeb": "nodem"})
	b.WaitRoutes(map[string]string{"nodem": "nodem", "nodea": "nodem"})
	m.WaitRoutes(map[string]string{"nodea": "nodea", "nodeb": "nodeb"})

	t.Run("advertisements", func(t *testing.T) {
		want := map[string]Advertisement{
			"techo": {NodeID: "nodea", Service: "techo", ConnType: 1,
				Tags: map[string]string{"address": echo.tcp.Addr().String(), "type": "TCP Proxy"}},
			"uecho": {NodeID: "nodea", Service: "uecho", ConnType: 0,
				Tags: map[string]string{"address": echo.udp.LocalAddr().String(), "type": "UDP Proxy"}},
		}
		b.WaitStatus("nodea's proxy advertisements", func(s Status) bool {
			found := 0
			for _, ad := range s.Advertisements {
				w, ok := want[ad.Service]
				if ok && ad.NodeID == w.NodeID && ad.ConnType == w.ConnType && fmt.Sprint(ad.Tags) == fmt.Sprint(w.Tags) {
					found++
				}
			}
			return found == len(want)
		})
	})
	t.Run("tcp", func(t *testing.T) {
		echoThrough(t, "tcp", b.Addr("tcpproxy"), 1)
		echoThrough(t, "tcp", b.Addr("tcpproxy"), 256<<10)
	})
	t.Run("unix", func(t *testing.T) {
		st, err := os.Stat(unixSock)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Type() != fs.ModeSocket || st.Mode().Perm() != 0o660 {
			t.Errorf("unix-socket-server mode %v, want socket 0660", st.Mode())
		}
		if _, err := os.Stat(unixSock + ".lock"); err != nil {
			t.Errorf("lock file: %v", err)
		}
		echoThrough(t, "unix", unixSock, 64<<10)
	})
	t.Run("udp", func(t *testing.T) {
		c, err := net.Dial("udp", b.Addr("udpproxy"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Datagrams may be lost while the path warms up: resend until
		// one echo comes back.
		msg := []byte("datagram through two hops")
		buf := make([]byte, 65536)
		ok := testkit.Poll(convergeTimeout, func() bool {
			if _, err := c.Write(msg); err != nil {
				return false
			}
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, err := c.Read(buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return false
			}
			return err == nil && bytes.Equal(buf[:n], msg)
		})
		if !ok {
			t.Fatalf("no UDP echo through %s within %v", b.Addr("udpproxy"), convergeTimeout)
		}
		big := bytes.Repeat([]byte{0xA5}, 60000)
		if _, err := c.Write(big); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(commandTimeout))
		for {
			n, err := c.Read(buf)
			if err != nil {
				t.Fatalf("60000-byte datagram: no echo: %v", err)
			}
			if n == len(msg) { // a late echo of the warm-up datagrams
				continue
			}
			if !bytes.Equal(buf[:n], big) {
				t.Fatalf("60000-byte datagram came back as %d different bytes", n)
			}
			break
		}
	})
}
