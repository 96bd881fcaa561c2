package interop

import (
	"crypto/tls"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// testPKI is a CA made with our tlsconf.CertInit and node certificates made
// with CertMakeReq/CertSignReq (testkit.CommandPKI in process), so upstream
// accepting them also checks our certificate tooling (node-ID SAN DER,
// docs/protocol.md §9.2).
type testPKI struct{ *testkit.CommandPKI }

func newTestPKI(dir string) *testPKI {
	return &testPKI{testkit.NewCommandPKI(testkit.InProcessCertTool(), dir, "Interop Test CA")}
}

// CACert is the CA certificate file (made by the first Node call).
func (p *testPKI) CACert() string { return p.CommandPKI.CACert }

// Node returns the certificate and key files of nodeID (SANs: the node ID,
// DNS localhost and IP 127.0.0.1), creating the CA and the pair on first use.
func (p *testPKI) Node(t *testing.T, nodeID string) (cert, key string) {
	t.Helper()
	nc := p.CommandPKI.Node(t, nodeID)
	return nc.Cert, nc.Key
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
