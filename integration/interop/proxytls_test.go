package interop

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// caPool is the shared test CA as a pool.
func caPool(t *testing.T) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(pki.CACert())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("CA file holds no certificate")
	}
	return pool
}

// tlsEchoServer is a local TLS echo server with a certificate for DNS
// localhost (no client certificates asked).
func tlsEchoServer(t *testing.T) int {
	t.Helper()
	certFile, keyFile := pki.Node(t, "echosrv")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, l)
	return l.Addr().(*net.TCPAddr).Port
}

// tlsExchange connects with TLS to addr (verifying DNS localhost against
// the test CA) and echoes 1 B and 1 MiB byte-exact.
func tlsExchange(t *testing.T, addr string) {
	t.Helper()
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: "localhost", RootCAs: caPool(t), MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("local TLS dial %s: %v", addr, err)
	}
	defer c.Close()
	echoRoundTrip(t, c, 1)
	echoRoundTrip(t, c, bulkSize)
}

// noEcho checks that a TLS client on addr gets no echo: the handshake, the
// write or the read fails, or nothing comes back within a short bound
// (upstream leaves the local connection open and silent when the mesh dial
// fails, docs/protocol.md §11.2).
func noEcho(t *testing.T, addr string) string {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("local dial %s: %v", addr, err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	c := tls.Client(raw, &tls.Config{ServerName: "localhost", RootCAs: caPool(t), MinVersion: tls.VersionTLS12})
	if err := c.Handshake(); err != nil {
		return "local TLS handshake ended: " + err.Error()
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "write failed: " + err.Error()
	}
	buf := make([]byte, 5)
	if n, err := io.ReadFull(c, buf); err == nil {
		t.Fatalf("echo %q through a mesh leg that should have failed", buf[:n])
	} else {
		return "read ended: " + err.Error()
	}
	return ""
}

// TestBinaryProxyTLSPlacement checks docs/protocol.md §11.1 and §11.2: TLS on
// the local listener (tcp-server tlsserver), user TLS on the mesh stream
// (tcp-server tlsclient → tcp-client tlsserver, ConnType 2) and TLS on the
// local outbound leg (tcp-client tlsclient, verified by DNS name), between
// upstream and our binary in both directions; a mesh server certificate
// lacking the node ID fails the mesh leg and leaves the local listener
// working.
func TestBinaryProxyTLSPlacement(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	plainEcho, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, plainEcho)
	tlsEcho := tlsEchoServer(t)

	type ports struct{ secure, badMesh, localTLS int }
	args := func(id, other string, p *ports) []string {
		cert, key := pki.Node(t, id)
		bad, badKey := pki.Node(t, "someone")
		p.secure, p.badMesh, p.localTLS = freeTCPPort(t), freeTCPPort(t), freeTCPPort(t)
		return []string{
			"--tls-server", "name=lsrv", "cert=" + cert, "key=" + key,
			"--tls-server", "name=msrv", "cert=" + cert, "key=" + key, "requireclientcert=true", "clientcas=" + pki.CACert(),
			"--tls-server", "name=badsrv", "cert=" + bad, "key=" + badKey, "requireclientcert=true", "clientcas=" + pki.CACert(),
			"skipreceptornamescheck=true",
			"--tls-client", "name=mcli", "cert=" + cert, "key=" + key, "rootcas=" + pki.CACert(),
			"--tls-client", "name=lcli", "cert=" + cert, "key=" + key, "rootcas=" + pki.CACert(),
			"--tcp-client", "service=secho", "address=" + plainEcho.Addr().String(), "tlsserver=msrv",
			"--tcp-client", "service=becho", "address=" + plainEcho.Addr().String(), "tlsserver=badsrv",
			"--tcp-client", "service=lecho", "address=localhost:" + strconv.Itoa(tlsEcho), "tlsclient=lcli",
			"--tcp-server", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(p.secure), "tlsserver=lsrv", "tlsclient=mcli",
			"remotenode=" + other, "remoteservice=secho",
			"--tcp-server", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(p.badMesh), "tlsserver=lsrv", "tlsclient=mcli",
			"remotenode=" + other, "remoteservice=becho",
			"--tcp-server", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(p.localTLS), "remotenode=" + other, "remoteservice=lecho",
		}
	}
	var meshPort int
	var upP, oP ports
	up1 := startListening(t, upBin, "up1", func() []string {
		meshPort = freeTCPPort(t)
		return append(args("up1", "obin", &upP), "--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(meshPort))
	})
	obin := startListening(t, bin, "obin", func() []string {
		return append(args("obin", "up1", &oP), "--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", meshPort))
	})
	obin.waitRoute("up1", "up1")
	up1.waitRoute("obin", "obin")

	local := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
	for _, d := range []struct {
		name   string
		server *procNode
		p      *ports
		client string
	}{
		{"our-server-to-upstream-client", obin, &oP, "up1"},
		{"upstream-server-to-our-client", up1, &upP, "obin"},
	} {
		t.Run(d.name, func(t *testing.T) {
			d.server.waitAd(d.client, "secho", 2)
			tlsExchange(t, local(d.p.secure))
			t.Logf("PASS %s tcp-server (local TLS + mesh TLS) → %s tcp-client tlsserver (ConnType 2): 1 MiB byte-exact",
				d.server.ID, d.client)
			how := noEcho(t, local(d.p.badMesh))
			tlsExchange(t, local(d.p.secure))
			t.Logf("PASS mesh server cert without %s's node ID: no echo (%s); the local TLS listener still works", d.client, how)
			tcpExchange(t, local(d.p.localTLS))
			t.Logf("PASS %s tcp-server → %s tcp-client tlsclient to a local TLS server verified as localhost: 1 MiB byte-exact",
				d.server.ID, d.client)
		})
	}
}
