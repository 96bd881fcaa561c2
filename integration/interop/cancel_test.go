package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// cancelCounts counts the Cancel advertisements for node:service on a
// relay, by sender side.
func cancelCounts(r *tcpRelay, node, service string) (fromDialer, fromListener int) {
	for _, f := range r.Frames() {
		if f.Len == 0 || f.Data[0] != 2 || f.Len > len(f.Data) {
			continue
		}
		var a struct {
			NodeID  string
			Service string
			Cancel  bool
		}
		if json.Unmarshal(f.Data[1:], &a) != nil || !a.Cancel || a.NodeID != node || a.Service != service {
			continue
		}
		if f.FromDialer {
			fromDialer++
		} else {
			fromListener++
		}
	}
	return fromDialer, fromListener
}

// TestCancelForwardedOnce checks docs/protocol.md §7.1 (deviation M1): in the cycle
// o - up1 - up2 - o (with our o2 hanging off o), each Cancel, whether
// originated by o or forwarded from o2, leaves o at most once per session,
// although copies come back to o around the cycle.
func TestCancelForwardedOnce(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	o := newOurNode(t, "o")
	po := o.ListenTCP(nil, mesh.BackendOptions{})
	r1 := newTCPRelay(t, fmt.Sprintf("127.0.0.1:%d", po))
	r2 := newTCPRelay(t, fmt.Sprintf("127.0.0.1:%d", po))
	var pu int
	up1 := startListening(t, bin, "up1", func() []string {
		pu = freeTCPPort(t)
		return []string{"--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(pu), "--tcp-peer", "address=" + r1.Addr()}
	})
	up2 := startProc(t, bin, "up2", "--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", pu), "--tcp-peer", "address="+r2.Addr())
	o2 := newOurNode(t, "o2")
	o2.DialTCP(fmt.Sprintf("127.0.0.1:%d", po), nil, mesh.BackendOptions{})
	up1.waitRoute("o2", "o")
	up2.waitRoute("o2", "o")
	up1.waitConnected("up2", 1)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listen := func(n *ourNode, svc string) *stream.Listener {
		ln, err := stream.Listen(ctx, n, svc, stream.ListenOptions{Advertise: true, Logger: n.log})
		if err != nil {
			t.Fatalf("stream.Listen %s:%s: %v", n.NodeID(), svc, err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	ln2, lno := listen(o2, "svc2"), listen(o, "svco")
	for _, u := range []*procNode{up1, up2} {
		u.waitAd("o2", "svc2", 1)
		u.waitAd("o", "svco", 1)
	}
	t.Log("PASS up1 and up2 hold both ads")

	withdraw := func(ln *stream.Listener, node, svc, role string) {
		t.Helper()
		if err := ln.Close(); err != nil {
			t.Fatalf("closing %s:%s: %v", node, svc, err)
		}
		for _, u := range []*procNode{up1, up2} {
			testkit.Eventually(t, convergeTimeout, u.ID+" drops "+node+":"+svc, func() error {
				s, err := u.Status()
				if err != nil {
					return err
				}
				_, ok := s.Ad(node, svc)
				if !ok {
					return nil
				}
				return fmt.Errorf("%+v", s.Advertisements)
			})
		}
		// Copies travel around the cycle back to o: wait until o has
		// received one on each session, then spot-check that o never
		// sends a second.
		testkit.Eventually(t, convergeTimeout, "the Cancel comes back to o over both sessions", func() error {
			back1, _ := cancelCounts(r1, node, svc)
			back2, _ := cancelCounts(r2, node, svc)
			if back1 > 0 && back2 > 0 {
				return nil
			}
			return fmt.Errorf("from up1 %d, from up2 %d", back1, back2)
		})
		for range 10 {
			for _, r := range []*tcpRelay{r1, r2} {
				if _, out := cancelCounts(r, node, svc); out != 1 {
					t.Fatalf("o sent the Cancel of %s:%s %d times on one session, want exactly 1", node, svc, out)
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		back1, _ := cancelCounts(r1, node, svc)
		back2, _ := cancelCounts(r2, node, svc)
		t.Logf("PASS Cancel %s by o: sent once to up1 and once to up2; copies received back: %d from up1, %d from up2", role, back1, back2)
	}
	withdraw(ln2, "o2", "svc2", "forwarded")
	withdraw(lno, "o", "svco", "originated")
}
