package mesh

import (
	"testing"

	"github.com/receptor-mesh/receptor/services/mesh/backends/memory"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// FuzzSessionMessage feeds arbitrary messages to an established session:
// nothing a peer sends may panic the node.
func FuzzSessionMessage(f *testing.F) {
	route, _ := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: "x", UpdateID: "u1", UpdateEpoch: 1, UpdateSequence: 1,
		Connections: map[string]float64{"a": 1, "z": 2}, ForwardingNode: "x"})
	other, _ := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: "a", UpdateEpoch: 1 << 62, ForwardingNode: "x", SuspectedDuplicate: 5})
	ad, _ := wire.EncodeAd(&wire.Advertisement{NodeID: "x", Service: "s", Cancel: true})
	data, _ := wire.AppendData(nil, wire.DataHeader{FromNode: wire.HashName("x"), ToNode: wire.HashName("a"), ToService: "ping"}, nil)
	unreach, _ := wire.AppendData(nil, wire.DataHeader{FromNode: wire.HashName("x"), ToNode: wire.HashName("a"), ToService: "unreach"}, []byte(`{"FromNode":"a"}`))
	for _, seed := range [][]byte{route, other, ad, data, unreach, wire.Reject, {0}, {7, 1}} {
		f.Add(seed)
	}
	n, err := New(fastOptions("a"))
	if err != nil {
		f.Fatal(err)
	}
	defer n.Close()
	tr, peer := memory.Pipe(4, "a", "x")
	defer tr.Close()
	defer peer.Close()
	s := &session{n: n, tr: tr, ctrl: make(chan []byte, 4), data: make(chan []byte, 4), stop: make(chan struct{}),
		remote: "x", cost: 1, established: true}
	n.mu.Lock()
	n.sessions["x"] = s
	n.hashOfLocked("x")
	n.mu.Unlock()
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) == 0 {
			return
		}
		_ = s.handle(msg)
		// Keep the queues from filling so every path stays reachable.
		for len(s.ctrl) > 0 {
			<-s.ctrl
		}
		for len(s.data) > 0 {
			<-s.data
		}
	})
}
