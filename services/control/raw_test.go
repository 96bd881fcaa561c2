package control

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// echoService is a stream service for connect tests: it echoes what it
// reads and half-closes when its input ends.
func echoService(t *testing.T) (dial func() (net.Conn, error)) {
	t.Helper()
	path := filepath.Join(shortDir(t), "echo.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.UnixConn).CloseWrite()
				// Hold the read side until the peer is done.
				_, _ = io.Copy(io.Discard, c)
			})
		}
	})
	return func() (net.Conn, error) { return net.Dial("unix", path) }
}

func TestConnectBridgesToOwnControlService(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	ts.ops.dial["nodea/control"] = func() (net.Conn, error) { return net.Dial("unix", ts.path) }
	r := dialRaw(t, ts.path)
	// receptorctl's form: trailing space = empty TLS name.
	r.send("connect localhost control \n")
	r.expect("Connecting\nReceptor Control, node nodea\n")
	runTranscript(t, r, []step{
		{`{"command":"status","requested_fields":["NodeID"]}` + "\n", `{"NodeID":"nodea"}` + "\n"},
	})
	if err := r.conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r.expectEOF()
}

func TestConnectPropagatesHalfCloseBothWays(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	ts.ops.dial["nodeb/echo"] = echoService(t)
	r := dialRaw(t, ts.path)
	// Payload bytes in the same write as the command must not be lost.
	r.send(`{"command":"connect","node":"nodeb","service":"echo"}` + "\nfirst ")
	r.expect("Connecting\n")
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16)
	r.send(string(payload))
	if err := r.conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got := r.readAll()
	if want := "first " + string(payload); got != want {
		t.Fatalf("echo returned %d bytes, want %d", len(got), len(want))
	}
}

func TestOversizedLineClosesSessionServerStaysUp(t *testing.T) {
	ts := startServer(t, Options{MaxLineBytes: 1024}, OriginUnix)
	r := dialRaw(t, ts.path)
	go func() {
		// The server may close before reading everything; errors are fine.
		_, _ = r.conn.Write([]byte(strings.Repeat("x", 4096) + "\n"))
	}()
	r.expect("ERROR: line too long\n")
	_ = r.conn.SetReadDeadline(time.Now().Add(failAfter))
	if b, err := io.ReadAll(r.br); err != nil && len(b) != 0 {
		t.Fatalf("after line too long: %q %v", b, err)
	}
	// A line at the limit is fine, and the server still serves.
	r2 := dialRaw(t, ts.path)
	runTranscript(t, r2, []step{
		{"ping " + strings.Repeat("y", 1024-5) + "\n", `{"Error":"no route to node","Success":false}` + "\n"},
	})
}

func TestBinaryGarbage(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	r := dialRaw(t, ts.path)
	runTranscript(t, r, []step{
		{"\x00\xff\xfe garbage\n", "ERROR: Unknown command\n"},
		{"{\xff}\n", "ERROR: invalid character 'ÿ' looking for beginning of object key string\nERROR: Unknown command\n"},
		{"{\"command\":\"ping\",\"target\":\"\xff\"}\n", `{"Error":"no route to node","Success":false}` + "\n"},
		{"\x00\n", "ERROR: Unknown command\n"},
	})
	r.send("status")
	if err := r.conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r.expect(statusGolden)
	r.expectEOF()
}

func TestClientVanishesMidSubmit(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	r := dialRaw(t, ts.path)
	r.send("work submit localhost cat\npartial payl")
	r.expect("Work unit created with ID Unit0001. Send stdin data and EOF.\n")
	_ = r.conn.Close()
	// The unit got what arrived; the server is still up.
	testkit.Eventually(t, failAfter, "partial payload stored", func() error {
		st, err := ts.ops.WorkStatus(context.Background(), "Unit0001")
		if err == nil && st.StdoutSize == int64(len("partial payl")) {
			return nil
		}
		return errors.New("want err == nil && st.StdoutSize == int64(len(\"partial payl\"))")
	})
	r2 := dialRaw(t, ts.path)
	runTranscript(t, r2, []step{{"work list nosuch\n", "ERROR: unknown work unit nosuch\n"}})
}

// TestSubmitFailsMidPayload: when the submit fails while the payload is
// still arriving (a split node's worker died), the error is the last reply
// and the session ends: the rest of the payload is never read as commands
// (the client, still writing stdin, would otherwise deadlock against the
// error replies to its own payload; found by integration/faults).
func TestSubmitFailsMidPayload(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	r := dialRaw(t, ts.path)
	r.send("work submit localhost failmid\nABCDwork release Unit0001\nwork list\n")
	r.expect("Work unit created with ID Unit0001. Send stdin data and EOF.\n")
	r.expect("ERROR: work agent unavailable: gone\n")
	r.expectEOF()
	if _, err := ts.ops.WorkStatus(context.Background(), "Unit0001"); err != nil {
		t.Fatalf("payload bytes were run as a command: %v", err)
	}
}

func TestClientVanishesMidResults(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	ts.ops.addUnit("Endless1", &fakeUnit{workType: "cat", state: 1, endless: true})
	r := dialRaw(t, ts.path)
	r.send("work results Endless1 0\n")
	r.expect("Streaming results for work unit Endless1\ntick\n")
	_ = r.conn.Close()
	testkit.Eventually(t, failAfter, "results stream closed", func() error {
		if ts.ops.closedStreams() == 1 {
			return nil
		}
		return errors.New("want ts.ops.closedStreams() == 1")
	})
	r2 := dialRaw(t, ts.path)
	runTranscript(t, r2, []step{{"ping nodeb\n", `{"From":"nodeb","Success":true,"Time":321041,"TimeStr":"321.041µs"}` + "\n"}})
}

