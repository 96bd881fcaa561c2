package tlsconf

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { removeFixture() }))
}

// pki is a set of CAs, keys and certificates produced by our own cert
// commands, shared by the tests (RSA key generation is slow under -race).
type pki struct {
	dir                     string
	caCert, caKey           string
	serverCert, serverKey   string // node1, DNS localhost, IP 127.0.0.1
	clientCert, clientKey   string // node2
	noIDCert, noIDKey       string // DNS localhost only
	multiCert, multiKey     string // node1 and node1b
	otherCACert, otherCAKey string
	otherCert, otherKey     string // node1, issued by the other CA
}

var (
	fixtureOnce sync.Once
	fixture     *pki
	fixtureErr  error
)

// fixtureBits keeps the shared keys small; key-size defaults are tested
// separately.
const fixtureBits = 1024

func getPKI(t *testing.T) *pki {
	t.Helper()
	fixtureOnce.Do(func() { fixture, fixtureErr = buildPKI() })
	if fixtureErr != nil {
		t.Fatalf("building test PKI: %v", fixtureErr)
	}
	return fixture
}

func removeFixture() {
	if fixture != nil {
		os.RemoveAll(fixture.dir)
	}
}

func buildPKI() (*pki, error) {
	dir, err := os.MkdirTemp("", "tlsconf-pki-")
	if err != nil {
		return nil, err
	}
	p := &pki{dir: dir}
	f := func(name string) string { return filepath.Join(dir, name) }
	p.caCert, p.caKey = f("ca.crt"), f("ca.key")
	p.otherCACert, p.otherCAKey = f("other-ca.crt"), f("other-ca.key")
	for _, ca := range []struct{ cert, key, cn string }{
		{p.caCert, p.caKey, "Test CA"},
		{p.otherCACert, p.otherCAKey, "Other CA"},
	} {
		if err := CertInit(CertInitOptions{CommonName: ca.cn, Bits: fixtureBits, OutCert: ca.cert, OutKey: ca.key}); err != nil {
			return p, err
		}
	}
	type leaf struct {
		cert, key *string
		name      string
		dns, ip   []string
		ids       []string
		caCert    string
		caKey     string
	}
	leaves := []leaf{
		{&p.serverCert, &p.serverKey, "server", []string{"localhost"}, []string{"127.0.0.1"}, []string{"node1"}, p.caCert, p.caKey},
		{&p.clientCert, &p.clientKey, "client", nil, nil, []string{"node2"}, p.caCert, p.caKey},
		{&p.noIDCert, &p.noIDKey, "noid", []string{"localhost"}, nil, nil, p.caCert, p.caKey},
		{&p.multiCert, &p.multiKey, "multi", nil, nil, []string{"node1", "node1b"}, p.caCert, p.caKey},
		{&p.otherCert, &p.otherKey, "other", []string{"localhost"}, nil, []string{"node1"}, p.otherCACert, p.otherCAKey},
	}
	for _, l := range leaves {
		*l.cert, *l.key = f(l.name+".crt"), f(l.name+".key")
		req := f(l.name + ".csr")
		if err := CertMakeReq(CertMakeReqOptions{
			CommonName: l.name, Bits: fixtureBits, DNSName: l.dns, IPAddress: l.ip, NodeID: l.ids,
			OutReq: req, OutKey: *l.key,
		}); err != nil {
			return p, err
		}
		if err := CertSignReq(CertSignReqOptions{
			Req: req, CACert: l.caCert, CAKey: l.caKey, OutCert: *l.cert, Verify: true,
		}, nil, nil); err != nil {
			return p, err
		}
	}
	return p, nil
}
