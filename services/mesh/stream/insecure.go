package stream

import (
	"crypto/tls"
	"fmt"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// TLS inside QUIC (spec §16.4). The certificate generation and checks live
// in tlsconf; this file only fixes what the stream layer owns: ALPN,
// TLS 1.3 (QUIC needs it) and upstream's SNI quirk.

// insecureServerTLS is the listener side of the insecure scheme (ConnType 1):
// a fresh self-signed certificate per listener.
func insecureServerTLS() (*tls.Config, error) {
	cert, err := tlsconf.InsecureListenerCert()
	if err != nil {
		return nil, fmt.Errorf("insecure-scheme certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{ALPN},
		MinVersion:   tls.VersionTLS13,
	}, nil
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
	// ALPN first: the per-client configs are cloned from this one.
	cfg := base.Clone()
	cfg.NextProtos = []string{ALPN}
	return tlsconf.WithClientNodeCheck(cfg)
}

// userClientTLS prepares a user TLS config for a dialer (ALPN forced). The
// caller's config carries the server verification (tlsconf.ForNode).
func userClientTLS(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	cfg.NextProtos = []string{ALPN}
	return cfg
}
