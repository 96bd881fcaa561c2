package mesh

import (
	"errors"
	"testing"
)

// TestSendToReportsOnlyUnknownNodes: SendTo fails with ErrNoRoute for a node
// no one lists as a neighbour (the stream dialer then fails at once, as
// upstream), but a node in the topology whose route is still being
// recomputed is a silent loss, so a dial in that window retransmits.
func TestSendToReportsOnlyUnknownNodes(t *testing.T) {
	m := newTestMesh(t)
	lone := m.add("lone")
	sock, err := lone.ListenPacket("")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	s := sock.(*Socket)

	// Topology as right after a routing update, before the recompute:
	// "known" is listed by "peer"; "stale" only has its own old entry, with
	// its connections gone.
	lone.mu.Lock()
	lone.topo["peer"] = map[string]float64{"known": 1}
	lone.topo["stale"] = map[string]float64{}
	lone.mu.Unlock()

	tests := []struct {
		node      string
		wantRoute bool // want ErrNoRoute
	}{
		{"ghost", true},
		{"stale", true},
		{"known", false},
		{"peer", true}, // nobody lists it: its own entry does not count
	}
	for _, tt := range tests {
		t.Run(tt.node, func(t *testing.T) {
			n, err := s.SendTo([]byte("x"), Addr{Node: tt.node, Service: "svc"})
			if got := errors.Is(err, ErrNoRoute); got != tt.wantRoute {
				t.Fatalf("SendTo(%s) = %d, %v; ErrNoRoute %v, want %v", tt.node, n, err, got, tt.wantRoute)
			}
			// WriteTo never reports routing failures.
			if _, err := s.WriteTo([]byte("x"), Addr{Node: tt.node, Service: "svc"}); err != nil {
				t.Fatalf("WriteTo(%s) = %v", tt.node, err)
			}
		})
	}
}
