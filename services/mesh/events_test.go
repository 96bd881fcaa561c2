package mesh

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// next returns the next event of kind from sub, skipping others.
func nextEvent(t *testing.T, sub *Subscription, kind EventKind, match func(Event) bool) Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				t.Fatalf("subscription ended waiting for %v: %v", kind, sub.Err())
			}
			if ev.Kind == kind && match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %v event", kind)
		}
	}
}

// TestSubscribeSnapshotThenChanges: a subscriber sees the state it starts
// from, then a node appearing, a link dropping and the route change it
// causes, in that order; link figures move with traffic and the RTT probe
// measures the link.
func TestSubscribeSnapshotThenChanges(t *testing.T) {
	m := newTestMesh(t)
	a, _, _ := m.add("a"), m.add("b"), m.add("c")
	m.link("a", "b", 1)
	m.link("b", "c", 1)
	testkit.Eventually(t, 10*time.Second, "routes", func() error {
		if a.Status().RoutingTable["c"] != "b" {
			return errors.New("no route to c")
		}
		return nil
	})
	snap, sub := a.Subscribe(0)
	defer sub.Close()
	if snap.Status.RoutingTable["c"] != "b" || len(snap.Links) != 1 || !snap.Links[0].Up {
		t.Fatalf("snapshot %+v links %+v", snap.Status, snap.Links)
	}
	m.add("d")
	m.link("c", "d", 1)
	nextEvent(t, sub, EventNodeAppeared, func(e Event) bool { return e.Node == "d" })
	m.add("e")
	m.link("a", "e", 1)
	m.link("e", "c", 2) // dearer than via b until b goes
	nextEvent(t, sub, EventLinkUp, func(e Event) bool { return e.Peer == "e" })
	testkit.Eventually(t, 10*time.Second, "a knows e's link to c", func() error {
		if _, ok := a.Status().KnownConnectionCosts["e"]["c"]; !ok {
			return errors.New("not yet")
		}
		return nil
	})
	m.kill("b")
	nextEvent(t, sub, EventLinkDown, func(e Event) bool { return e.Peer == "b" })
	nextEvent(t, sub, EventRouteChanged, func(e Event) bool { return e.Node == "c" && e.NextHop == "e" && e.OldNextHop == "b" })
	rtt := nextEvent(t, sub, EventLinkRTT, func(e Event) bool { return e.Peer == "e" })
	if rtt.RTT <= 0 {
		t.Errorf("RTT %v", rtt.RTT)
	}
	for _, l := range a.Links() {
		if l.Peer == "b" && (l.Up || l.DownSince.IsZero()) {
			t.Errorf("link to b %+v, want down", l)
		}
		if l.Peer == "e" && (!l.Up || l.BytesIn == 0 || l.MessagesOut == 0 || l.RTT <= 0) {
			t.Errorf("link to e %+v", l)
		}
	}
}

// TestSlowSubscriberDropped: a subscriber that does not read is dropped
// once its buffer is full, and the node goes on working.
func TestSlowSubscriberDropped(t *testing.T) {
	m := newTestMesh(t)
	a, _ := m.add("a"), m.add("b")
	m.link("a", "b", 1)
	_, slow := a.Subscribe(2)
	defer slow.Close()
	_, fast := a.Subscribe(0)
	defer fast.Close()
	for i := range 5 {
		id := fmt.Sprintf("n%d", i)
		m.add(id)
		m.link("b", id, 1)
	}
	testkit.Eventually(t, 10*time.Second, "slow subscriber dropped", func() error {
		if !slow.Dropped() {
			return errors.New("not dropped")
		}
		return nil
	})
	n := 0
	for range slow.C {
		n++
	}
	if n != 2 || !errors.Is(slow.Err(), ErrSlowSubscriber) {
		t.Fatalf("slow subscriber got %d buffered events, err %v", n, slow.Err())
	}
	nextEvent(t, fast, EventNodeAppeared, func(e Event) bool { return e.Node == "n4" })
	// n4 appearing at a does not mean n4 already routes back to a.
	testkit.Eventually(t, 10*time.Second, "ping after dropping a subscriber", func() error {
		_, err := a.Ping(t.Context(), "n4")
		return err
	})
}
