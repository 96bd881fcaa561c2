package stream

import (
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// TLS inside QUIC (docs/protocol.md §10.3). The certificate generation and checks live
// in tlsconf; this file only fixes what the stream layer owns: ALPN,
// TLS 1.3 (QUIC needs it) and upstream's SNI quirk (docs/protocol.md §10.3).

// insecureServerTLS is the listener side of the insecure scheme (ConnType 1).
// Upstream generates an RSA-2048 certificate per listener when it starts,
// which costs 50-500 ms of CPU per listener at start-up. We make one
// ECDSA P-256 certificate per process (tlsconf.InsecureListenerCert) at
// the first handshake that needs it (0.01 ms), and share it: dialers
// accept any certificate with the insecure CN, so nothing a peer checks
// changes.
func insecureServerTLS() *tls.Config {
	return &tls.Config{
		GetCertificate: sharedInsecureCert.get,
		NextProtos:     []string{ALPN},
		MinVersion:     tls.VersionTLS13,
	}
}

// insecureCertRenewBefore is how long before its NotAfter the shared
// certificate is replaced, so no handshake presents an expired one.
const insecureCertRenewBefore = time.Hour

var sharedInsecureCert = &insecureCertCache{now: time.Now, generate: tlsconf.InsecureListenerCert}

// insecureCertCache makes the insecure certificate on first use and
// renews it before it expires.
type insecureCertCache struct {
	now      func() time.Time
	generate func() (tls.Certificate, error)

	mu   sync.Mutex // held while generating: concurrent handshakes wait for the one certificate
	cert *tls.Certificate
}

func (c *insecureCertCache) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert != nil && c.cert.Leaf != nil && c.now().Before(c.cert.Leaf.NotAfter.Add(-insecureCertRenewBefore)) {
		return c.cert, nil
	}
	cert, err := c.generate()
	if err != nil {
		return nil, fmt.Errorf("insecure-scheme certificate: %w", err)
	}
	c.cert = &cert
	return c.cert, nil
}

// insecureClientTLS is the dialer side of the insecure scheme: any server
// certificate with the insecure CN is accepted. Like upstream it sends its
// own node ID as SNI (servers ignore it).
func insecureClientTLS(localNode string) *tls.Config {
	cfg := tlsconf.InsecureClientConfig()
	cfg.NextProtos = []string{ALPN}
	cfg.ServerName = localNode
	cfg.MinVersion = tls.VersionTLS13
	return cfg
}

// userServerTLS prepares a user TLS config for a listener (ConnType 2):
// ALPN forced to netceptor and, when client certificates are required, the
// client's certificate must carry the node ID its QUIC packets come from.
func userServerTLS(base *tls.Config) *tls.Config {
	// ALPN first: the per-client configs are cloned from this one, or come
	// from base's GetConfigForClient (a reloaded certificate), which Derive
	// gives the ALPN too.
	cfg := tlsconf.Derive(base, func(c *tls.Config) { c.NextProtos = []string{ALPN} })
	return tlsconf.WithClientNodeCheck(cfg)
}

// userClientTLS prepares a user TLS config for a dialer (ALPN forced). The
// caller's config carries the server verification (tlsconf.ForNode).
func userClientTLS(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	cfg.NextProtos = []string{ALPN}
	return cfg
}
