package backends

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

// failAfter bounds every wait in these tests; it is a failure bound, not
// a timing assertion.
const failAfter = 15 * time.Second

// closedChan exposes when a session of this package has ended.
func closedChan(t testing.TB, s Session) <-chan struct{} {
	t.Helper()
	switch v := s.(type) {
	case *session:
		return v.closing
	case *identifiedSession:
		return v.closing
	case *udpListenerSession:
		return v.closing
	}
	t.Fatalf("unexpected session type %T", s)
	return nil
}

// running is a started backend whose sessions the test receives.
type running struct {
	t        testing.TB
	sessions chan Session
	cancel   context.CancelFunc
	wait     func()
	stopped  bool
}

// start runs b; accepted sessions are handed to the test and owned by
// accept until they end, as the mesh would.
func start(t testing.TB, b Backend) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{t: t, sessions: make(chan Session, 128), cancel: cancel}
	wait, err := b.Start(ctx, func(s Session) {
		select {
		case r.sessions <- s:
		case <-ctx.Done():
			return
		}
		<-closedChan(t, s)
	})
	if err != nil {
		cancel()
		t.Fatalf("start %s: %v", b.Kind(), err)
	}
	r.wait = wait
	t.Cleanup(r.stop)
	return r
}

// stop cancels the backend and requires wait to return.
func (r *running) stop() {
	r.t.Helper()
	if r.stopped {
		return
	}
	r.stopped = true
	r.cancel()
	waitReturns(r.t, r.wait)
}

func waitReturns(t testing.TB, wait func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(failAfter):
		t.Fatalf("backend wait did not return")
	}
}

func (r *running) next() Session {
	r.t.Helper()
	select {
	case s := <-r.sessions:
		return s
	case <-time.After(failAfter):
		r.t.Fatalf("no session")
		return nil
	}
}

func recv(t *testing.T, s Session) []byte {
	t.Helper()
	msg, err := s.Recv(failAfter)
	if err != nil {
		t.Fatalf("recv on %s: %v", s.RemoteAddr(), err)
	}
	return msg
}

// recvErr waits for Recv to fail and returns the error.
func recvErr(t *testing.T, s Session) error {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for time.Now().Before(deadline) {
		msg, err := s.Recv(failAfter)
		if err == nil {
			t.Fatalf("recv on %s: unexpected message of %d bytes", s.RemoteAddr(), len(msg))
		}
		if !errors.Is(err, ErrTimeout) {
			return err
		}
	}
	t.Fatalf("recv on %s: session did not end", s.RemoteAddr())
	return nil
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func mustEqual(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes (% x...), want %d bytes (% x...)", len(got), head(got), len(want), head(want))
	}
}

func head(b []byte) []byte { return b[:min(len(b), 8)] }

// exchange checks messages of each size in both directions.
func exchange(t *testing.T, a, b Session, sizes []int) {
	t.Helper()
	for i, n := range sizes {
		m := pattern(n, byte(i))
		if err := a.Send(m); err != nil {
			t.Fatalf("send %d bytes: %v", n, err)
		}
		mustEqual(t, recv(t, b), m)
		m = pattern(n, byte(i+100))
		if err := b.Send(m); err != nil {
			t.Fatalf("send back %d bytes: %v", n, err)
		}
		mustEqual(t, recv(t, a), m)
	}
}

func fastBackoff() Backoff {
	return Backoff{Initial: 10 * time.Millisecond, Max: 40 * time.Millisecond, Factor: 1.5, Jitter: 0.1}
}

// testPKI is a throwaway CA with a server and a client certificate that
// carry Receptor node-ID SANs.
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
	rogue          tls.Certificate // self-signed, untrusted
}

const testHost = "receptor-test.invalid"

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.server = leaf(t, ca, caKey, 2, "server-node")
	p.client = leaf(t, ca, caKey, 3, "client-node")
	p.rogue = leaf(t, nil, nil, 4, "client-node")
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// leaf issues a certificate for 127.0.0.1, testHost and nodeID (self-signed
// when ca is nil).
func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, serial int64, nodeID string) tls.Certificate {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(serial),
		Subject:         pkix.Name{CommonName: nodeID},
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(time.Hour),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{sanExtension(t, testHost, net.IPv4(127, 0, 0, 1), nodeID)},
	}
	if ca == nil {
		ca, caKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// sanExtension encodes dNSName, iPAddress and a Receptor otherName
// (docs/protocol.md §9.2) by hand, so the test does not trust the code under test.
func sanExtension(t *testing.T, dns string, ip net.IP, nodeID string) pkix.Extension {
	t.Helper()
	oid, err := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 2312, 19, 1})
	if err != nil {
		t.Fatal(err)
	}
	utf8, err := asn1.MarshalWithParams(nodeID, "utf8")
	if err != nil {
		t.Fatal(err)
	}
	explicit, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: utf8})
	if err != nil {
		t.Fatal(err)
	}
	names := []asn1.RawValue{
		{Class: asn1.ClassContextSpecific, Tag: 2, Bytes: []byte(dns)},
		{Class: asn1.ClassContextSpecific, Tag: 7, Bytes: ip.To4()},
		{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: append(oid, explicit...)},
	}
	value, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: value}
}

func (p *testPKI) serverConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

func (p *testPKI) clientConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.client},
		RootCAs:      p.pool,
		MinVersion:   tls.VersionTLS12,
	}
}

func nodeIDs(t *testing.T, s Session) []string {
	t.Helper()
	p, ok := s.(PeerIdentified)
	if !ok {
		t.Fatalf("session %s (%T) does not report peer node IDs", s.RemoteAddr(), s)
	}
	return p.PeerNodeIDs()
}
