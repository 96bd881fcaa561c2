package mesh

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/routing"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// TestSeenRelayedUpdate: only updates the full path would drop unchanged
// skip decoding; anything a docs/protocol.md §5.4 check applies to, or not yet seen, is
// decoded.
func TestSeenRelayedUpdate(t *testing.T) {
	n, err := New(fastOptions("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	n.mu.Lock()
	n.seen.add("seen0001", time.Now())
	n.mu.Unlock()
	s := &session{n: n, remote: "x", established: true}
	route := func(node, id, fwd string) []byte {
		msg, err := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: node, UpdateID: id, UpdateEpoch: 1, UpdateSequence: 1,
			Connections: map[string]float64{"x": 1}, ForwardingNode: fwd})
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	cases := []struct {
		name string
		msg  []byte
		want bool
	}{
		{"seen, about a third node, relayed by the peer", route("z", "seen0001", "x"), true},
		{"not seen yet", route("z", "new00001", "x"), false},
		{"forwarding node is not the peer (reject path)", route("z", "seen0001", "y"), false},
		{"the peer's own update (cost checks)", route("x", "seen0001", "x"), false},
		{"our own update", route("a", "seen0001", "x"), false},
		{"ambiguous encoding", append(route("z", "seen0001", "x")[:1], `{"NodeID":"z","nodeid":"q","UpdateID":"seen0001","ForwardingNode":"x"}`...), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := n.seenRelayedUpdate(tc.msg, s); got != tc.want {
				t.Fatalf("seenRelayedUpdate = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestTopologyReverseIndex: routing updates that grow, shrink and reshuffle
// connection lists leave the topology exactly as a pass over every known
// node would (each update drops the edges towards its sender that its new
// list no longer confirms), and n.listedBy the exact reverse of it.
func TestTopologyReverseIndex(t *testing.T) {
	n, x, y := hostileSetup(t, nil)
	r := rand.New(rand.NewPCG(1, 2))
	ids := []string{"a", "x", "y"}
	for i := range 12 {
		ids = append(ids, fmt.Sprintf("m%02d", i))
	}
	n.mu.Lock()
	model := routing.Topology{}
	for from, edges := range n.topo {
		model[from] = maps.Clone(edges)
	}
	n.mu.Unlock()
	seq := map[string]uint64{}
	for step := range 3000 {
		origin := ids[3+r.IntN(len(ids)-3)]
		conns := map[string]float64{}
		for range r.IntN(6) {
			if to := ids[r.IntN(len(ids))]; to != origin {
				conns[to] = float64(1 + r.IntN(3))
			}
		}
		if len(conns) == 0 {
			conns["x"] = 1 // an empty list may decode as none at all
		}
		seq[origin]++
		msg, err := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: origin, UpdateID: fmt.Sprintf("u%06d", step),
			UpdateEpoch: 1, UpdateSequence: seq[origin], Connections: conns, ForwardingNode: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.handle(msg); err != nil {
			t.Fatal(err)
		}
		flooded(y, "")
		// The model: store the list, then drop every other node's edge
		// towards origin that the list does not name (never our own).
		if maps.Equal(model[origin], conns) {
			continue // unchanged: nothing is touched
		}
		model[origin] = maps.Clone(conns)
		for other, edges := range model {
			if _, ok := edges[origin]; ok && other != "a" {
				if _, listed := conns[other]; !listed {
					delete(edges, origin)
				}
			}
		}
		n.mu.Lock()
		for from, want := range model {
			if got := n.topo[from]; !maps.Equal(got, want) && (len(got) != 0 || len(want) != 0) {
				n.mu.Unlock()
				t.Fatalf("step %d: topo[%s] = %v, want %v", step, from, got, want)
			}
		}
		reverse := map[string]map[string]struct{}{}
		for from, edges := range n.topo {
			for to := range edges {
				if reverse[to] == nil {
					reverse[to] = map[string]struct{}{}
				}
				reverse[to][from] = struct{}{}
			}
		}
		if !maps.EqualFunc(reverse, n.listedBy, func(a, b map[string]struct{}) bool { return maps.Equal(a, b) }) {
			n.mu.Unlock()
			t.Fatalf("step %d: listedBy %v, reverse of topo %v", step, n.listedBy, reverse)
		}
		if got, recount := n.routeBytes, n.routingStateBytes(); got != recount {
			n.mu.Unlock()
			t.Fatalf("step %d: running count %d, recount %d", step, got, recount)
		}
		n.mu.Unlock()
	}
}

// TestRecomputeSpacing: a recomputation request runs routeSettle after it
// when the last recomputation is long past; after a recent one it waits
// recomputeSpacing times that one's duration, at least routeSettle and at
// most the request delay.
func TestRecomputeSpacing(t *testing.T) {
	o := fastOptions("a")
	o.RouteRequestDelay = 100 * time.Millisecond
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cases := []struct {
		took time.Duration
		want time.Duration // after the last recomputation
	}{
		{10 * time.Microsecond, routeSettle},            // 50×10 µs is under routeSettle
		{time.Millisecond, 50 * time.Millisecond},       // 50×1 ms
		{10 * time.Millisecond, 100 * time.Millisecond}, // capped at the request delay
	}
	for _, c := range cases {
		n.mu.Lock()
		last := time.Now()
		n.lastRecompute, n.lastRecomputeTook = last, c.took
		n.nextRecompute = last.Add(time.Hour)
		n.requestRecomputeLocked()
		got := n.nextRecompute.Sub(last)
		n.nextRecompute = last.Add(time.Hour) // keep the scheduler from running it
		n.mu.Unlock()
		if got < c.want || got > c.want+routeSettle+50*time.Millisecond {
			t.Errorf("after a %v recomputation: next in %v, want %v", c.took, got, c.want)
		}
	}
	n.mu.Lock()
	n.lastRecompute = time.Now().Add(-time.Second)
	n.nextRecompute = time.Now().Add(time.Hour)
	n.requestRecomputeLocked()
	got := time.Until(n.nextRecompute)
	n.mu.Unlock()
	if got > routeSettle {
		t.Errorf("long after the last recomputation: next in %v, want ≤ %v", got, routeSettle)
	}
}
