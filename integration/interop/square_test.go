package interop

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestEqualCostSquare checks docs/protocol.md §6.4: the square
// up1 - o1 - up2 - o2 - up1 has two equal-cost paths between opposite
// corners. Our nodes pick one deterministically (unchanged across
// recomputations caused by a node joining and leaving), and traffic flows
// between every pair along minimum-cost, loop-free paths.
func TestEqualCostSquare(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	o1, o2 := newOurNode(t, "o1"), newOurNode(t, "o2")
	p1 := o1.ListenTCP(nil, mesh.BackendOptions{})
	p2 := o2.ListenTCP(nil, mesh.BackendOptions{})
	peers := []string{"--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", p1), "--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", p2)}
	up1 := startProc(t, bin, "up1", peers...)
	up2 := startProc(t, bin, "up2", peers...)

	corners := map[string][]string{"o1": {"up1", "up2"}, "o2": {"up1", "up2"}, "up1": {"o1", "o2"}, "up2": {"o1", "o2"}}
	opposite := map[string]string{"o1": "o2", "o2": "o1", "up1": "up2", "up2": "up1"}
	routesOK := func(table map[string]string, self string) bool {
		for dest, next := range table {
			if dest == self {
				continue
			}
			if dest == opposite[self] {
				if !slices.Contains(corners[self], next) {
					return false
				}
			} else if next != dest {
				return false
			}
		}
		return len(table) >= 3
	}
	for _, o := range []*ourNode{o1, o2} {
		testkit.Eventually(t, convergeTimeout, o.NodeID()+" routes the whole square", func() error {
			rt := o.Status().RoutingTable
			if routesOK(rt, o.NodeID()) {
				return nil
			}
			return fmt.Errorf("routing table %v", rt)
		})
	}
	for _, u := range []*procNode{up1, up2} {
		testkit.Eventually(t, convergeTimeout, u.ID+" routes the whole square", func() error {
			s, err := u.Status()
			if err != nil {
				return err
			}
			if routesOK(s.RoutingTable, u.ID) {
				return nil
			}
			return fmt.Errorf("routing table %v", s.RoutingTable)
		})
	}
	first := map[string]string{"o1": o1.Status().RoutingTable["o2"], "o2": o2.Status().RoutingTable["o1"]}
	t.Logf("PASS square converged; our next hops to the opposite corner: o1→o2 via %s, o2→o1 via %s", first["o1"], first["o2"])

	traffic := func(round string) {
		t.Helper()
		for _, o := range []*ourNode{o1, o2} {
			for _, dest := range []string{"o1", "o2", "up1", "up2"} {
				if dest != o.NodeID() {
					ourPing(t, o, dest)
				}
			}
		}
		for _, u := range []*procNode{up1, up2} {
			for _, dest := range []string{"o1", "o2", "up1", "up2"} {
				if dest != u.ID {
					upPing(t, u, dest)
				}
			}
		}
		// Opposite corners: exactly one middle hop, never a loop.
		for _, u := range []*procNode{up1, up2} {
			hops, err := u.Traceroute(opposite[u.ID])
			if err != nil {
				t.Fatal(err)
			}
			got := hopsFrom(hops)
			if len(hops) != 3 || hops[0].From != u.ID || !slices.Contains(corners[u.ID], hops[1].From) || hops[2].From != opposite[u.ID] {
				t.Fatalf("%s: %s traceroute %s: %s", round, u.ID, opposite[u.ID], got)
			}
		}
		for _, o := range []*ourNode{o1, o2} {
			got := ourTraceroute(t, o, opposite[o.NodeID()])
			want := o.NodeID() + "," + first[o.NodeID()] + "," + opposite[o.NodeID()]
			if got != want {
				t.Fatalf("%s: our %s traceroute: %s, want %s", round, o.NodeID(), got, want)
			}
		}
		t.Logf("PASS %s: pings between all 12 ordered pairs, 3-hop traceroutes across the square", round)
	}
	traffic("converged")

	// Recomputations on every node: a leaf joins o1 and leaves, twice; our
	// tie-break must not change.
	for i := range 2 {
		leaf := newOurNode(t, fmt.Sprintf("leaf%d", i))
		leaf.DialTCP(fmt.Sprintf("127.0.0.1:%d", p1), nil, mesh.BackendOptions{})
		up2.waitRoute(leaf.NodeID(), "o1")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := leaf.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("leaf shutdown: %v", err)
		}
		testkit.Eventually(t, convergeTimeout, "the leaf is gone from o2's table", func() error {
			rt := o2.Status().RoutingTable
			_, ok := rt[leaf.NodeID()]
			if !ok {
				return nil
			}
			return fmt.Errorf("routing table %v", rt)
		})
		for id, o := range map[string]*ourNode{"o1": o1, "o2": o2} {
			if got := o.Status().RoutingTable[opposite[id]]; got != first[id] {
				t.Fatalf("after recomputation %d: %s routes %s via %s, was %s", i, id, opposite[id], got, first[id])
			}
		}
	}
	traffic("after two leaf joins and leaves")
	t.Log("PASS our tie-break stayed the same across recomputations")
}
