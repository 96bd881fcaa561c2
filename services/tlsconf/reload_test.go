package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// copyPair copies a certificate and key into dir as name.crt and name.key.
func copyPair(t *testing.T, dir, name, cert, key string) (string, string) {
	t.Helper()
	c, k := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for _, f := range [][2]string{{cert, c}, {key, k}} {
		data, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return c, k
}

// leafOf handshakes server against a client that trusts both test CAs and
// returns the certificate the server presented and the negotiated ALPN.
func leafOf(t *testing.T, p *pki, server *tls.Config, alpn string) (*x509.Certificate, string) {
	t.Helper()
	roots := x509.NewCertPool()
	for _, f := range []string{p.caCert, p.otherCACert} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		roots.AppendCertsFromPEM(data)
	}
	pair, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	// A real socket: over net.Pipe a TLS 1.3 server blocks writing its
	// session tickets once the client stops reading.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		errc <- tls.Server(c, server).Handshake()
	}()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cli := tls.Client(b, &tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: []tls.Certificate{pair}, NextProtos: []string{alpn}, MinVersion: tls.VersionTLS12})
	if err := cli.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	st := cli.ConnectionState()
	return st.PeerCertificates[0], st.NegotiatedProtocol
}

// TestStoreReload checks that configs handed out before a Reload follow
// it: a server config (and one adjusted with Derive) presents the new
// certificate at the next handshake, a client config the new client
// certificate; an unchanged reload keeps the built configs, and a bad pair
// leaves the store as it was.
func TestStoreReload(t *testing.T) {
	p := getPKI(t)
	dir := t.TempDir()
	sc, sk := copyPair(t, dir, "srv", p.serverCert, p.serverKey)
	cc, ck := copyPair(t, dir, "cli", p.multiCert, p.multiKey)
	servers := []ServerOptions{{Name: "srv", Cert: sc, Key: sk, ClientCAs: p.caCert, RequireClientCert: true}}
	clients := []ClientOptions{{Name: "cli", Cert: cc, Key: ck, RootCAs: p.caCert}}
	s, err := NewStore("node1", servers, clients, nil)
	if err != nil {
		t.Fatal(err)
	}
	server, err := s.Server("srv")
	if err != nil {
		t.Fatal(err)
	}
	derived := Derive(server, func(c *tls.Config) { c.NextProtos = []string{"proto-x"} })
	client, err := s.Client("cli")
	if err != nil {
		t.Fatal(err)
	}
	fileCert := func(path string) []byte {
		pair, err := tls.LoadX509KeyPair(path, path[:len(path)-len(".crt")]+".key")
		if err != nil {
			t.Fatal(err)
		}
		return pair.Certificate[0]
	}
	before := fileCert(sc)
	if leaf, _ := leafOf(t, p, server, "proto-x"); !bytes.Equal(leaf.Raw, before) {
		t.Fatal("server presents another certificate before the reload")
	}

	// An unchanged reload changes nothing.
	if changed, err := s.Reload(servers, clients); err != nil || len(changed) != 0 {
		t.Fatalf("unchanged Reload = %v, %v", changed, err)
	}
	if cfg, err := server.GetConfigForClient(&tls.ClientHelloInfo{}); cfg != nil || err != nil {
		t.Errorf("unchanged store: GetConfigForClient = %v, %v; want the config itself", cfg, err)
	}

	// Renewal: the server files now hold a node1 certificate of the other
	// CA, the client files the plain server certificate.
	copyPair(t, dir, "srv", p.otherCert, p.otherKey)
	copyPair(t, dir, "cli", p.serverCert, p.serverKey)
	changed, err := s.Reload(servers, clients)
	if err != nil || len(changed) != 2 || changed[0] != "tls-client cli" || changed[1] != "tls-server srv" {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	after := fileCert(sc)
	if leaf, _ := leafOf(t, p, server, "proto-x"); !bytes.Equal(leaf.Raw, after) {
		t.Error("a server config handed out before the reload presents the old certificate")
	}
	if leaf, proto := leafOf(t, p, derived, "proto-x"); !bytes.Equal(leaf.Raw, after) || proto != "proto-x" {
		t.Errorf("derived config after reload: new certificate %v, ALPN %q", bytes.Equal(leaf.Raw, after), proto)
	}
	got, err := client.GetClientCertificate(&tls.CertificateRequestInfo{})
	if err != nil || !bytes.Equal(got.Certificate[0], fileCert(cc)) {
		t.Errorf("client certificate after reload: %v", err)
	}

	// A key that does not match: refused, the store keeps the last pair.
	if err := os.WriteFile(sk, mustReadFile(t, p.serverKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(servers, clients); err == nil {
		t.Fatal("Reload with a mismatched key succeeded")
	}
	if leaf, _ := leafOf(t, p, server, "proto-x"); !bytes.Equal(leaf.Raw, after) {
		t.Error("a failed reload changed the presented certificate")
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
