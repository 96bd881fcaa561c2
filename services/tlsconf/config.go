package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// maxPEMFileSize bounds every certificate, key and CA bundle file we read.
const maxPEMFileSize = 4 << 20

// ServerOptions mirror the tls-server entity (docs/protocol.md §9.1).
type ServerOptions struct {
	Name                   string
	Cert                   string // PEM certificate (chain) file
	Key                    string // PEM private key file
	RequireClientCert      bool
	ClientCAs              string // PEM CA bundle for client certificates
	PinnedClientCert       []string
	SkipReceptorNamesCheck bool
	MinTLS13               bool
}

// ClientOptions mirror the tls-client entity (docs/protocol.md §9.1). Cert and
// Key may both be empty (no client certificate).
type ClientOptions struct {
	Name                   string
	Cert                   string
	Key                    string
	RootCAs                string // PEM CA bundle; empty = system roots
	InsecureSkipVerify     bool
	PinnedServerCert       []string
	SkipReceptorNamesCheck bool
	MinTLS13               bool
}

// NodeIDNotInCertError is the startup self-check failure (docs/protocol.md §9.1): our own
// certificate lacks our node ID as a Receptor node-ID SAN.
type NodeIDNotInCertError struct {
	NodeID   string
	Found    []string // node IDs the certificate does carry
	Section  string   // name of the tls-server/tls-client entity
	CertPath string
}

// Error returns upstream's text; it says "server cert" for client configs too.
func (e *NodeIDNotInCertError) Error() string {
	return fmt.Sprintf("nodeID=%s not found in certificate name(s); names found=%s; cfg section=%s; server cert=%s",
		e.NodeID, fmt.Sprint(e.Found), e.Section, e.CertPath)
}

// cipherSuites are the TLS 1.2 suites of every configuration this package
// builds: ECDHE key exchange only, so a recorded session cannot be
// decrypted later with the server's key (forward secrecy), and AEAD
// ciphers. Upstream also offers TLS_RSA_WITH_AES_256_GCM_SHA384; peers
// offering only that suite are refused. TLS 1.3 suites are all forward
// secret and are not configurable.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CipherSuites returns the TLS 1.2 cipher suites every configuration built
// here allows (a copy), for configurations assembled elsewhere.
func CipherSuites() []uint16 { return slices.Clone(cipherSuites) }

// NewBaseConfig is the least every TLS configuration starts from: TLS 1.2
// or later with the forward-secret suites only.
func NewBaseConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: CipherSuites()}
}

// baseConfig is the starting point of every named configuration: TLS 1.2
// with upstream's NIST curves and the forward-secret suites, or TLS 1.3
// only.
func baseConfig(minTLS13 bool) *tls.Config {
	if minTLS13 {
		return &tls.Config{MinVersion: tls.VersionTLS13}
	}
	cfg := NewBaseConfig()
	cfg.CurvePreferences = []tls.CurveID{tls.CurveP521, tls.CurveP384, tls.CurveP256}
	return cfg
}

// NewServerConfig builds a tls-server configuration for node nodeID. Errors
// carry the prefix "error preparing tls server config: ".
func NewServerConfig(opts ServerOptions, nodeID string) (*tls.Config, error) {
	cfg, err := newServerConfig(opts, nodeID)
	if err != nil {
		return nil, fmt.Errorf("error preparing tls server config: %w", err)
	}
	return cfg, nil
}

func newServerConfig(opts ServerOptions, nodeID string) (*tls.Config, error) {
	cfg := baseConfig(opts.MinTLS13)
	cert, err := loadKeyPair(opts.Cert, opts.Key)
	if err != nil {
		return nil, err
	}
	if !opts.SkipReceptorNamesCheck {
		if err := checkOwnNodeID(cert, nodeID, opts.Name, opts.Cert); err != nil {
			return nil, err
		}
	}
	cfg.Certificates = []tls.Certificate{cert}
	if opts.ClientCAs != "" {
		pool, err := loadCertPool(opts.ClientCAs)
		if err != nil {
			return nil, fmt.Errorf("error reading client CAs file: %w", err)
		}
		cfg.ClientCAs = pool
	}
	switch {
	case opts.RequireClientCert:
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	case opts.ClientCAs != "":
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	default:
		cfg.ClientAuth = tls.NoClientCert
	}
	pins, err := ParseFingerprints(opts.PinnedClientCert)
	if err != nil {
		return nil, err
	}
	if cfg.ClientAuth != tls.NoClientCert {
		// The TLS stack already verified the chain against ClientCAs with the
		// clientAuth usage. Like upstream, this extra check also runs when no
		// certificate was sent, so clientcas alone still demands one (docs/protocol.md §9.3).
		cfg.VerifyConnection = peerCheck(pins)
	}
	return cfg, nil
}

