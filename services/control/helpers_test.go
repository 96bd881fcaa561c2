package control

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// Test helpers shared by every package (services/testkit).
var (
	shortDir = testkit.ShortTempDir
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// failAfter bounds every blocking step of a test; it is a failure bound,
// never an assertion about speed.
const failAfter = 15 * time.Second

type testServer struct {
	ops  *fakeOps
	path string
	srv  *Server
	stop func() error
}

// startServer serves a fake node on a fresh Unix socket with the given
// origin (the origin is a parameter of Serve, not of the socket type).
func startServer(t *testing.T, opts Options, origin Origin) *testServer {
	t.Helper()
	ops := newFakeOps()
	path := filepath.Join(shortDir(t), "ctl.sock")
	ln, err := ListenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ops, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, origin) }()
	ts := &testServer{ops: ops, path: path, srv: srv}
	var stopped bool
	var stopErr error
	ts.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(failAfter):
				stopErr = errors.New("Serve did not return after cancel")
			}
		}
		return stopErr
	}
	t.Cleanup(func() {
		if err := ts.stop(); err != nil {
			t.Errorf("stop server: %v", err)
		}
	})
	return ts
}

// rawConn speaks bytes to the server for transcript tests.
type rawConn struct {
	t    *testing.T
	conn *net.UnixConn
	br   *bufio.Reader
}

func dialRaw(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	r := &rawConn{t: t, conn: c, br: bufio.NewReader(c)}
	r.expect("Receptor Control, node nodea\n")
	return r
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	_ = r.conn.SetWriteDeadline(time.Now().Add(failAfter))
	if _, err := io.WriteString(r.conn, s); err != nil {
		r.t.Fatalf("send %q: %v", s, err)
	}
}

// expect reads exactly len(want) bytes and compares them.
func (r *rawConn) expect(want string) {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(failAfter))
	got := make([]byte, len(want))
	n, err := io.ReadFull(r.br, got)
	if err != nil || string(got) != want {
		r.t.Fatalf("expected %q, got %q (err %v)", want, got[:n], err)
	}
}

// readAll reads until EOF.
func (r *rawConn) readAll() string {
	r.t.Helper()
	b, err := r.readToEnd()
	if err != nil {
		r.t.Fatalf("read to EOF: %v (got %q)", err, b)
	}
	return string(b)
}

// readToEnd reads until the server ends the session (or failAfter).
func (r *rawConn) readToEnd() ([]byte, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(failAfter))
	return io.ReadAll(r.br)
}

func (r *rawConn) expectEOF() {
	r.t.Helper()
	if rest := r.readAll(); rest != "" {
		r.t.Fatalf("expected EOF, got %q", rest)
	}
}

// expectClosed is expectEOF for a server that closes a session while the
// client may still be writing: bytes the server never read make Linux
// reset a unix or TCP connection instead of ending it, and a reset is as
// much a close as an EOF.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	b, err := r.readToEnd()
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		r.t.Fatalf("read to close: %v (got %q)", err, b)
	}
	if len(b) != 0 {
		r.t.Fatalf("expected a close, got %q", b)
	}
}