func TestShutdownEndsBlockedSessions(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	ts.ops.addUnit("Endless1", &fakeUnit{workType: "cat", state: 1, endless: true})
	idle := dialRaw(t, ts.path)
	streaming := dialRaw(t, ts.path)
	streaming.send("work results Endless1 0\n")
	streaming.expect("Streaming results for work unit Endless1\n")
	if err := ts.stop(); err != nil {
		t.Fatal(err)
	}
	idle.expectEOF()
	_ = streaming.conn.SetReadDeadline(time.Now().Add(failAfter))
	if _, err := io.Copy(io.Discard, streaming.br); err != nil {
		t.Fatalf("streaming session did not end cleanly: %v", err)
	}
	if _, err := net.Dial("unix", ts.path); err == nil {
		t.Fatal("listener still accepting after shutdown")
	}
}

func TestOriginDecidesSignatureTrust(t *testing.T) {
	for _, origin := range []Origin{OriginUnix, OriginTCP, OriginMesh} {
		t.Run(origin.String(), func(t *testing.T) {
			ts := startServer(t, Options{}, origin)
			ts.ops.addUnit("Secure01", &fakeUnit{workType: "secure", state: 2, stdout: []byte("x")})
			r := dialRaw(t, ts.path)
			want := "Streaming results for work unit Secure01\n"
			if origin != OriginUnix {
				want = "ERROR: could not verify signature: signature is empty\n"
			}
			r.send("work results Secure01\n")
			r.expect(want)
		})
	}
}

func TestMeshResultsHalfCloseKeepsSessionReading(t *testing.T) {
	ts := startServer(t, Options{}, OriginMesh)
	ts.ops.addUnit("Done0001", &fakeUnit{workType: "cat", state: 2, stdout: []byte("abc")})
	r := dialRaw(t, ts.path)
	r.send("work results Done0001\n")
	r.expect("Streaming results for work unit Done0001\nabc")
	r.expectEOF() // our read side sees EOF: the server closed its write half
	// The server's read half is still open: writing to it succeeds.
	r.send("status\n")
	_ = r.conn.Close()
}

func TestMaxSessionsQueuesExtraClients(t *testing.T) {
	ts := startServer(t, Options{MaxSessions: 1}, OriginUnix)
	first := dialRaw(t, ts.path)
	second, err := net.Dial("unix", ts.path)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	// While the first session runs, the second gets no greeting. A short
	// read bound can only make this check pass spuriously, never fail.
	_ = second.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, _ := second.Read(make([]byte, 1)); n != 0 {
		t.Fatal("second session started while the limit was reached")
	}
	_ = first.conn.Close()
	_ = second.SetReadDeadline(time.Now().Add(failAfter))
	greeting := make([]byte, len("Receptor Control, node nodea\n"))
	if _, err := io.ReadFull(second, greeting); err != nil {
		t.Fatalf("second session never started: %v", err)
	}
}

func TestListenUnix(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "ctl.sock")
	// A stale regular file at the path is replaced.
	if err := os.WriteFile(path, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := ListenUnix(path, 0o660)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode = %v, want socket 0660", fi.Mode())
	}
	lfi, err := os.Stat(path + ".lock")
	if err != nil || lfi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", lfi, err)
	}
	_, err = ListenUnix(path, 0o600)
	want := "error opening Unix socket: could not acquire lock on socket file: fslock is already locked"
	if err == nil || err.Error() != want {
		t.Fatalf("second listen error = %v, want %q", err, want)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("socket file removed at close (upstream leaves it): %v", err)
	}
	// Once released, the path can be taken again.
	ln2, err := ListenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	_ = ln2.Close()
}

// serveUnix serves srv on a Unix socket at path until ctx is done.
func serveUnix(ctx context.Context, srv *Server, path string) error {
	ln, err := ListenUnix(path, 0o600)
	if err != nil {
		return err
	}
	return srv.Serve(ctx, ln, OriginUnix)
}

func TestServeUnixAndTCPListeners(t *testing.T) {
	ops := newFakeOps()
	srv := NewServer(ops, Options{})
	path := filepath.Join(shortDir(t), "ctl.sock")
	ctx, cancel := context.WithCancel(context.Background())
	unixDone := make(chan error, 1)
	go func() { unixDone <- serveUnix(ctx, srv, path) }()
	var c net.Conn
	testkit.Eventually(t, failAfter, "unix socket accepting", func() error {
		var err error
		c, err = net.Dial("unix", path)
		return err
	})
	r := &rawConn{t: t, conn: c.(*net.UnixConn), br: bufio.NewReader(c)}
	r.expect("Receptor Control, node nodea\n")
	// Unix clients are trusted: a secure unit's results need no signature.
	ops.addUnit("Secure01", &fakeUnit{workType: "secure", state: 2, stdout: []byte("ok")})
	r.send("work results Secure01\n")
	r.expect("Streaming results for work unit Secure01\nok")
	r.expectEOF()
	_ = c.Close()

	// A second server on the same path fails with upstream's lock error.
	err := serveUnix(ctx, srv, path)
	if err == nil || !strings.Contains(err.Error(), "fslock is already locked") {
		t.Fatalf("second serveUnix = %v", err)
	}
	if _, err := ListenTCP("127.0.0.1:notaport", nil); err == nil || !strings.HasPrefix(err.Error(), "error listening on TCP socket: ") {
		t.Fatalf("ListenTCP bad address = %v", err)
	}
	cancel()
	if err := <-unixDone; err != nil {
		t.Fatalf("Serve after cancel = %v", err)
	}
}
