package interop

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// secondSessionRejected waits for the evidence that the session through
// second was refused: a Reject on the wire (exact bytes), or upstream's log
// when its Reject lost the close race (docs/protocol.md §4.6).
func secondSessionRejected(t *testing.T, second *tcpRelay, up *procNode, peer string) {
	t.Helper()
	upMsg := fmt.Sprintf("rejected connection with node %s because it is already connected", peer)
	testkit.Eventually(t, convergeTimeout, "the second session is rejected", func() error {
		if hasReject(second, nil) || strings.Contains(up.Log(), upMsg) {
			return nil
		}
		return errors.New(describeFrames(second.Frames()))
	})
	checkRejectBytes(t, second)
	t.Logf("PASS second session rejected: Reject on the wire %v, upstream logged it %v",
		hasReject(second, nil), strings.Contains(up.Log(), upMsg))
}

// firstSessionIntact checks the first session was never replaced: one
// connection through its relay, no Reject on it, traffic flows both ways.
func firstSessionIntact(t *testing.T, first *tcpRelay, ours *ourNode, up *procNode) {
	t.Helper()
	if n := first.Accepted(); n != 1 || hasReject(first, nil) {
		t.Fatalf("first session disturbed: %d connections through its relay, Reject %v", n, hasReject(first, nil))
	}
	// A listed connection is not yet a route: each side routes once it
	// holds the other's routing update.
	ours.waitRoute(up.ID, up.ID)
	up.waitRoute(ours.NodeID(), ours.NodeID())
	ourPing(t, ours, up.ID)
	upPing(t, up, ours.NodeID())
	n := 0
	for _, c := range ourConns(ours)() {
		if c == up.ID {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("our connections list %s %d times", up.ID, n)
	}
	frames := len(first.Frames())
	testkit.Eventually(t, convergeTimeout, "routing traffic continues on the first session", func() error {
		if len(first.Frames()) > frames && first.Accepted() == 1 {
			return nil
		}
		return fmt.Errorf("%d frames", len(first.Frames()))
	})
	t.Log("PASS first session unaffected (one connection, no Reject, pings both ways, traffic continues)")
}

// TestSecondSessionRejected checks docs/protocol.md §5.3 and §5.7: a second
// session from a node that is already connected is rejected and the first is
// untouched, with ours and upstream in each role.
func TestSecondSessionRejected(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	t.Run("ours-dials-upstream-twice", func(t *testing.T) {
		t.Parallel()
		var port int
		up := startListening(t, bin, "up1", func() []string {
			port = freeTCPPort(t)
			return []string{"--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(port)}
		})
		target := fmt.Sprintf("127.0.0.1:%d", port)
		first, second := newTCPRelay(t, target), newTCPRelay(t, target)
		ours := newOurNode(t, "ours")
		ours.DialTCP(first.Addr(), nil, mesh.BackendOptions{})
		ours.waitConnected("up1", 1)
		up.waitConnected("ours", 1)
		ours.DialTCP(second.Addr(), nil, mesh.BackendOptions{})
		secondSessionRejected(t, second, up, "ours")
		firstSessionIntact(t, first, ours, up)
	})
	t.Run("upstream-dials-ours-twice", func(t *testing.T) {
		t.Parallel()
		ours := newOurNode(t, "ours")
		port := ours.ListenTCP(nil, mesh.BackendOptions{})
		target := fmt.Sprintf("127.0.0.1:%d", port)
		// The second relay holds upstream's second dial until the first
		// session is up, so "first" is well defined.
		first := newTCPRelay(t, target)
		second, release := newHeldRelay(t, target)
		up := startProc(t, bin, "up1", "--tcp-peer", "address="+first.Addr(), "--tcp-peer", "address="+second.Addr())
		ours.waitConnected("up1", 1)
		up.waitConnected("ours", 1)
		release()
		secondSessionRejected(t, second, up, "ours")
		firstSessionIntact(t, first, ours, up)
	})
}

// silentPeerFrames reads the frames c receives, sending nothing, until the
// other side closes it (bounded), and returns the decoded Route messages.
func silentPeerFrames(c net.Conn) ([]routeMsg, error) {
	_ = c.SetReadDeadline(time.Now().Add(45 * time.Second))
	var routes []routeMsg
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset") {
				return routes, nil
			}
			return routes, fmt.Errorf("no close after %d routes: %w", len(routes), err)
		}
		body := make([]byte, binary.LittleEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c, body); err != nil {
			return routes, fmt.Errorf("reading a frame: %w", err)
		}
		var m routeMsg
		if len(body) == 0 || body[0] != 1 || json.Unmarshal(body[1:], &m) != nil {
			return routes, fmt.Errorf("frame %d is not a Route: %q", len(routes), body)
		}
		routes = append(routes, m)
	}
}

