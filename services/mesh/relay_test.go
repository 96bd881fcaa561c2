package mesh

import (
	"errors"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/wire"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestNewPeerGetsKnownUpdates: a node sends a new peer the latest routing
// update it holds of every other node at once (docs/protocol.md §5.3), so a
// restarted node can route before the far nodes' periodic updates (here
// an hour away) come round. The update is relayed as received: the
// originator's UpdateID, epoch and sequence, from us.
func TestNewPeerGetsKnownUpdates(t *testing.T) {
	m := newTestMesh(t)
	m.mod = func(o *Options) { o.RouteUpdateInterval = time.Hour }
	a, b := m.add("a"), m.add("b")
	m.link("b", "a", 1)
	testkit.Eventually(t, 10*time.Second, "b holds a's update listing b", func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if info := b.known["a"]; info == nil || info.last == nil || b.topo["a"]["b"] != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	a.mu.Lock()
	aEpoch := a.epoch
	a.mu.Unlock()

	p := m.rawDial("b->a", "x")
	start := time.Now()
	p.sendRoute(map[string]float64{})
	for {
		msg := p.next(wire.TypeRoute)
		if msg == nil {
			t.Fatal("b closed the session")
		}
		u, err := wire.DecodeRoute(msg)
		if err != nil {
			t.Fatal(err)
		}
		if u.NodeID != "a" {
			continue
		}
		if u.ForwardingNode != "b" || u.UpdateEpoch != aEpoch || u.Connections["b"] != 1 {
			t.Fatalf("a's update relayed by b: %+v", u)
		}
		b.mu.Lock()
		seen := b.seen.contains(u.UpdateID)
		b.mu.Unlock()
		if !seen {
			t.Errorf("relayed update has UpdateID %q, which b never received", u.UpdateID)
		}
		t.Logf("a's update reached the new peer %v after its first message", time.Since(start))
		return
	}
}
