package testkit

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// KeyType is the kind of key a certificate is made for.
type KeyType int

const (
	// ECDSA is a P-256 key: quick to make, the default.
	ECDSA KeyType = iota
	// RSA is a 2048-bit RSA key, for code that requires RSA.
	RSA
)

// Usage says which TLS side a certificate is for.
type Usage int

const (
	// ServerAndClient is the default: the certificate serves either side.
	ServerAndClient Usage = iota
	// ServerOnly is for TLS servers only.
	ServerOnly
	// ClientOnly is for TLS clients only.
	ClientOnly
)

// IssueOptions describe one certificate. The zero value is a certificate
// with no names, valid from an hour ago for two hours, for either side, with
// an ECDSA key.
type IssueOptions struct {
	// CommonName is the subject's CN.
	CommonName string
	// NodeIDs are Receptor node IDs, written as otherName SANs
	// (docs/protocol.md §9.2) by tlsconf.MarshalSAN together with DNSNames
	// and IPs.
	NodeIDs []string
	// DNSNames and IPs are the DNS and IP SANs.
	DNSNames []string
	IPs      []net.IP
	// Usage picks the extended key usages.
	Usage Usage
	// NotBefore and NotAfter bound the validity; zero means an hour ago and
	// an hour from now.
	NotBefore, NotAfter time.Time
	// Key is the key type of the certificate.
	Key KeyType
	// ExtraExtensions are added as they are (for example a hand-made SAN
	// when a test checks the parser; then leave NodeIDs empty).
	ExtraExtensions []pkix.Extension
}

// Cert is an issued certificate, in memory and as PEM files.
type Cert struct {
	X509 *x509.Certificate
	DER  []byte
	Key  crypto.Signer
	// TLS is the certificate and key for a tls.Config.
	TLS tls.Certificate
	// Pool trusts the issuer (for a self-signed certificate, itself).
	Pool *x509.CertPool
	// CertFile and KeyFile are the certificate and the PKCS #8 key as PEM;
	// CAFile is the issuer's certificate as PEM.
	CertFile, KeyFile, CAFile string
}

// ServerConfig is a TLS server configuration presenting c and requiring a
// client certificate issued by c's issuer.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.TLS},
		ClientCAs:    c.Pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientConfig is a TLS client configuration presenting c and trusting
// servers issued by c's issuer.
func (c *Cert) ClientConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{c.TLS},
		RootCAs:      c.Pool,
		MinVersion:   tls.VersionTLS12,
	}
}

// CA is an in-memory certificate authority whose files live under the
// test's temporary directory.
type CA struct {
	tb   testing.TB
	dir  string
	cert *Cert

	mu     sync.Mutex
	serial int64
}

// NewCA makes a CA with an ECDSA key, valid from an hour ago for two hours.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	ca := &CA{tb: tb, dir: tb.TempDir(), serial: 1}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "testkit CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	key := newKey(tb, ECDSA)
	ca.cert = finish(tb, ca.dir, "ca", tmpl, tmpl, key, key, nil)
	return ca
}

// Pool trusts the CA.
func (ca *CA) Pool() *x509.CertPool { return ca.cert.Pool }

// Certificate is the CA's own certificate (CertFile is the CA file).
func (ca *CA) Certificate() *Cert { return ca.cert }

// CertFile is the CA certificate as a PEM file.
func (ca *CA) CertFile() string { return ca.cert.CertFile }

// Issue makes a certificate signed by the CA; a failure fails tb.
func (ca *CA) Issue(tb testing.TB, opts IssueOptions) *Cert {
	tb.Helper()
	ca.mu.Lock()
	ca.serial++
	serial := ca.serial
	ca.mu.Unlock()
	tmpl := template(tb, serial, opts)
	key := newKey(tb, opts.Key)
	return finish(tb, ca.dir, fmt.Sprintf("cert%d", serial), tmpl, ca.cert.X509, key, ca.cert.Key, ca.cert)
}

// SelfSigned makes a certificate signed by its own key: its Pool trusts it
// alone, and a CA's pool does not.
func SelfSigned(tb testing.TB, opts IssueOptions) *Cert {
	tb.Helper()
	tmpl := template(tb, 1, opts)
	key := newKey(tb, opts.Key)
	return finish(tb, tb.TempDir(), "self", tmpl, tmpl, key, key, nil)
}

func template(tb testing.TB, serial int64, opts IssueOptions) *x509.Certificate {
	tb.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(serial),
		Subject:         pkix.Name{CommonName: opts.CommonName},
		NotBefore:       opts.NotBefore,
		NotAfter:        opts.NotAfter,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtraExtensions: opts.ExtraExtensions,
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = now.Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = now.Add(time.Hour)
	}
	switch opts.Usage {
	case ServerOnly:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case ClientOnly:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	if opts.Key == RSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	if len(opts.NodeIDs) == 0 {
		tmpl.DNSNames, tmpl.IPAddresses = opts.DNSNames, opts.IPs
		return tmpl
	}
	san, err := tlsconf.MarshalSAN(opts.DNSNames, opts.IPs, opts.NodeIDs)
	if err != nil {
		tb.Fatalf("testkit: SAN for %q: %v", opts.NodeIDs, err)
	}
	tmpl.ExtraExtensions = append([]pkix.Extension{san}, opts.ExtraExtensions...)
	return tmpl
}

func newKey(tb testing.TB, kt KeyType) crypto.Signer {
	tb.Helper()
	var (
		key crypto.Signer
		err error
	)
	switch kt {
	case RSA:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		tb.Fatalf("testkit: key: %v", err)
	}
	return key
}

// finish signs tmpl with parent/parentKey and writes name.crt and name.key
// under dir; issuer is nil for a self-signed certificate.
func finish(tb testing.TB, dir, name string, tmpl, parent *x509.Certificate, key, parentKey crypto.Signer, issuer *Cert) *Cert {
	tb.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		tb.Fatalf("testkit: certificate %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("testkit: parse certificate: %v", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("testkit: marshal key: %v", err)
	}
	c := &Cert{
		X509:     cert,
		DER:      der,
		Key:      key,
		TLS:      tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
		CertFile: writePEM(tb, filepath.Join(dir, name+".crt"), "CERTIFICATE", der),
		KeyFile:  writePEM(tb, filepath.Join(dir, name+".key"), "PRIVATE KEY", kder),
	}
	if issuer == nil {
		c.Pool = x509.NewCertPool()
		c.Pool.AddCert(cert)
		c.CAFile = c.CertFile
	} else {
		c.Pool, c.CAFile = issuer.Pool, issuer.CertFile
	}
	return c
}

func writePEM(tb testing.TB, path, typ string, der []byte) string {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatalf("testkit: %v", err)
	}
	return path
}
