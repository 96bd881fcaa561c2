package mesh

import (
	"context"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// speaksFirst makes a backend's sessions wait for their peer, like a
// udp-listener's.
type speaksFirst struct{ backends.Backend }

type speaksFirstSession struct{ backends.Session }

func (speaksFirstSession) PeerSpeaksFirst() bool { return true }

func (b speaksFirst) Start(ctx context.Context, accept func(backends.Session)) (func(), error) {
	return b.Backend.Start(ctx, func(s backends.Session) { accept(speaksFirstSession{s}) })
}

// TestPassiveSessionSendsNothingFirst: on a session whose source is not
// verified, the node sends nothing until the peer's first valid routing
// update, then answers with its initial connect message first, and sends
// advertisements only after the peer has listed it.
func TestPassiveSessionSendsNothingFirst(t *testing.T) {
	m := newTestMesh(t)
	// The waits below take 9 initial-connect periods before the peer's
	// first valid message; keep the session's give-up well beyond them
	// (fastOptions' 12 left 150 ms, which a loaded machine used up).
	m.mod = func(o *Options) { o.InitialConnectAttempts = 40 }
	a := m.add("a")
	sock, err := a.ListenPacketAndAdvertise("svc", ServiceAd{Tags: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if err := a.AddBackend(speaksFirst{m.net.Listener("a")}, BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	p := m.rawDial("a", "x")
	// Several initial-connect periods: an active session would have sent
	// some by now.
	if msg, err := p.s.Recv(6 * a.opts.InitialConnectPeriod); err != backends.ErrTimeout {
		t.Fatalf("passive session sent %q (err %v) before the peer spoke", msg, err)
	}
	// Garbage is not a valid first message.
	p.send([]byte{0x01, '{'})
	if msg, err := p.s.Recv(3 * a.opts.InitialConnectPeriod); err != backends.ErrTimeout {
		t.Fatalf("passive session answered garbage with %q (err %v)", msg, err)
	}
	p.sendRoute(map[string]float64{})
	first, err := p.s.Recv(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	u, err := wire.DecodeRoute(first)
	if err != nil || u.NodeID != "a" || u.ForwardingNode != "a" {
		t.Fatalf("first message %q (%v), want a's initial routing update", first, err)
	}
	// Nothing more (no flood, no advertisement) until the peer lists a in
	// its own update, however long it waits (a periodic flood is due every
	// RouteUpdateInterval).
	if msg, err := p.s.Recv(2 * a.opts.RouteUpdateInterval); err != backends.ErrTimeout {
		t.Fatalf("unconfirmed passive session got %q (err %v)", msg, err)
	}
	if c := a.Status().Connections; len(c) != 1 {
		t.Fatalf("connections %+v", c)
	}
	p.sendRoute(map[string]float64{"a": 1})
	p.next(wire.TypeServiceAd)
	// Now confirmed: a lists x in its updates.
	for {
		u, err := wire.DecodeRoute(p.next(wire.TypeRoute))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := u.Connections["x"]; ok && u.NodeID == "a" {
			break
		}
	}
}

// TestPassiveSessionGivesUp: a passive session whose peer never sends a
// valid first message ends after the usual initialization window.
func TestPassiveSessionGivesUp(t *testing.T) {
	m := newTestMesh(t)
	a := m.add("a")
	if err := a.AddBackend(speaksFirst{m.net.Listener("a")}, BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	p := m.rawDial("a", "x")
	start := time.Now()
	if p.waitClosed() {
		t.Fatal("rejected instead of given up")
	}
	window := time.Duration(a.opts.InitialConnectAttempts) * a.opts.InitialConnectPeriod
	if took := time.Since(start); took < window-50*time.Millisecond {
		t.Fatalf("gave up after %v, window %v", took, window)
	}
}
