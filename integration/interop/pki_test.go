package interop

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// testPKI is a CA made with our tlsconf.CertInit and node certificates made
// with CertMakeReq/CertSignReq, so upstream accepting them also checks our
// certificate tooling (node-ID SAN DER, docs/protocol.md §9.2).
type testPKI struct {
	dir   string
	mu    sync.Mutex
	ca    bool
	nodes map[string]bool
}

func (p *testPKI) CACert() string { return filepath.Join(p.dir, "ca.crt") }

// Node returns the certificate and key files of nodeID (SANs: the node ID,
// DNS localhost and IP 127.0.0.1), creating the CA and the pair on first use.
func (p *testPKI) Node(t *testing.T, nodeID string) (cert, key string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ensureCA(t)
	base := filepath.Join(p.dir, nodeID)
	cert, key = base+".crt", base+".key"
	if p.nodes[nodeID] {
		return cert, key
	}
	p.makeCert(t, base, nodeID, []string{"localhost"}, []string{"127.0.0.1"})
	p.nodes[nodeID] = true
	return cert, key
}

// ensureCA creates the CA on first use; p.mu is held.
func (p *testPKI) ensureCA(t *testing.T) {
	t.Helper()
	if !p.ca {
		err := tlsconf.CertInit(tlsconf.CertInitOptions{
			CommonName: "Interop Test CA", Bits: 2048,
			OutCert: p.CACert(), OutKey: filepath.Join(p.dir, "ca.key"),
		})
		if err != nil {
			t.Fatalf("cert-init: %v", err)
		}
		p.ca = true
		p.nodes = map[string]bool{}
	}
}

// makeCert writes base.crt and base.key for nodeID with the given DNS and
// IP SANs, signed by the CA; p.mu is held.
func (p *testPKI) makeCert(t *testing.T, base, nodeID string, dns, ips []string) {
	t.Helper()
	cert, key := base+".crt", base+".key"
	err := tlsconf.CertMakeReq(tlsconf.CertMakeReqOptions{
		CommonName: nodeID, Bits: 2048,
		DNSName: dns, IPAddress: ips, NodeID: []string{nodeID},
		OutReq: base + ".csr", OutKey: key,
	})
	if err != nil {
		t.Fatalf("cert-makereq %s: %v", nodeID, err)
	}
	err = tlsconf.CertSignReq(tlsconf.CertSignReqOptions{
		Req: base + ".csr", CACert: p.CACert(), CAKey: filepath.Join(p.dir, "ca.key"),
		OutCert: cert, Verify: true,
	}, strings.NewReader(""), discardWriter{})
	if err != nil {
		t.Fatalf("cert-signreq %s: %v", nodeID, err)
	}
}

// UpstreamTLSArgs are upstream command-line entities defining tls-server
// "srv" (client certificates required, our CA) and tls-client "cli" for
// nodeID.
func (p *testPKI) UpstreamTLSArgs(t *testing.T, nodeID string) []string {
	cert, key := p.Node(t, nodeID)
	return []string{
		"--tls-server", "name=srv", "cert=" + cert, "key=" + key,
		"requireclientcert=true", "clientcas=" + p.CACert(),
		"--tls-client", "name=cli", "cert=" + cert, "key=" + key, "rootcas=" + p.CACert(),
	}
}

type discardWriter struct{}

func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }

// OurServerTLS is our tls-server config for nodeID, like upstream's "srv".
func (p *testPKI) OurServerTLS(t *testing.T, nodeID string) *tls.Config {
	t.Helper()
	cert, key := p.Node(t, nodeID)
	c, err := tlsconf.NewServerConfig(tlsconf.ServerOptions{
		Name: "srv", Cert: cert, Key: key, RequireClientCert: true, ClientCAs: p.CACert(),
	}, nodeID)
	if err != nil {
		t.Fatalf("our tls-server for %s: %v", nodeID, err)
	}
	return c
}

// OurClientTLS is our tls-client config for nodeID, like upstream's "cli".
func (p *testPKI) OurClientTLS(t *testing.T, nodeID string) *tls.Config {
	t.Helper()
	cert, key := p.Node(t, nodeID)
	c, err := tlsconf.NewClientConfig(tlsconf.ClientOptions{
		Name: "cli", Cert: cert, Key: key, RootCAs: p.CACert(),
	}, nodeID)
	if err != nil {
		t.Fatalf("our tls-client for %s: %v", nodeID, err)
	}
	return c
}
