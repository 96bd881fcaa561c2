package interop

import (
	"fmt"
	"testing"

	"github.com/receptor-mesh/receptor/services/mesh"
)

// TestFirewallOnOurNode checks docs/protocol.md §8.6: firewall rules on our
// node, in the middle of up1 - ours - up2, decide upstream's traffic:
// reject answers with "blocked by firewall" (in transit and addressed to
// us), drop is silent, other traffic and routing are unaffected.
func TestFirewallOnOurNode(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	ours := newOurNodeWith(t, mesh.Options{NodeID: "ours", FirewallRules: []map[string]string{
		{"action": "reject", "fromnode": "up1", "tonode": "up2"},
		{"action": "drop", "fromnode": "up2", "tonode": "up1"},
		{"action": "reject", "fromnode": "up2", "tonode": "ours"},
	}})
	port := ours.ListenTCP(nil, mesh.BackendOptions{})
	peer := fmt.Sprintf("address=127.0.0.1:%d", port)
	up1 := startProc(t, bin, "up1", "--tcp-peer", peer)
	up2 := startProc(t, bin, "up2", "--tcp-peer", peer)
	up1.waitRoute("up2", "ours")
	up2.waitRoute("up1", "ours")
	t.Log("PASS routing updates cross the firewall")

	upPing(t, up1, "ours")
	for _, c := range []struct {
		from *procNode
		to   string
		what string
	}{
		{up1, "up2", "transit reject"},
		{up2, "ours", "local reject"},
	} {
		r, err := c.from.Ping(c.to)
		if err != nil {
			t.Fatal(err)
		}
		if r.Success || r.Error != "blocked by firewall" {
			t.Fatalf("%s: %s ping %s: %+v; want failure %q", c.what, c.from.ID, c.to, r, "blocked by firewall")
		}
		t.Logf("PASS %s: %s ping %s → %+v", c.what, c.from.ID, c.to, r)
	}
	// Ping failures carry no From; traceroute shows who rejected.
	hops, err := up1.Traceroute("up2")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hopsFrom(hops), "up1,ours(blocked by firewall)"; got != want {
		t.Fatalf("up1 traceroute up2: %s, want %s", got, want)
	}
	t.Logf("PASS up1 traceroute up2: %s", hopsFrom(hops))
	r, err := up2.Ping("up1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Success || r.Error == "blocked by firewall" {
		t.Fatalf("drop: up2 ping up1: %+v; want a silent failure (timeout)", r)
	}
	t.Logf("PASS drop: up2 ping up1 → %+v", r)
}
