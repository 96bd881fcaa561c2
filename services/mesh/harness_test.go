package mesh

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/mesh/backends/memory"
	"github.com/receptor-mesh/receptor/services/mesh/routing"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
	"github.com/receptor-mesh/receptor/services/testkit"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quietLog = slog.New(slog.NewTextHandler(logSink(), &slog.HandlerOptions{Level: slog.LevelInfo}))

func logSink() io.Writer {
	if os.Getenv("MESH_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

// fastOptions shrink the timers so in-process meshes converge quickly.
func fastOptions(id string) Options {
	return Options{
		NodeID: id, Logger: quietLog,
		RouteUpdateInterval: 500 * time.Millisecond, RouteRequestDelay: 2 * time.Millisecond,
		AdInterval: time.Second, AdRequestDelay: 5 * time.Millisecond,
		InitialConnectPeriod: 50 * time.Millisecond, PingTimeout: 5 * time.Second,
		// 12 messages keep a 550 ms handshake window (give-up comes right
		// after the last one); loaded -race runs of 50 nodes need it.
		InitialConnectAttempts: 12,
	}
}

// testMesh builds nodes and links over one memory network.
type testMesh struct {
	tb    testing.TB
	net   *memory.Network
	nodes map[string]*Node
	links map[[2]string]float64 // expected topology
	mod   func(*Options)
}

func newTestMesh(tb testing.TB) *testMesh {
	m := &testMesh{tb: tb, net: memory.NewNetwork(1024), nodes: map[string]*Node{}, links: map[[2]string]float64{}}
	tb.Cleanup(m.closeAll)
	return m
}

func (m *testMesh) closeAll() {
	for _, n := range m.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := n.Shutdown(ctx); err != nil {
			m.tb.Errorf("shutdown %s: %v", n.NodeID(), err)
		}
		cancel()
	}
}

func (m *testMesh) add(id string) *Node {
	m.tb.Helper()
	o := fastOptions(id)
	if m.mod != nil {
		m.mod(&o)
	}
	n, err := New(o)
	if err != nil {
		m.tb.Fatal(err)
	}
	m.nodes[id] = n
	return n
}

// link makes a listen on a per-link name and b dial it, both with cost.
func (m *testMesh) link(a, b string, cost float64) {
	m.tb.Helper()
	name := a + "->" + b
	if err := m.nodes[a].AddBackend(m.net.Listener(name), BackendOptions{Cost: cost}); err != nil {
		m.tb.Fatal(err)
	}
	if err := m.nodes[b].AddBackend(m.net.Dialer(name, memory.DialerOptions{Backoff: 10 * time.Millisecond}),
		BackendOptions{Cost: cost}); err != nil {
		m.tb.Fatal(err)
	}
	m.links[[2]string{a, b}] = cost
}

// kill closes a node and forgets its links.
func (m *testMesh) kill(id string) {
	m.tb.Helper()
	if err := m.nodes[id].Close(); err != nil {
		m.tb.Fatal(err)
	}
	delete(m.nodes, id)
	for l := range m.links {
		if l[0] == id || l[1] == id {
			delete(m.links, l)
		}
	}
}

// expectedTables computes every live node's table from the true topology.
func (m *testMesh) expectedTables() map[string]routing.Table {
	topo := routing.Topology{}
	for id := range m.nodes {
		topo[id] = map[string]float64{}
	}
	for l, c := range m.links {
		if _, ok := m.nodes[l[0]]; !ok {
			continue
		}
		if _, ok := m.nodes[l[1]]; !ok {
			continue
		}
		topo[l[0]][l[1]], topo[l[1]][l[0]] = c, c
	}
	out := map[string]routing.Table{}
	for id := range m.nodes {
		out[id], _ = routing.Compute(id, topo)
	}
	return out
}

// converged reports whether every node's routing table equals the one
// computed from the true topology (deterministic tie-breaking makes this
// exact), or the first that does not.
func (m *testMesh) converged() error {
	want := m.expectedTables()
	for id, n := range m.nodes {
		got := n.Status().RoutingTable
		if !maps.Equal(got, want[id]) {
			return fmt.Errorf("%s: table %v, want %v", id, got, want[id])
		}
	}
	return nil
}

func (m *testMesh) waitConverged() {
	m.tb.Helper()
	testkit.Eventually(m.tb, 20*time.Second, "routing converged", m.converged)
}

// rawPeer is a hand-written peer on a memory session.
type rawPeer struct {
	tb  testing.TB
	s   backends.Session
	id  string
	seq uint64
}

func (m *testMesh) rawDial(listener, id string) *rawPeer {
	m.tb.Helper()
	s, err := m.net.Dial(listener)
	if err != nil {
		m.tb.Fatal(err)
	}
	m.tb.Cleanup(func() { s.Close() })
	return &rawPeer{tb: m.tb, s: s, id: id}
}

func (p *rawPeer) sendRoute(conns map[string]float64) {
	p.tb.Helper()
	p.seq++
	msg, err := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: p.id, UpdateID: wire.RandomName(), UpdateEpoch: 1,
		UpdateSequence: p.seq, Connections: conns, ForwardingNode: p.id})
	if err != nil {
		p.tb.Fatal(err)
	}
	p.send(msg)
}

func (p *rawPeer) send(msg []byte) {
	p.tb.Helper()
	if err := p.s.Send(msg); err != nil {
		p.tb.Fatalf("raw peer send: %v", err)
	}
}

// isLinkProbe reports whether m is a node's RTT probe of its link
// (probe.go).
func isLinkProbe(m []byte) bool {
	h, _, err := wire.DecodeData(m)
	return err == nil && IsLinkProbe(h)
}

// next returns the next message of type t, skipping others and RTT
// probes; nil when the session closed.
func (p *rawPeer) next(t wire.Type) []byte {
	p.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		m, err := p.s.Recv(time.Second)
		if err == backends.ErrTimeout {
			continue
		}
		if err != nil {
			return nil
		}
		if len(m) > 0 && wire.Type(m[0]) == t && !isLinkProbe(m) {
			return m
		}
	}
	p.tb.Fatalf("raw peer: no message of type %d", t)
	return nil
}

// waitClosed drains until the node closes the session, returning whether
// a Reject arrived first.
func (p *rawPeer) waitClosed() (rejected bool) {
	p.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		m, err := p.s.Recv(time.Second)
		if err == backends.ErrTimeout {
			continue
		}
		if err != nil {
			return rejected
		}
		if string(m) == string(wire.Reject) {
			rejected = true
		}
	}
	p.tb.Fatal("raw peer: session not closed")
	return false
}