// NewClientConfig builds a tls-client configuration for node nodeID. Used
// as-is it verifies the server like any TLS client (ServerName = host) plus
// the pinned fingerprints; ForNode derives the node-ID verifying variant.
// Errors carry the prefix "error preparing tls client config: ".
func NewClientConfig(opts ClientOptions, nodeID string) (*tls.Config, error) {
	cfg, err := newClientConfig(opts, nodeID)
	if err != nil {
		return nil, fmt.Errorf("error preparing tls client config: %w", err)
	}
	return cfg, nil
}

func newClientConfig(opts ClientOptions, nodeID string) (*tls.Config, error) {
	cfg := baseConfig(opts.MinTLS13)
	if opts.Cert != "" || opts.Key != "" {
		if opts.Cert == "" || opts.Key == "" {
			return nil, errors.New("cert and key must both be supplied or neither")
		}
		cert, err := loadKeyPair(opts.Cert, opts.Key)
		if err != nil {
			return nil, err
		}
		if !opts.SkipReceptorNamesCheck {
			if err := checkOwnNodeID(cert, nodeID, opts.Name, opts.Cert); err != nil {
				return nil, err
			}
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if opts.RootCAs != "" {
		pool, err := loadCertPool(opts.RootCAs)
		if err != nil {
			return nil, fmt.Errorf("error reading root CAs file: %w", err)
		}
		cfg.RootCAs = pool
	}
	pins, err := ParseFingerprints(opts.PinnedServerCert)
	if err != nil {
		return nil, err
	}
	cfg.InsecureSkipVerify = opts.InsecureSkipVerify
	// insecureskipverify disables the pins as well (upstream behaviour).
	if !opts.InsecureSkipVerify && len(pins) > 0 {
		cfg.VerifyConnection = peerCheck(pins)
	}
	return cfg, nil
}

// peerCheck requires a peer certificate and, if pins are given, that the leaf
// matches one. Chain verification is left to the caller's configuration.
func peerCheck(pins [][]byte) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errPeerCertMissing
		}
		return checkPins(cs.PeerCertificates[0].Raw, pins)
	}
}

func checkOwnNodeID(cert tls.Certificate, nodeID, section, certPath string) error {
	leaf := cert.Leaf
	if leaf == nil {
		if len(cert.Certificate) == 0 {
			return fmt.Errorf("no certificate in %s", certPath)
		}
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("parsing certificate %s: %w", certPath, err)
		}
	}
	ids, err := NodeIDsFromCert(leaf)
	if err != nil {
		return fmt.Errorf("reading node IDs from %s: %w", certPath, err)
	}
	for _, id := range ids {
		if id == nodeID {
			return nil
		}
	}
	return &NodeIDNotInCertError{NodeID: nodeID, Found: ids, Section: section, CertPath: certPath}
}

func loadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, err := readBounded(certPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := readBounded(keyPath)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("loading key pair %s, %s: %w", certPath, keyPath, err)
	}
	return cert, nil
}

// loadCertPool reads a PEM bundle. An empty bundle is an error here (upstream
// accepts it and then rejects every peer).
func loadCertPool(path string) (*x509.CertPool, error) {
	data, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("no PEM certificates found in %s", path)
	}
	return pool, nil
}

// readBounded reads a whole file of at most maxPEMFileSize bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPEMFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxPEMFileSize {
		return nil, fmt.Errorf("reading %s: file larger than %d bytes", path, maxPEMFileSize)
	}
	return data, nil
}
