package control

import (
	"strings"
	"testing"
	"time"
)

// Short timeouts for the idle tests; each check allows far longer before
// failing.
const (
	testIdle      = 400 * time.Millisecond
	testFirstLine = 200 * time.Millisecond
)

func idleServer(t *testing.T) *testServer {
	return startServer(t, Options{IdleTimeout: testIdle, FirstLineTimeout: testFirstLine}, OriginUnix)
}

// closedAfter requires the server to close r's session, no sooner than
// min after start.
func closedAfter(t *testing.T, r *rawConn, start time.Time, min time.Duration) {
	t.Helper()
	r.expectClosed()
	if el := time.Since(start); el < min {
		t.Fatalf("session closed after %v, before the %v timeout", el, min)
	}
}

func TestDefaultIdleTimeouts(t *testing.T) {
	s := NewServer(newFakeOps(), Options{})
	if s.idleTimeout != DefaultIdleTimeout || s.firstLineTimeout != DefaultFirstLineTimeout {
		t.Fatalf("defaults %v/%v", s.idleTimeout, s.firstLineTimeout)
	}
	short := s.WithIdleTimeout(time.Second)
	if short.idleTimeout != time.Second || short.firstLineTimeout != time.Second || s.idleTimeout != DefaultIdleTimeout {
		t.Fatalf("WithIdleTimeout(1s): %v/%v, original %v", short.idleTimeout, short.firstLineTimeout, s.idleTimeout)
	}
	if s.WithIdleTimeout(0) != s {
		t.Fatal("WithIdleTimeout(0) is not the server itself")
	}
}

// TestFirstLineTimeout: a client that never sends a request, or trickles
// one byte at a time, is closed once the first-line timeout passes.
func TestFirstLineTimeout(t *testing.T) {
	ts := idleServer(t)
	start := time.Now()
	closedAfter(t, dialRaw(t, ts.path), start, testFirstLine)

	start = time.Now() // before the dial: the server's clock starts when it accepts
	r := dialRaw(t, ts.path)
	go func() {
		for _, b := range "status" {
			time.Sleep(testFirstLine / 4)
			if _, err := r.conn.Write([]byte(string(b))); err != nil {
				return
			}
		}
	}()
	closedAfter(t, r, start, testFirstLine)
}

// TestIdleBetweenCommands: a session may pause under the idle timeout
// between commands, and is closed when a pause exceeds it.
func TestIdleBetweenCommands(t *testing.T) {
	ts := idleServer(t)
	r := dialRaw(t, ts.path)
	var lastSend time.Time
	for range 3 {
		lastSend = time.Now()
		r.send(`{"command":"status","requested_fields":["NodeID"]}` + "\n")
		r.expect(`{"NodeID":"nodea"}` + "\n")
		time.Sleep(testIdle / 2)
	}
	// The server set the idle deadline once it had answered the last
	// command, so after lastSend; a late wake-up from the pause cannot
	// make the close look early.
	closedAfter(t, r, lastSend, testIdle)
}

// TestSubmitPayloadPauses: a work submit payload may take longer than the
// idle timeout as long as its pauses are shorter; a longer pause fails the
// submit.
func TestSubmitPayloadPauses(t *testing.T) {
	ts := idleServer(t)
	r := dialRaw(t, ts.path)
	r.send("work submit localhost cat\n")
	r.expect("Work unit created with ID Unit0001. Send stdin data and EOF.\n")
	var want strings.Builder
	for i := range 8 { // 8 pauses of idle/4: twice the idle timeout in all
		time.Sleep(testIdle / 4)
		chunk := strings.Repeat(string(rune('a'+i)), 1000)
		want.WriteString(chunk)
		r.send(chunk)
	}
	if err := r.conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	r.expect(`{"result":"Job Started","unitid":"Unit0001"}` + "\n")
	r.expectEOF()
	if got := string(ts.ops.units["Unit0001"].stdout); got != want.String() {
		t.Fatalf("payload of %d bytes, want %d", len(got), want.Len())
	}

	r = dialRaw(t, ts.path)
	r.send("work submit localhost cat\npartial")
	r.expect("Work unit created with ID Unit0002. Send stdin data and EOF.\n")
	line, err := r.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ERROR: ") || !strings.Contains(line, "timeout") {
		t.Fatalf("stalled payload: got %q, %v; want an ERROR about the timeout", line, err)
	}
}

// TestLongResultsAndBridge: neither a results stream nor a connect bridge
// is cut by the idle timeout.
func TestLongResultsAndBridge(t *testing.T) {
	ts := idleServer(t)
	ts.ops.addUnit("Endless1", &fakeUnit{workType: "cat", state: 1, endless: true})
	r := dialRaw(t, ts.path)
	r.send("work results Endless1\n")
	r.expect("Streaming results for work unit Endless1\n")
	deadline := time.Now().Add(3 * testIdle)
	for time.Now().Before(deadline) {
		r.expect("tick\n")
	}

	ts.ops.dial["nodeb/echo"] = echoService(t)
	b := dialRaw(t, ts.path)
	b.send("connect nodeb echo\n")
	b.expect("Connecting\n")
	time.Sleep(2 * testIdle)
	b.send("still here\n")
	b.expect("still here\n")
}
