package interop

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// hopsFrom renders traceroute hops as "node,node,…" (and any error).
func hopsFrom(hops []ctlHop) string {
	var parts []string
	for _, h := range hops {
		s := h.From
		if h.Error != "" {
			s += "(" + h.Error + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

// ourTraceroute collects our node's traceroute as "node,node,…".
func ourTraceroute(t *testing.T, o *ourNode, target string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var parts []string
	for h := range o.Traceroute(ctx, target) {
		s := h.From
		if h.Err != nil {
			s += "(" + h.Err.Error() + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ",")
}

func ourPing(t *testing.T, o *ourNode, target string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := o.Ping(ctx, target)
	if err != nil {
		t.Fatalf("our %s ping %s: %v", o.NodeID(), target, err)
	}
	if r.From != target {
		t.Fatalf("our %s ping %s: reply from %q", o.NodeID(), target, r.From)
	}
	t.Logf("PASS our %s ping %s: %v", o.NodeID(), target, r.RTT)
}

func upPing(t *testing.T, p *procNode, target string) {
	t.Helper()
	r, err := p.Ping(target)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Success || r.From != target {
		t.Fatalf("%s ping %s: %+v", p.ID, target, r)
	}
	t.Logf("PASS %s ping %s: %d ns", p.ID, target, r.Time)
}

func upTraceroute(t *testing.T, p *procNode, target, want string) {
	t.Helper()
	hops, err := p.Traceroute(target)
	if err != nil {
		t.Fatal(err)
	}
	if got := hopsFrom(hops); got != want {
		t.Fatalf("%s traceroute %s: got %s, want %s", p.ID, target, got, want)
	}
	t.Logf("PASS %s traceroute %s: %s", p.ID, target, want)
}

// TestRoutingUpstreamOursUpstream checks routing, ping and traceroute
// (docs/protocol.md §6, §8.4) with ours in the middle: up1 - ours - up2.
func TestRoutingUpstreamOursUpstream(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	ours := newOurNode(t, "ours")
	port := ours.ListenTCP(nil, mesh.BackendOptions{})
	peer := fmt.Sprintf("address=127.0.0.1:%d", port)
	up1 := startProc(t, bin, "up1", "--tcp-peer", peer)
	up2 := startProc(t, bin, "up2", "--tcp-peer", peer)

	ours.waitRoute("up1", "up1")
	ours.waitRoute("up2", "up2")
	up1.waitRoute("up2", "ours")
	up2.waitRoute("up1", "ours")
	testkit.Eventually(t, convergeTimeout, "up1 knows the whole topology", func() error {
		s, err := up1.Status()
		if err != nil {
			return err
		}
		k := s.KnownConnectionCosts
		if k["up2"]["ours"] == 1 && k["ours"]["up1"] == 1 && k["ours"]["up2"] == 1 {
			return nil
		}
		return fmt.Errorf("known connection costs %v", k)
	})
	t.Log("PASS routing converged on up1, ours and up2")

	upPing(t, up1, "up2")
	upPing(t, up2, "up1")
	upPing(t, up1, "ours")
	upTraceroute(t, up1, "up2", "up1,ours,up2")
	upTraceroute(t, up2, "up1", "up2,ours,up1")
	ourPing(t, ours, "up1")
	ourPing(t, ours, "up2")
	if got := ourTraceroute(t, ours, "up2"); got != "ours,up2" {
		t.Fatalf("our traceroute up2: %s", got)
	}

	// Unplugging the middle node removes the route (docs/protocol.md §5.5).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ours.Shutdown(ctx); err != nil {
		t.Fatalf("shutting down ours: %v", err)
	}
	testkit.Eventually(t, convergeTimeout, "up1 forgets the route to up2", func() error {
		s, err := up1.Status()
		if err != nil {
			return err
		}
		_, ok := s.RoutingTable["up2"]
		if !ok {
			return nil
		}
		return fmt.Errorf("routing table %v", s.RoutingTable)
	})
	t.Log("PASS route via ours disappears after ours stops")
}

// TestRoutingOursUpstreamOurs checks the same with upstream in the
// middle: ours - up1 - ours2, including an expired ping (docs/protocol.md §8.4, §8.3).
func TestRoutingOursUpstreamOurs(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()
	var port int
	up1 := startListening(t, bin, "up1", func() []string {
		port = freeTCPPort(t)
		return []string{"--tcp-listener", "bindaddr=127.0.0.1", fmt.Sprintf("port=%d", port)}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	ours := newOurNode(t, "ours")
	ours.DialTCP(addr, nil, mesh.BackendOptions{})
	ours2 := newOurNode(t, "ours2")
	ours2.DialTCP(addr, nil, mesh.BackendOptions{})

	ours.waitRoute("ours2", "up1")
	ours2.waitRoute("ours", "up1")
	up1.waitRoute("ours", "ours")
	up1.waitRoute("ours2", "ours2")
	t.Log("PASS routing converged on ours, up1 and ours2")

	ourPing(t, ours, "ours2")
	ourPing(t, ours2, "ours")
	ourPing(t, ours, "up1")
	upPing(t, up1, "ours")
	upPing(t, up1, "ours2")
	if got := ourTraceroute(t, ours, "ours2"); got != "ours,up1,ours2" {
		t.Fatalf("our traceroute ours2: got %s, want ours,up1,ours2", got)
	}
	if got := ourTraceroute(t, ours2, "ours"); got != "ours2,up1,ours" {
		t.Fatalf("our traceroute ours: got %s, want ours2,up1,ours", got)
	}
	t.Log("PASS traceroutes across up1 both ways")

	// HopsToLive 1: up1 expires it in transit and reports it.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	r, err := ours.PingHops(ctx, "ours2", 1)
	var ue *mesh.UnreachableError
	if !errors.As(err, &ue) || ue.Problem != mesh.ProblemExpired || r.From != "up1" {
		t.Fatalf("ping ours2 with 1 hop: result %+v, error %v; want %q from up1", r, err, mesh.ProblemExpired)
	}
	t.Logf("PASS ping with HopsToLive 1 expires at up1: %+v", ue.Unreachable)
}
