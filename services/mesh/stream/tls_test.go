package stream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// testPKI is a CA that issues certificates carrying Receptor node-ID SANs.
type testPKI struct {
	t  testing.TB
	ca *testkit.CA
}

func newTestPKI(t testing.TB) *testPKI { return &testPKI{t: t, ca: testkit.NewCA(t)} }

// issue returns a leaf for nodeID, usable by servers and clients.
func (p *testPKI) issue(nodeID string) tls.Certificate {
	return p.ca.Issue(p.t, testkit.IssueOptions{CommonName: nodeID, NodeIDs: []string{nodeID}}).TLS
}

func (p *testPKI) serverConfig(nodeID string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.issue(nodeID)},
		ClientCAs:    p.ca.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

// clientConfig verifies that the server is target and presents a
// certificate for ownNode.
func (p *testPKI) clientConfig(ownNode, target string) *tls.Config {
	return tlsconf.ForNode(&tls.Config{
		Certificates: []tls.Certificate{p.issue(ownNode)},
		RootCAs:      p.ca.Pool(),
		MinVersion:   tls.VersionTLS13,
	}, target)
}

func TestUserTLS(t *testing.T) {
	pki := newTestPKI(t)
	tests := []struct {
		name       string
		serverNode string // node ID in the listener's certificate
		clientNode string // node ID in the dialer's certificate
		ok         bool
	}{
		{"matching node IDs", "node2", "node1", true},
		{"server certificate names another node", "node3", "node1", false},
		{"client certificate names another node", "node2", "mallory", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(1024)
			l := mustListen(t, w, "tls", ListenOptions{TLS: pki.serverConfig(tt.serverNode), Advertise: true})
			if ad, _ := w.server.advertised("tls"); ad.ConnType != mesh.ConnTypeStreamTLS {
				t.Fatalf("advertised ConnType %d, want %d", ad.ConnType, mesh.ConnTypeStreamTLS)
			}
			served := serveEcho(testCtx(t), l)
			c, err := DialConn(testCtx(t), w.client, "node2", "tls", DialOptions{TLS: pki.clientConfig(tt.clientNode, "node2")})
			if tt.ok {
				if err != nil {
					t.Fatalf("Dial: %v", err)
				}
				echoRoundTrip(t, c, randomBytes(t, 100<<10))
				if err := <-served; err != nil {
					t.Fatal(err)
				}
				_ = c.Close()
				waitEnded(t, c)
				return
			}
			if err == nil {
				// In TLS 1.3 the server judges the client certificate after
				// the client considers the handshake done: the server then
				// closes the connection and it never reaches Accept.
				_, rerr := io.ReadAll(c)
				_ = c.Close()
				if rerr == nil {
					t.Fatal("connection with a bad certificate was served")
				}
				waitEnded(t, c)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if _, err := l.AcceptContext(ctx); err == nil {
				t.Fatal("listener accepted a connection with a bad certificate")
			}
		})
	}
}

func TestInsecureDialerRejectsTLSListener(t *testing.T) {
	pki := newTestPKI(t)
	w := newWorld(1024)
	mustListen(t, w, "sec", ListenOptions{TLS: pki.serverConfig("node2")})
	_, err := Dial(testCtx(t), w.client, "node2", "sec", DialOptions{})
	if err == nil || !strings.Contains(err.Error(), "insecure connection to secure service") {
		t.Fatalf("Dial without TLS to a TLS service: %v", err)
	}
	if n := w.client.numBound(); n != 0 {
		t.Fatalf("%d sockets still bound on the dialing node", n)
	}
}

func TestTLSDialerRejectsInsecureListener(t *testing.T) {
	pki := newTestPKI(t)
	w := newWorld(1024)
	mustListen(t, w, "insec", ListenOptions{})
	_, err := Dial(testCtx(t), w.client, "node2", "insec", DialOptions{TLS: pki.clientConfig("node1", "node2")})
	if err == nil {
		t.Fatal("Dial with TLS verification to an insecure-scheme service succeeded")
	}
	var uerr x509.UnknownAuthorityError
	if !errors.As(err, &uerr) && !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestInsecureSchemeConfigs(t *testing.T) {
	srv := insecureServerTLS()
	cert, err := srv.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 1 {
		t.Fatalf("%d certificates in the chain", len(cert.Certificate))
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "netceptor-insecure-common-name" || leaf.SerialNumber.Int64() != 1 ||
		len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.URIs) != 0 || leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("unexpected insecure certificate: CN %q serial %v alg %v", leaf.Subject.CommonName, leaf.SerialNumber, leaf.PublicKeyAlgorithm)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got != 24*time.Hour+time.Minute {
		t.Fatalf("validity %v, want 24h1m", got)
	}
	if len(srv.NextProtos) != 1 || srv.NextProtos[0] != ALPN || srv.MinVersion != tls.VersionTLS13 {
		t.Fatalf("server config ALPN %v min %x", srv.NextProtos, srv.MinVersion)
	}
	cli := insecureClientTLS("node1")
	if cli.ServerName != "node1" || cli.NextProtos[0] != ALPN || cli.VerifyPeerCertificate == nil {
		t.Fatalf("client config %+v", cli)
	}
	if err := cli.VerifyPeerCertificate([][]byte{leaf.Raw}, nil); err != nil {
		t.Fatalf("client rejects the listener's certificate: %v", err)
	}
	pki := newTestPKI(t)
	other := pki.issue("node2").Certificate[0]
	if err := cli.VerifyPeerCertificate([][]byte{other}, nil); err == nil {
		t.Fatal("client accepts a certificate without the insecure CN")
	}
	// Some presented certificate with the CN is enough (upstream's rule).
	if err := cli.VerifyPeerCertificate([][]byte{{0x30, 0x00}, other, leaf.Raw}, nil); err != nil {
		t.Fatalf("client rejects a chain containing the insecure certificate: %v", err)
	}
}

func TestUserTLSKeepsCallerConfig(t *testing.T) {
	base := &tls.Config{NextProtos: []string{"h2"}, ClientAuth: tls.RequireAndVerifyClientCert}
	srv := userServerTLS(base)
	if srv.NextProtos[0] != ALPN || base.NextProtos[0] != "h2" {
		t.Fatalf("ALPN not forced on a copy: server %v, base %v", srv.NextProtos, base.NextProtos)
	}
	if srv.GetConfigForClient == nil {
		t.Fatal("no per-client node-ID check with RequireAndVerifyClientCert")
	}
	cli := userClientTLS(base)
	if cli.NextProtos[0] != ALPN || base.NextProtos[0] != "h2" {
		t.Fatalf("ALPN not forced on a copy: client %v, base %v", cli.NextProtos, base.NextProtos)
	}
}