// checkGiveUp checks the initial connect messages a silent peer received
// from node: 11 Routes of node (ForwardingNode node, rising sequence), then
// the close (docs/protocol.md §5.2). Upstream closes right after queueing its 11th, which
// usually loses that race, so from upstream 10 count as well.
func checkGiveUp(t *testing.T, what, node string, routes []routeMsg, took time.Duration, upstream bool) {
	t.Helper()
	if len(routes) != 11 && (!upstream || len(routes) != 10) {
		t.Fatalf("%s: %s sent %d initial Routes before closing, want 11", what, node, len(routes))
	}
	for i, m := range routes {
		if m.NodeID != node || m.ForwardingNode != node || (i > 0 && m.UpdateSequence <= routes[i-1].UpdateSequence) {
			t.Fatalf("%s: %s: initial Route %d: %+v", what, node, i, m)
		}
	}
	t.Logf("PASS %s: %s sent %d initial Routes to a silent peer and closed after %v (spec: ≈10 s)",
		what, node, len(routes), took.Round(100*time.Millisecond))
}

// TestInitialHandshakeGiveUp checks docs/protocol.md §5.2: against a peer
// that sends nothing, both implementations, as listener and as dialer, send
// the initial Routes and close the session at ≈10 s. The four sessions are
// observed at the same time.
func TestInitialHandshakeGiveUp(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	type watch struct {
		what, id string
		up       bool
		conn     func() (net.Conn, error) // the silent side's session
		routes   []routeMsg
		took     time.Duration
		err      error
	}
	var watches []*watch
	for _, b := range []struct{ name, bin, id string }{{"upstream", upBin, "up1"}, {"ours", bin, "obin"}} {
		var port int
		startListening(t, b.bin, b.id, func() []string {
			port = freeTCPPort(t)
			return []string{"--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(port)}
		})
		watches = append(watches, &watch{what: b.name + " listener", id: b.id, up: b.bin == upBin, conn: func() (net.Conn, error) {
			return net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second)
		}})

		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		startProc(t, b.bin, b.id+"d", "--tcp-peer", "address="+ln.Addr().String())
		watches = append(watches, &watch{what: b.name + " dialer", id: b.id + "d", up: b.bin == upBin, conn: func() (net.Conn, error) {
			_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(20 * time.Second))
			return ln.Accept()
		}})
	}
	var wg sync.WaitGroup
	for _, w := range watches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := w.conn()
			if err != nil {
				w.err = err
				return
			}
			defer c.Close()
			start := time.Now()
			w.routes, w.err = silentPeerFrames(c)
			w.took = time.Since(start)
		}()
	}
	wg.Wait()
	for _, w := range watches {
		if w.err != nil {
			t.Fatalf("%s: %v", w.what, w.err)
		}
		checkGiveUp(t, w.what, w.id, w.routes, w.took, w.up)
	}
}

