package integration

import (
	"os"
	"path/filepath"
	"testing"
)

// testCA is a certificate authority made with the binary's own cert-init.
type testCA struct {
	dir  string
	Cert string
	Key  string
}

// newCA runs `--cert-init` as a user would.
func newCA(t *testing.T) *testCA {
	t.Helper()
	dir := shortTempDir(t)
	ca := &testCA{dir: dir, Cert: filepath.Join(dir, "ca.crt"), Key: filepath.Join(dir, "ca.key")}
	res := runCommand(t, dir, routerBin, "",
		"--cert-init", "commonname=Integration Test CA", "bits=2048",
		"outcert="+ca.Cert, "outkey="+ca.Key)
	if res.Code != 0 {
		t.Fatalf("cert-init: exit %d\n%s", res.Code, res.Out)
	}
	return ca
}

// nodeCert is a node's certificate and key.
type nodeCert struct{ Cert, Key string }

// issue makes a certificate for node id (node-ID SAN, plus localhost and
// 127.0.0.1 so that peers dialing 127.0.0.1 verify it) with cert-makereq
// and cert-signreq.
func (ca *testCA) issue(t *testing.T, id string) nodeCert {
	t.Helper()
	req := filepath.Join(ca.dir, id+".csr")
	nc := nodeCert{Cert: filepath.Join(ca.dir, id+".crt"), Key: filepath.Join(ca.dir, id+".key")}
	res := runCommand(t, ca.dir, routerBin, "",
		"--cert-makereq", "bits=2048", "commonname="+id, "dnsname=localhost", "ipaddress=127.0.0.1",
		"nodeid="+id, "outreq="+req, "outkey="+nc.Key)
	if res.Code != 0 {
		t.Fatalf("cert-makereq %s: exit %d\n%s", id, res.Code, res.Out)
	}
	res = runCommand(t, ca.dir, routerBin, "",
		"--cert-signreq", "req="+req, "cacert="+ca.Cert, "cakey="+ca.Key, "outcert="+nc.Cert, "verify=true")
	if res.Code != 0 {
		t.Fatalf("cert-signreq %s: exit %d\n%s", id, res.Code, res.Out)
	}
	for _, f := range []string{nc.Cert, nc.Key} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Fatalf("certificate file %s missing or empty: %v", f, err)
		}
	}
	return nc
}

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
