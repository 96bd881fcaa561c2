package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// testServerTLS is a server configuration with a self-signed certificate for
// 127.0.0.1.
func testServerTLS(t testing.TB) *tls.Config {
	c := testkit.SelfSigned(t, testkit.IssueOptions{
		CommonName: "gateway test", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: testkit.ServerOnly,
	})
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}, MinVersion: tls.VersionTLS12}
}

// trustServed is a pool trusting the self-signed certificate srv serves.
func trustServed(srv *tls.Config) *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificates[0].Leaf)
	return pool
}