// TestDuplicateTwoHops checks docs/protocol.md §6.3: with A1 - B - C - A2
// and A2 started later with A1's node ID, A2 shuts down and A1 stays, for
// a later node of either implementation.
func TestDuplicateTwoHops(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	t.Run("later-is-ours", func(t *testing.T) {
		t.Parallel()
		b := newOurNode(t, "b")
		pb := b.ListenTCP(nil, mesh.BackendOptions{})
		var pc int
		c := startListening(t, bin, "c", func() []string {
			pc = freeTCPPort(t)
			return []string{"--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(pc),
				"--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", pb)}
		})
		a1 := startProc(t, bin, "dup", "--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", pb))
		a1Ready := time.Now() // its epoch was taken before this
		c.waitRoute("dup", "b")
		laterSecond(a1Ready.Unix())
		a2 := newOurNode(t, "dup")
		a2.DialTCP(fmt.Sprintf("127.0.0.1:%d", pc), nil, mesh.BackendOptions{})
		// Ours re-announces itself once with a fresh epoch and stops only
		// when the earlier node's reports persist for three routing
		// intervals (10 s each).
		dupTimeout := 30*time.Second + convergeTimeout
		select {
		case <-a2.Done():
		case <-time.After(dupTimeout):
			t.Fatalf("our later duplicate still running after %v (err %v)", dupTimeout, a2.Err())
		}
		if !errors.Is(a2.Err(), mesh.ErrDuplicateNodeID) {
			t.Fatalf("our later duplicate stopped with %v, want %v", a2.Err(), mesh.ErrDuplicateNodeID)
		}
		if a1.Exited() {
			t.Fatal("upstream's earlier dup exited")
		}
		c.waitRoute("dup", "b")
		upPing(t, c, "dup")
		t.Logf("PASS our later duplicate shut down (%v); upstream's earlier one stays reachable via b", a2.Err())
	})
	t.Run("later-is-upstream", func(t *testing.T) {
		t.Parallel()
		var pb int
		b := startListening(t, bin, "b", func() []string {
			pb = freeTCPPort(t)
			return []string{"--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(pb)}
		})
		c := newOurNode(t, "c")
		pc := c.ListenTCP(nil, mesh.BackendOptions{})
		c.DialTCP(fmt.Sprintf("127.0.0.1:%d", pb), nil, mesh.BackendOptions{})
		a1 := newOurNode(t, "dup")
		a1.DialTCP(fmt.Sprintf("127.0.0.1:%d", pb), nil, mesh.BackendOptions{})
		c.waitRoute("dup", "b")
		laterSecond(int64(a1.Epoch() >> 24))
		a2 := startProc(t, bin, "dup", "--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", pc))
		testkit.Eventually(t, convergeTimeout, "upstream's later duplicate shuts down", func() error {
			if a2.Exited() || strings.Contains(strings.ToLower(a2.Log()), "duplicate") {
				return nil
			}
			return errors.New("still running")
		})
		if a1.Err() != nil {
			t.Fatalf("our earlier dup stopped: %v", a1.Err())
		}
		c.waitRoute("dup", "b")
		b.waitRoute("dup", "dup")
		ourPing(t, c, "dup")
		t.Logf("PASS upstream's later duplicate shut down (exited %v; %s); ours stays reachable via b", a2.Exited(),
			lastLineWith(a2.Log(), "uplicate"))
	})
}

// laterSecond waits until the Unix second is at least two past sec. An
// epoch is seconds × 2^24 plus a random 24-bit part (docs/protocol.md §2.3), so only a
// node started in a later second is sure to have the larger epoch.
func laterSecond(sec int64) {
	for time.Now().Unix() < sec+2 {
		time.Sleep(100 * time.Millisecond)
	}
}

// lastLineWith returns the last log line containing s.
func lastLineWith(log, s string) string {
	lines := strings.Split(log, "\n")
	for j := len(lines) - 1; j >= 0; j-- {
		if strings.Contains(lines[j], s) {
			return lines[j]
		}
	}
	return ""
}
