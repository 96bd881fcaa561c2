package integration

import (
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// testCA is a certificate authority made with the binary's own cert-init,
// and node certificates made with its cert-makereq and cert-signreq, as a
// user would (testkit.CommandPKI over testkit.BinaryCertTool): the TLS tests
// double as tests of those commands.
type testCA struct {
	*testkit.CommandPKI
	Cert string
}

// newCA runs `--cert-init`.
func newCA(t *testing.T) *testCA {
	t.Helper()
	p := testkit.NewCommandPKI(testkit.BinaryCertTool(binPath(routerBin)), shortTempDir(t), "Integration Test CA")
	p.EnsureCA(t)
	return &testCA{CommandPKI: p, Cert: p.CACert}
}

// nodeCert is a node's certificate and key.
type nodeCert = testkit.NodeCert

// issue returns the certificate of node id (node-ID SAN, plus localhost
// and 127.0.0.1 so that peers dialing 127.0.0.1 verify it), made with
// cert-makereq and cert-signreq on first use.
func (ca *testCA) issue(t *testing.T, id string) nodeCert { return ca.Node(t, id) }

// tlsItems are the YAML items tls-server "srv" and tls-client "cli" for a
// node holding nc, trusting ca, requiring client certificates.
func (ca *testCA) tlsItems(nc nodeCert) []string {
	return []string{
		entity("tls-server", "name", "srv", "cert", nc.Cert, "key", nc.Key,
			"clientcas", ca.Cert, "requireclientcert", "true"),
		entity("tls-client", "name", "cli", "cert", nc.Cert, "key", nc.Key, "rootcas", ca.Cert),
	}
}

// tlsArgs is the command-line form of tlsItems.
func (ca *testCA) tlsArgs(nc nodeCert) []string {
	return []string{
		"--tls-server", "name=srv", "cert=" + nc.Cert, "key=" + nc.Key, "clientcas=" + ca.Cert, "requireclientcert=true",
		"--tls-client", "name=cli", "cert=" + nc.Cert, "key=" + nc.Key, "rootcas=" + ca.Cert,
	}
}
