package mesh

import (
	"errors"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/wire"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// forgedDupReport is a routing update a hostile neighbour x relays,
// claiming that an earlier node with a's ID saw a with epoch victimEpoch.
func forgedDupReport(t *testing.T, victim string, victimEpoch uint64) []byte {
	t.Helper()
	msg, err := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: victim, UpdateID: wire.RandomName(), UpdateEpoch: 1,
		UpdateSequence: 99, Connections: map[string]float64{}, ForwardingNode: "x", SuspectedDuplicate: victimEpoch})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// establishedRawPeer connects a hand-written peer "x" to a listener of a.
func establishedRawPeer(t *testing.T, m *testMesh, a *Node) *rawPeer {
	t.Helper()
	if err := a.AddBackend(m.net.Listener("a"), BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	p := m.rawDial("a", "x")
	p.next(wire.TypeRoute)
	p.sendRoute(map[string]float64{})
	testkit.Eventually(t, 10*time.Second, "condition", func() error {
		if len(a.Status().Connections) == 1 {
			return nil
		}
		return errors.New("x not connected")
	})
	return p
}

// TestForgedDuplicateReportDoesNotStop: one forged report that we are a
// duplicate makes the node re-announce itself with a larger epoch; it keeps
// running, and its next updates carry the new epoch.
func TestForgedDuplicateReportDoesNotStop(t *testing.T) {
	m := newTestMesh(t)
	a := m.add("a")
	p := establishedRawPeer(t, m, a)
	before := a.Epoch()
	p.send(forgedDupReport(t, "a", before))
	testkit.Eventually(t, 5*time.Second, "condition", func() error {
		if a.Epoch() > before {
			return nil
		}
		return errors.New("epoch unchanged")
	})
	after := a.Epoch()
	// The re-announcement reaches the peer with the new epoch.
	deadline := time.Now().Add(5 * time.Second)
	for {
		u, err := wire.DecodeRoute(p.next(wire.TypeRoute))
		if err != nil {
			t.Fatal(err)
		}
		if u.NodeID == "a" && u.UpdateEpoch == after {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no update with the fresh epoch")
		}
	}
	// Well past the persistence window, the node still runs.
	time.Sleep(time.Duration(dupPersistIntervals+1) * a.opts.RouteUpdateInterval)
	if err := a.Err(); err != nil {
		t.Fatalf("node stopped after one forged report: %v", err)
	}
	// A report naming the old epoch is stale: nothing changes.
	p.send(forgedDupReport(t, "a", before))
	time.Sleep(100 * time.Millisecond)
	if a.Epoch() != after || a.Err() != nil {
		t.Fatalf("stale report: epoch %d (want %d), err %v", a.Epoch(), after, a.Err())
	}
	// The suspicion expired: another single report re-announces again.
	p.send(forgedDupReport(t, "a", after))
	testkit.Eventually(t, 5*time.Second, "condition", func() error {
		if a.Epoch() > after {
			return nil
		}
		return errors.New("second report: epoch unchanged")
	})
	if err := a.Err(); err != nil {
		t.Fatalf("node stopped: %v", err)
	}
}

// TestPersistentDuplicateReportsStop: reports that keep naming the node's
// current epoch for the whole persistence window stop it, as a real earlier
// duplicate would.
func TestPersistentDuplicateReportsStop(t *testing.T) {
	m := newTestMesh(t)
	a := m.add("a")
	p := establishedRawPeer(t, m, a)
	start := time.Now()
	window := dupPersistIntervals * a.opts.RouteUpdateInterval
	for a.Err() == nil && time.Since(start) < 4*window {
		p.send(forgedDupReport(t, "a", a.Epoch()))
		time.Sleep(a.opts.RouteUpdateInterval / 4)
	}
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("node still running under persistent duplicate reports")
	}
	if !errors.Is(a.Err(), ErrDuplicateNodeID) {
		t.Fatalf("stopped with %v", a.Err())
	}
	if took := time.Since(start); took < window {
		t.Fatalf("stopped after %v, before the %v persistence window", took, window)
	}
}
