package authz

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// Kind is how a principal was identified.
type Kind int

const (
	// KindAnonymous is a caller that presented no identity (a plain TCP
	// control client, a REST call without a token).
	KindAnonymous Kind = iota
	// KindUnix is the peer of a unix socket; Name is its uid.
	KindUnix
	// KindCert is a verified TLS client certificate; Name is its node ID,
	// else its first DNS name, else its common name.
	KindCert
	// KindToken is a bearer token; Name is the token's configured name.
	KindToken
	// KindNode is a mesh node reaching the control service; Name is the node
	// ID its mesh address claims (as upstream, the mesh's routing says who
	// a node is; a TLS control service can pin it to a certificate).
	KindNode
	// KindInternal is the other half of this node over the in-process
	// connection (the all-in-one binary's router and work agent).
	KindInternal
)

var kindPrefixes = [...]string{
	KindAnonymous: "anonymous",
	KindUnix:      "uid",
	KindCert:      "cert",
	KindToken:     "token",
	KindNode:      "node",
	KindInternal:  "internal",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindPrefixes) {
		return kindPrefixes[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Principal is an identified caller.
type Principal struct {
	Kind Kind
	Name string
}

// Anonymous is the principal of a caller with no identity.
var Anonymous = Principal{Kind: KindAnonymous}

// Internal is the principal of the node's own other half.
var Internal = Principal{Kind: KindInternal, Name: "self"}

// String is the principal as written in access rules and logs:
// "uid:1000", "cert:node-b", "token:ci", "node:hop1", "anonymous".
func (p Principal) String() string {
	if p.Kind == KindAnonymous {
		return "anonymous"
	}
	return p.Kind.String() + ":" + p.Name
}

// ParsePrincipal reads the String form back. It is the format of the
// metadata the REST gateway relays over the in-process connection.
func ParsePrincipal(s string) (Principal, error) {
	if s == "anonymous" {
		return Anonymous, nil
	}
	prefix, name, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return Principal{}, fmt.Errorf("principal %q: want kind:name", s)
	}
	for k, pre := range kindPrefixes {
		if Kind(k) != KindAnonymous && pre == prefix {
			return Principal{Kind: Kind(k), Name: name}, nil
		}
	}
	return Principal{}, fmt.Errorf("principal %q: unknown kind %q", s, prefix)
}

type ctxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal a face put in ctx. A context with
// none is Anonymous: nothing is trusted by omission.
func FromContext(ctx context.Context) Principal {
	if p, ok := ctx.Value(ctxKey{}).(Principal); ok {
		return p
	}
	return Anonymous
}

// FromCertificate names the principal of a verified client certificate:
// its first node ID (the receptor otherName SAN), else its first DNS name,
// else its subject common name.
func FromCertificate(cert *x509.Certificate) (Principal, bool) {
	if cert == nil {
		return Principal{}, false
	}
	if ids, err := tlsconf.NodeIDsFromCert(cert); err == nil && len(ids) > 0 && ids[0] != "" {
		return Principal{Kind: KindCert, Name: ids[0]}, true
	}
	if len(cert.DNSNames) > 0 && cert.DNSNames[0] != "" {
		return Principal{Kind: KindCert, Name: cert.DNSNames[0]}, true
	}
	if cert.Subject.CommonName != "" {
		return Principal{Kind: KindCert, Name: cert.Subject.CommonName}, true
	}
	return Principal{}, false
}

// FromTLS names the principal of a TLS connection whose client certificate
// was verified against the configured CAs. A connection without a verified
// chain is Anonymous: a certificate accepted only by a pin or by no check
// at all names nobody.
func FromTLS(cs tls.ConnectionState) Principal {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return Anonymous
	}
	if p, ok := FromCertificate(cs.VerifiedChains[0][0]); ok {
		return p
	}
	return Anonymous
}

// errNotUnix is UnixPeer's answer for a connection that is not a local
// unix socket.
var errNotUnix = errors.New("not a unix socket connection")

// UnixPeer names the process at the other end of a unix socket by the uid
// the kernel reports for it (SO_PEERCRED).
func UnixPeer(conn net.Conn) (Principal, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return Principal{}, errNotUnix
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Principal{}, fmt.Errorf("unix peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Principal{}, fmt.Errorf("unix peer credentials: %w", err)
	}
	if credErr != nil {
		return Principal{}, fmt.Errorf("unix peer credentials: %w", credErr)
	}
	return Principal{Kind: KindUnix, Name: strconv.FormatUint(uint64(cred.Uid), 10)}, nil
}
