package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

var errPeerCertMissing = errors.New("RVF failed: peer certificate missing")

// NodeIDMismatchError says the peer's leaf certificate does not carry the
// expected Receptor node ID. The texts are upstream's.
type NodeIDMismatchError struct {
	Valid    []string // node IDs the certificate carries
	Expected string
}

func (e *NodeIDMismatchError) Error() string {
	if len(e.Valid) == 0 {
		return fmt.Sprintf("x509: certificate is not valid for any Receptor node IDs, but wanted to match %s", e.Expected)
	}
	plural := ""
	if len(e.Valid) > 1 {
		plural = "s"
	}
	return fmt.Sprintf("x509: certificate is valid for Receptor node ID%s %s, not %s",
		plural, strings.Join(e.Valid, ", "), e.Expected)
}

// VerifyPeerNodeID checks that cert carries nodeID as a Receptor node-ID SAN
// (exact, case-sensitive match; docs/protocol.md §9.3 step 4).
func VerifyPeerNodeID(cert *x509.Certificate, nodeID string) error {
	ids, err := NodeIDsFromCert(cert)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if id == nodeID {
			return nil
		}
	}
	return &NodeIDMismatchError{Valid: ids, Expected: nodeID}
}

// NodeIDFromAddr returns the node part of a mesh address "node:service":
// the text before the first ':' (docs/protocol.md §10.3).
func NodeIDFromAddr(addr string) string {
	node, _, _ := strings.Cut(addr, ":")
	return node
}

// ForHost derives a client config for a backend connection to host: standard
// TLS verification with ServerName = host (DNS/IP name checked) plus the
// base's pins. No node-ID check applies to backends (docs/protocol.md §9.3).
func ForHost(base *tls.Config, host string) *tls.Config {
	cfg := cloneOrEmpty(base)
	if !cfg.InsecureSkipVerify {
		cfg.ServerName = host
	}
	return cfg
}

// ForNode derives a client config that accepts a server only if its chain
// verifies against the base's RootCAs (system roots if nil) with the
// serverAuth usage, its leaf matches the base's pins, and the leaf carries
// expectedNodeID. DNS names are not checked and no SNI is sent. A base with
// InsecureSkipVerify is returned (cloned) unchanged. base should come from
// NewClientConfig or a Store: its VerifyConnection (the pin check) is kept.
func ForNode(base *tls.Config, expectedNodeID string) *tls.Config {
	cfg := cloneOrEmpty(base)
	if cfg.InsecureSkipVerify {
		return cfg
	}
	roots := cfg.RootCAs
	clock := cfg.Time
	// Standard verification would demand a DNS name; ours replaces it.
	cfg.InsecureSkipVerify = true
	cfg.ServerName = ""
	addPeerCheck(cfg, func(certs []*x509.Certificate) error {
		if err := verifyChain(certs, roots, clock, x509.ExtKeyUsageServerAuth); err != nil {
			return err
		}
		return VerifyPeerNodeID(certs[0], expectedNodeID)
	})
	return cfg
}

// ForClientNode derives a server config for one connection whose client must
// present a certificate that verifies against the base's ClientCAs (system
// roots if nil) and carries clientNodeID. The base's pin check is kept: we
// honour pinnedclientcert here where upstream ignores it (docs/protocol.md §15.2 M6).
func ForClientNode(base *tls.Config, clientNodeID string) *tls.Config {
	cfg := cloneOrEmpty(base)
	cfg.GetConfigForClient = nil
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	addPeerCheck(cfg, func(certs []*x509.Certificate) error {
		return VerifyPeerNodeID(certs[0], clientNodeID)
	})
	return cfg
}

// addPeerCheck extends cfg's VerifyConnection: the peer must present a
// certificate, cfg's own check (the pins) runs first, then check on the
// presented chain (leaf first).
func addPeerCheck(cfg *tls.Config, check func(certs []*x509.Certificate) error) {
	prior := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errPeerCertMissing
		}
		if prior != nil {
			if err := prior(cs); err != nil {
				return err
			}
		}
		return check(cs.PeerCertificates)
	}
}

// WithClientNodeCheck prepares a stream-listener server config (docs/protocol.md §10.3): if
// the base requires client certificates, each connection's client must carry
// the node ID taken from its remote address ("node:service"). Otherwise the
// base is returned cloned.
func WithClientNodeCheck(base *tls.Config) *tls.Config {
	cfg := cloneOrEmpty(base)
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		return cfg
	}
	template := cfg.Clone()
	// A config from a Store chooses the current one per connection (after
	// a reload): the node check then applies to that one.
	current := cfg.GetConfigForClient
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if hello == nil || hello.Conn == nil || hello.Conn.RemoteAddr() == nil {
			return nil, errors.New("verifying client node ID: unknown remote address")
		}
		base := template
		if current != nil {
			per, err := current(hello)
			if err != nil {
				return nil, err
			}
			if per != nil {
				base = per
			}
		}
		return ForClientNode(base, NodeIDFromAddr(hello.Conn.RemoteAddr().String())), nil
	}
	return cfg
}

// verifyChain is docs/protocol.md §9.3 step 3 without a name check.
func verifyChain(certs []*x509.Certificate, roots *x509.CertPool, clock func() time.Time, usage x509.ExtKeyUsage) error {
	now := time.Now()
	if clock != nil {
		now = clock()
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{usage},
	})
	return err
}

func cloneOrEmpty(base *tls.Config) *tls.Config {
	if base == nil {
		return NewBaseConfig()
	}
	return base.Clone()
}
