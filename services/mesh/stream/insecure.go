package stream

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// insecureCommonName is the subject CN of the self-signed certificate that a
// listener without user TLS presents (spec §16.4). Dialers accept any
// certificate carrying it, so this "TLS" only provides encryption.
const insecureCommonName = "netceptor-insecure-common-name"

// errInsecureToSecure is the dialer's error when a service presents a real
// certificate although the dialer used the insecure scheme.
var errInsecureToSecure = errors.New("insecure connection to secure service")

// insecureServerTLS builds the listener side of the insecure scheme: a fresh
// RSA-2048 self-signed certificate, serial 1, valid now-1min..now+24h.
func insecureServerTLS(now time.Time) (*tls.Config, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate insecure-scheme RSA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: insecureCommonName},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create insecure-scheme certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{ALPN},
		MinVersion:   tls.VersionTLS13,
	}, nil
}

// insecureClientTLS builds the dialer side of the insecure scheme. Like
// upstream it sends its own node ID as SNI (servers ignore it).
func insecureClientTLS(localNode string) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify:    true, //nolint:gosec // the scheme is the CN check below, by design (§16.4)
		VerifyPeerCertificate: verifyInsecureCert,
		NextProtos:            []string{ALPN},
		ServerName:            localNode,
		MinVersion:            tls.VersionTLS13,
	}
}

// verifyInsecureCert accepts the handshake iff some presented certificate
// parses and has exactly the insecure CN. Validity dates are not checked.
func verifyInsecureCert(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	for _, raw := range rawCerts {
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			continue
		}
		if cert.Subject.CommonName == insecureCommonName {
			return nil
		}
	}
	return errInsecureToSecure
}

// userServerTLS prepares a user TLS config for a listener: ALPN is forced to
// netceptor, and when client certificates are required and verifyNode is
// set, each handshake also checks that the client certificate names the
// dialing node (taken from the QUIC peer address, text before the first ':').
func userServerTLS(base *tls.Config, verifyNode func(node string) VerifyFunc) *tls.Config {
	cfg := base.Clone()
	cfg.NextProtos = []string{ALPN}
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert || verifyNode == nil {
		return cfg
	}
	perClient := cfg.Clone()
	cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		if hi.Conn == nil {
			return nil, errors.New("stream: no peer address for client-certificate node check")
		}
		node := nodeOf(hi.Conn.RemoteAddr().String())
		c := perClient.Clone()
		c.VerifyPeerCertificate = verifyNode(node)
		return c, nil
	}
	return cfg
}

// userClientTLS prepares a user TLS config for a dialer (ALPN forced).
func userClientTLS(base *tls.Config) *tls.Config {
	cfg := base.Clone()
	cfg.NextProtos = []string{ALPN}
	return cfg
}
