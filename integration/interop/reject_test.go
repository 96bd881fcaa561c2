package interop

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// rejectBytes is the Reject message of docs/protocol.md §4.6.
var rejectBytes = []byte{0x03, '[', ']'}

// waitReject waits until the relay saw a Reject from the wanted side
// (fromDialer) or from either side (nil).
func waitReject(t *testing.T, r *tcpRelay, fromDialer *bool) relayFrame {
	t.Helper()
	var got relayFrame
	testkit.Eventually(t, convergeTimeout, "a Reject (03 5b 5d) on the wire", func() error {
		fs := r.Frames()
		for _, f := range fs {
			if f.Len > 0 && f.Data[0] == 3 && (fromDialer == nil || *fromDialer == f.FromDialer) {
				got = f
				return nil
			}
		}
		return errors.New(describeFrames(fs))
	})
	if !bytes.Equal(got.Data, rejectBytes) {
		t.Fatalf("reject message bytes %x, want %x", got.Data, rejectBytes)
	}
	return got
}

// hasReject reports whether the relay saw a type-3 frame from the wanted
// side (nil: either).
func hasReject(r *tcpRelay, fromDialer *bool) bool {
	for _, f := range r.Frames() {
		if f.Len > 0 && f.Data[0] == 3 && (fromDialer == nil || *fromDialer == f.FromDialer) {
			return true
		}
	}
	return false
}

// checkRejectBytes fails if any type-3 frame seen is not exactly 03 5b 5d.
func checkRejectBytes(t *testing.T, r *tcpRelay) {
	t.Helper()
	for _, f := range r.Frames() {
		if f.Len > 0 && f.Data[0] == 3 && !bytes.Equal(f.Data, rejectBytes) {
			t.Fatalf("reject message bytes %x (from dialer %v), want %x", f.Data, f.FromDialer, rejectBytes)
		}
	}
}

// neverConnected samples a node's connections for a while and fails if
// peer shows up (spot checks, not a timing assertion: a rejected peer must
// never be registered).
func neverConnected(t *testing.T, what string, conns func() []string, peer string) {
	t.Helper()
	for i := 0; i < 10; i++ {
		for _, c := range conns() {
			if c == peer {
				t.Fatalf("%s lists %s as a connection", what, peer)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ourConns(o *ourNode) func() []string {
	return func() []string {
		var ids []string
		for _, c := range o.Status().Connections {
			ids = append(ids, c.NodeID)
		}
		return ids
	}
}

func upConns(t *testing.T, p *procNode) func() []string {
	return func() []string {
		s, err := p.Status()
		if err != nil {
			t.Fatalf("status of %s: %v", p.ID, err)
		}
		var ids []string
		for _, c := range s.Connections {
			ids = append(ids, c.NodeID)
		}
		return ids
	}
}

func waitLog(t *testing.T, p *procNode, text string) {
	t.Helper()
	testkit.Eventually(t, convergeTimeout, fmt.Sprintf("%s logs %q", p.ID, text), func() error {
		if strings.Contains(p.Log(), text) {
			return nil
		}
		return errors.New("not in the log yet")
	})
}

// TestSessionRejections checks docs/protocol.md §5.3 and §5.4:
// cost disagreement, allowedpeers and duplicate node IDs are
// rejected with the exact Reject bytes, by upstream and by us.
func TestSessionRejections(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	listen := func(t *testing.T, extra ...string) (*procNode, *tcpRelay) {
		var port int
		up := startListening(t, bin, "up1", func() []string {
			port = freeTCPPort(t)
			return append([]string{"--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(port)}, extra...)
		})
		return up, newTCPRelay(t, fmt.Sprintf("127.0.0.1:%d", port))
	}

	t.Run("nodecost-agreement", func(t *testing.T) {
		up, r := listen(t, `nodecost={"ours":2.5}`)
		ours := newOurNode(t, "ours")
		ours.DialTCP(r.Addr(), nil, mesh.BackendOptions{Cost: 2.5})
		ours.waitConnected("up1", 2.5)
		up.waitConnected("ours", 2.5)
		t.Log("PASS upstream nodecost 2.5 for ours + our peer cost 2.5: established at 2.5")
	})

	t.Run("cost-disagreement", func(t *testing.T) {
		up, r := listen(t, "cost=2")
		ours := newOurNode(t, "ours")
		ours.DialTCP(r.Addr(), nil, mesh.BackendOptions{Cost: 1})
		// Either side may notice first; upstream's Reject can be lost to its
		// close race (docs/protocol.md §4.6), so its log is the evidence for its side.
		const upMsg = "rejected connection with node ours because we disagree about the connection cost"
		fromDialer := true
		testkit.Eventually(t, convergeTimeout, "a cost rejection by either side", func() error {
			if strings.Contains(up.Log(), upMsg) || hasReject(r, &fromDialer) {
				return nil
			}
			return errors.New(describeFrames(r.Frames()))
		})
		checkRejectBytes(t, r)
		t.Logf("PASS cost 2 (up1) vs 1 (ours) rejected: upstream logged it %v, ours sent Reject %v",
			strings.Contains(up.Log(), upMsg), hasReject(r, &fromDialer))
	})

	t.Run("upstream-allowedpeers", func(t *testing.T) {
		up, r := listen(t, "allowedpeers=someone")
		ours := newOurNode(t, "ours")
		ours.DialTCP(r.Addr(), nil, mesh.BackendOptions{})
		waitLog(t, up, "rejected connection with node ours because it is not in the allowed peers list")
		checkRejectBytes(t, r)
		neverConnected(t, "up1", upConns(t, up), "ours")
		t.Log("PASS upstream's allowedpeers rejects ours with 03 5b 5d")
	})

	t.Run("our-allowedpeers", func(t *testing.T) {
		ours := newOurNode(t, "ours")
		port := ours.ListenTCP(nil, mesh.BackendOptions{AllowedPeers: []string{"someone"}})
		r := newTCPRelay(t, fmt.Sprintf("127.0.0.1:%d", port))
		startProc(t, bin, "up1", "--tcp-peer", "address="+r.Addr())
		fromListener := false
		waitReject(t, r, &fromListener)
		neverConnected(t, "ours", ourConns(ours), "up1")
		t.Log("PASS our allowedpeers rejects up1 with 03 5b 5d")
	})

	t.Run("duplicate-node-id", func(t *testing.T) {
		up, r := listen(t)
		dup := newOurNode(t, "up1")
		dup.DialTCP(r.Addr(), nil, mesh.BackendOptions{})
		waitReject(t, r, nil)
		waitLog(t, up, "rejected connection with node up1 because it tried to connect using our own node ID")
		neverConnected(t, "our up1", ourConns(dup), "up1")
		neverConnected(t, "upstream up1", upConns(t, up), "up1")
		if up.Exited() || dup.Err() != nil {
			t.Fatalf("a node stopped: upstream exited %v, ours err %v", up.Exited(), dup.Err())
		}
		t.Log("PASS same node ID on both ends of a session is rejected; both nodes keep running")
	})
}
