package backends

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
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
	server, client *testkit.Cert
	rogue          *testkit.Cert // self-signed, untrusted
}

const testHost = "receptor-test.invalid"

// leafOptions is a certificate for 127.0.0.1, testHost and nodeID. The
// node-ID SAN is tlsconf.MarshalSAN's, whose bytes TestMarshalSANGolden
// (services/tlsconf) checks against docs/protocol.md §9.2.
func leafOptions(nodeID string) testkit.IssueOptions {
	return testkit.IssueOptions{
		CommonName: nodeID, NodeIDs: []string{nodeID},
		DNSNames: []string{testHost}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca := testkit.NewCA(t)
	return &testPKI{
		pool:   ca.Pool(),
		server: ca.Issue(t, leafOptions("server-node")),
		client: ca.Issue(t, leafOptions("client-node")),
		rogue:  testkit.SelfSigned(t, leafOptions("client-node")),
	}
}

func (p *testPKI) serverConfig() *tls.Config { return p.server.ServerConfig() }

func (p *testPKI) clientConfig() *tls.Config { return p.client.ClientConfig() }

func nodeIDs(t *testing.T, s Session) []string {
	t.Helper()
	p, ok := s.(PeerIdentified)
	if !ok {
		t.Fatalf("session %s (%T) does not report peer node IDs", s.RemoteAddr(), s)
	}
	return p.PeerNodeIDs()
}
