package tlsconf_test

// The tests here build certificates with services/testkit, which imports
// tlsconf, so they live in the external test package.

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

func TestNodeIDsFromCert(t *testing.T) {
	long := strings.Repeat("x", 300)
	ext, err := tlsconf.MarshalSAN([]string{"h.example"}, []net.IP{net.ParseIP("10.0.0.1")}, []string{"node1", long})
	if err != nil {
		t.Fatal(err)
	}
	cert := testkit.SelfSigned(t, testkit.IssueOptions{CommonName: "t", ExtraExtensions: []pkix.Extension{ext}}).X509
	ids, err := tlsconf.NodeIDsFromCert(cert)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"node1", long}) {
		t.Errorf("ids = %q", ids)
	}
	// Go's own SAN parser sees the DNS name and IP next to our otherNames.
	if !slices.Equal(cert.DNSNames, []string{"h.example"}) || len(cert.IPAddresses) != 1 {
		t.Errorf("x509 SAN view: %v %v", cert.DNSNames, cert.IPAddresses)
	}
	if err := tlsconf.VerifyPeerNodeID(cert, "node1"); err != nil {
		t.Errorf("VerifyPeerNodeID(node1): %v", err)
	}
	if _, err := tlsconf.NodeIDsFromCert(nil); err == nil {
		t.Error("nil certificate accepted")
	}
}

func TestVerifyInsecureCert(t *testing.T) {
	ins, err := tlsconf.InsecureListenerCert()
	if err != nil {
		t.Fatal(err)
	}
	real := testkit.NewCA(t).Issue(t, testkit.IssueOptions{CommonName: "node1", NodeIDs: []string{"node1"}})
	// Dates are not checked: an expired cert with the CN passes.
	expired := testkit.SelfSigned(t, testkit.IssueOptions{
		CommonName: tlsconf.InsecureCommonName,
		NotBefore:  time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
	})
	lookalike := testkit.SelfSigned(t, testkit.IssueOptions{CommonName: tlsconf.InsecureCommonName + " "})
	tests := []struct {
		name string
		raw  [][]byte
		ok   bool
	}{
		{"insecure cert", [][]byte{ins.Certificate[0]}, true},
		{"garbage then insecure cert", [][]byte{{1, 2, 3}, ins.Certificate[0]}, true},
		{"expired insecure cert", [][]byte{expired.DER}, true},
		{"real cert", [][]byte{real.DER}, false},
		{"similar CN", [][]byte{lookalike.DER}, false},
		{"garbage", [][]byte{{0x30, 0x00}}, false},
		{"none", nil, false},
	}
	for _, tt := range tests {
		err := tlsconf.VerifyInsecureCert(tt.raw, nil)
		if tt.ok != (err == nil) {
			t.Errorf("%s: %v", tt.name, err)
		}
		if err != nil && err.Error() != "insecure connection to secure service" {
			t.Errorf("%s: error text %q", tt.name, err)
		}
	}
}

func FuzzNodeIDsFromCert(f *testing.F) {
	f.Add(testkit.SelfSigned(f, testkit.IssueOptions{CommonName: "t", DNSNames: []string{"localhost"}, NodeIDs: []string{"node1"}}).DER)
	f.Add(testkit.SelfSigned(f, testkit.IssueOptions{CommonName: "t"}).DER)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		ids, err := tlsconf.NodeIDsFromCert(cert)
		if err != nil {
			return
		}
		if err := tlsconf.VerifyPeerNodeID(cert, "\x00no such node"); err == nil && !slices.Contains(ids, "\x00no such node") {
			t.Fatal("VerifyPeerNodeID accepted an absent node ID")
		}
	})
}
