package mesh

import (
	"testing"
	"time"

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
