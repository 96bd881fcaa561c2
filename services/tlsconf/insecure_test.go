package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
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
	key, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", c.PrivateKey)
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
