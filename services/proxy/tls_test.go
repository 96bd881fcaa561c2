package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// testPKI is a CA in a temp dir that issues leaf certificates for
// 127.0.0.1 plus Receptor node IDs.
type testPKI struct {
	tb     testing.TB
	ca     *testkit.CA
	caFile string
}

func newPKI(tb testing.TB) *testPKI {
	tb.Helper()
	ca := testkit.NewCA(tb)
	return &testPKI{tb: tb, ca: ca, caFile: ca.CertFile()}
}

// leaf issues a certificate for 127.0.0.1 and nodeIDs; it returns the
// cert and key files.
func (p *testPKI) leaf(name string, nodeIDs ...string) (certFile, keyFile string) {
	p.tb.Helper()
	c := p.ca.Issue(p.tb, testkit.IssueOptions{CommonName: name, NodeIDs: nodeIDs, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	return c.CertFile, c.KeyFile
}

func (p *testPKI) pool() *x509.CertPool { return p.ca.Pool() }

// TLS on both legs of tcp-server (local listener, mesh stream verified for
// node3) and on the mesh listener of tcp-client (ConnType 2).
func TestTCPProxyTLSPlacement(t *testing.T) {
	n1, _, n3 := newChain(t)
	pki := newPKI(t)
	c1, k1 := pki.leaf("node1", "node1")
	c3, k3 := pki.leaf("node3", "node3")
	cWrong, kWrong := pki.leaf("impostor", "node2")

	store3, err := tlsconf.NewStore("node3", []tlsconf.ServerOptions{
		{Name: "mesh", Cert: c3, Key: k3},
		{Name: "wrong", Cert: cWrong, Key: kWrong, SkipReceptorNamesCheck: true},
	}, nil, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	store1, err := tlsconf.NewStore("node1",
		[]tlsconf.ServerOptions{{Name: "local", Cert: c1, Key: k1}},
		[]tlsconf.ClientOptions{{Name: "mesh", RootCAs: pki.caFile}}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	target := serveTCP(t, echo)
	for _, svc := range []struct{ name, tls string }{{"good", "mesh"}, {"bad", "wrong"}} {
		cl, err := NewTCPClient(n3, store3, config.TCPClient{Service: svc.name, Address: target, TLSServer: svc.tls},
			Options{Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		start(t, cl)
	}
	testkit.Eventually(t, bound, "node1 sees node3's good service advertised with ConnType 2", func() error {
		for _, ad := range n1.Status().Advertisements {
			if ad.NodeID == "node3" && ad.Service == "good" {
				if ad.ConnType == mesh.ConnTypeStreamTLS {
					return nil
				}
				return errors.New("want ad.ConnType == mesh.ConnTypeStreamTLS")
			}
		}
		return errors.New("no such advertisement yet")
	})

	localTLS := &tls.Config{RootCAs: pki.pool(), ServerName: "127.0.0.1"}
	proxyTo := func(service string) string {
		srv, err := NewTCPServer(n1, store1, config.TCPServer{BindAddr: "127.0.0.1", RemoteNode: "node3",
			RemoteService: service, TLSServer: "local", TLSClient: "mesh"}, Options{Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		start(t, srv)
		return srv.Addr().String()
	}

	t.Run("verified", func(t *testing.T) {
		c, err := tls.Dial("tcp", proxyTo("good"), localTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		data := pattern(200<<10, 11)
		go func() {
			_, _ = c.Write(data)
			_ = c.CloseWrite() // close_notify crosses as a half-close
		}()
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("echo over TLS: %d bytes, %v; want %d bytes", len(got), err, len(data))
		}
	})
	t.Run("mesh cert lacks node ID", func(t *testing.T) {
		// The mesh dial fails verification, so the local connection is
		// closed (during or after the lazy local handshake); the listener
		// itself keeps serving.
		addr := proxyTo("bad")
		for range 2 {
			c, err := tls.Dial("tcp", addr, localTLS)
			if err != nil {
				continue // closed before the handshake finished
			}
			_ = c.SetReadDeadline(timeNowPlusBound())
			n, err := c.Read(make([]byte, 1))
			_ = c.Close()
			if n != 0 || err == nil || isTimeoutErr(err) {
				t.Fatalf("read = %d, %v; want the connection closed", n, err)
			}
		}
	})
}

// tcp-client tlsclient= dials a local TLS server verified by its address.
func TestTCPClientLocalTLS(t *testing.T) {
	n1, _, n3 := newChain(t)
	pki := newPKI(t)
	cs, ks := pki.leaf("local-server", "node3")
	pair, err := tls.LoadX509KeyPair(cs, ks)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, echo)
	store3, err := tlsconf.NewStore("node3", nil, []tlsconf.ClientOptions{{Name: "local", RootCAs: pki.caFile}}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := NewTCPClient(n3, store3, config.TCPClient{Service: "svc", Address: ln.Addr().String(), TLSClient: "local"},
		Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, cl)
	srv, err := NewTCPServer(n1, nil, config.TCPServer{BindAddr: "127.0.0.1", RemoteNode: "node3", RemoteService: "svc"},
		Options{Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	start(t, srv)
	if err := roundTrip(t, srv.Addr().String(), pattern(100<<10, 13)); err != nil {
		t.Fatal(err)
	}
}
