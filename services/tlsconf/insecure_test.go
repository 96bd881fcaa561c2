package tlsconf

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"
)

func TestInsecureListenerCert(t *testing.T) {
	before := time.Now().Truncate(time.Second)
	c, err := InsecureListenerCert()
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Certificate) != 1 {
		t.Fatalf("%d certificates", len(c.Certificate))
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, ok := c.PrivateKey.(*rsa.PrivateKey)
	if !ok || key.N.BitLen() != 2048 {
		t.Errorf("key %T", c.PrivateKey)
	}
	if leaf.SerialNumber.Int64() != 1 || leaf.Subject.CommonName != "netceptor-insecure-common-name" {
		t.Errorf("serial %v CN %q", leaf.SerialNumber, leaf.Subject.CommonName)
	}
	if leaf.Issuer.String() != leaf.Subject.String() {
		t.Errorf("not self-signed: issuer %s", leaf.Issuer)
	}
	if nb := leaf.NotBefore; nb.After(before.Add(-time.Minute+time.Second)) || nb.Before(before.Add(-2*time.Minute)) {
		t.Errorf("NotBefore %v, want about now-1min", nb)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 24*time.Hour || d > 24*time.Hour+2*time.Minute {
		t.Errorf("validity %v", d)
	}
	if leaf.KeyUsage != 0 || len(leaf.ExtKeyUsage) != 0 || len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 {
		t.Errorf("unexpected usage/SANs: %v %v %v %v", leaf.KeyUsage, leaf.ExtKeyUsage, leaf.DNSNames, leaf.IPAddresses)
	}
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(OIDSubjectAltName) {
			t.Error("SAN extension present")
		}
	}
}

func TestVerifyInsecureCert(t *testing.T) {
	p := getPKI(t)
	ins, err := InsecureListenerCert()
	if err != nil {
		t.Fatal(err)
	}
	real, err := loadCertificate(p.serverCert)
	if err != nil {
		t.Fatal(err)
	}
	// Dates are not checked: an expired cert with the CN passes.
	expired := selfSignedCN(t, InsecureCommonName, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	lookalike := selfSignedCN(t, InsecureCommonName+" ", time.Now(), time.Now().Add(time.Hour))
	tests := []struct {
		name string
		raw  [][]byte
		ok   bool
	}{
		{"insecure cert", [][]byte{ins.Certificate[0]}, true},
		{"garbage then insecure cert", [][]byte{{1, 2, 3}, ins.Certificate[0]}, true},
		{"expired insecure cert", [][]byte{expired}, true},
		{"real cert", [][]byte{real.Raw}, false},
		{"similar CN", [][]byte{lookalike}, false},
		{"garbage", [][]byte{{0x30, 0x00}}, false},
		{"none", nil, false},
	}
	for _, tt := range tests {
		err := VerifyInsecureCert(tt.raw, nil)
		if tt.ok != (err == nil) {
			t.Errorf("%s: %v", tt.name, err)
		}
		if err != nil && err.Error() != "insecure connection to secure service" {
			t.Errorf("%s: error text %q", tt.name, err)
		}
	}
}

func selfSignedCN(t *testing.T, cn string, from, to time.Time) []byte {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: from, NotAfter: to}
	out, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInsecureHandshake(t *testing.T) {
	p := getPKI(t)
	srv, err := InsecureServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	if res := handshake(t, srv, InsecureClientConfig(), nil); !res.ok() {
		t.Fatalf("insecure scheme handshake: client %v server %v", res.client, res.server)
	}
	// With SNI set (upstream dialers send their own node ID) it still works.
	cli := InsecureClientConfig()
	cli.ServerName = "node2"
	if res := handshake(t, srv, cli, nil); !res.ok() {
		t.Fatalf("with SNI: client %v server %v", res.client, res.server)
	}
	// "No TLS" dialer against a user-TLS service fails.
	secure := mustServer(t, ServerOptions{Name: "s", Cert: p.serverCert, Key: p.serverKey}, "node1")
	res := handshake(t, secure, InsecureClientConfig(), nil)
	if !errors.Is(res.client, ErrInsecureToSecure) && (res.client == nil || res.client.Error() != ErrInsecureToSecure.Error()) {
		t.Fatalf("client error %v, want %v", res.client, ErrInsecureToSecure)
	}
	// A user-TLS dialer against an insecure service fails verification.
	base := mustClient(t, ClientOptions{Name: "c", RootCAs: p.caCert}, "n")
	if res := handshake(t, srv, ForNode(base, "node1"), nil); res.client == nil {
		t.Fatal("node-ID verifying client accepted the insecure certificate")
	}
	// ...unless it skips verification.
	skip := mustClient(t, ClientOptions{Name: "c", InsecureSkipVerify: true}, "n")
	if res := handshake(t, srv, ForNode(skip, "node1"), nil); !res.ok() {
		t.Fatalf("insecureskipverify client: %v %v", res.client, res.server)
	}
}
