package mesh

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/mesh/backends/memory"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
	"github.com/receptor-mesh/receptor/services/testkit"
)

func names(prefix string, k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

func TestTopologiesConverge(t *testing.T) {
	type link struct {
		a, b int
		cost float64
	}
	line := func(k int) (ls []link) {
		for i := 0; i+1 < k; i++ {
			ls = append(ls, link{i, i + 1, 1})
		}
		return ls
	}
	random := func(k int, seed uint64) (ls []link) {
		r := rand.New(rand.NewPCG(seed, 7))
		seen := map[[2]int]bool{}
		for i := 1; i < k; i++ { // spanning tree keeps it connected
			j := r.IntN(i)
			ls = append(ls, link{j, i, float64(1 + r.IntN(3))})
			seen[[2]int{j, i}] = true
		}
		for range k {
			a, b := r.IntN(k), r.IntN(k)
			if a < b && !seen[[2]int{a, b}] {
				seen[[2]int{a, b}] = true
				ls = append(ls, link{a, b, float64(1 + r.IntN(3))})
			}
		}
		return ls
	}
	tests := []struct {
		name  string
		nodes int
		links []link
	}{
		{"line", 6, line(6)},
		{"ring", 6, append(line(6), link{5, 0, 1})},
		{"star", 8, func() (ls []link) {
			for i := 1; i < 8; i++ {
				ls = append(ls, link{0, i, 1})
			}
			return ls
		}()},
		{"weighted triangle", 3, []link{{0, 1, 1}, {1, 2, 1}, {0, 2, 5}}},
		{"random 20", 20, random(20, 1)},
		{"random 50", 50, random(50, 2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMesh(t)
			if tt.nodes > 20 {
				// 50 nodes each flooding every 500 ms keep a -race
				// build on a loaded machine too busy to converge;
				// changes still flood at once, so this only thins the
				// periodic refreshes.
				m.mod = func(o *Options) { o.RouteUpdateInterval = 2 * time.Second }
			}
			ids := names("n", tt.nodes)
			for _, id := range ids {
				m.add(id)
			}
			for _, l := range tt.links {
				m.link(ids[l.a], ids[l.b], l.cost)
			}
			m.waitConverged()
			pingEventually(t, m.nodes[ids[0]], ids[len(ids)-1])
		})
	}
}

func TestPingAndTraceroute(t *testing.T) {
	m := newTestMesh(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		m.add(id)
	}
	m.link("a", "b", 1)
	m.link("b", "c", 1)
	m.link("c", "d", 1)
	m.waitConverged()
	a := m.nodes["a"]
	ctx := context.Background()

	if res, err := a.Ping(ctx, "localhost"); err != nil || res.From != "a" {
		t.Fatalf("ping self: %+v %v", res, err)
	}
	// Hops 1 reaches b with 0, which b expires for the two-hop target c.
	res, err := a.PingHops(ctx, "c", 1)
	var ue *UnreachableError
	if !errors.As(err, &ue) || ue.Problem != ProblemExpired || res.From != "b" || err.Error() != "message expired" {
		t.Fatalf("ping c with 1 hop: %+v %v", res, err)
	}
	// A destination accepts any HopsToLive, including the 0 it arrives with.
	if res, err := a.PingHops(ctx, "c", 2); err != nil || res.From != "c" {
		t.Fatalf("ping c with 2 hops: %+v %v", res, err)
	}
	var hops []TracerouteHop
	for h := range a.Traceroute(ctx, "d") {
		hops = append(hops, h)
	}
	want := []string{"a", "b", "c", "d"}
	if len(hops) != len(want) {
		t.Fatalf("traceroute: %+v", hops)
	}
	for i, h := range hops {
		if h.Hop != i || h.From != want[i] || h.Err != nil {
			t.Fatalf("hop %d: %+v", i, h)
		}
	}
	// Unknown node: no route fails at once with upstream's text, attributed
	// to the local node (no 10 s timeout).
	m2 := newTestMesh(t)
	lone := m2.add("lone")
	if res, err := lone.Ping(ctx, "nobody"); !errors.Is(err, ErrNoRoute) || err.Error() != "no route to node" || res.From != "lone" {
		t.Fatalf("ping nobody: %+v %v", res, err)
	}
	var trace []TracerouteHop
	for h := range lone.Traceroute(ctx, "nobody") {
		trace = append(trace, h)
	}
	// Hop 0 expires at the origin itself; hop 1 has no route.
	if len(trace) != 2 || trace[0].From != "lone" || trace[0].Err != nil ||
		trace[1].Hop != 1 || trace[1].From != "lone" || !errors.Is(trace[1].Err, ErrNoRoute) {
		t.Fatalf("traceroute nobody: %+v", trace)
	}
}

func TestDatagramsAcrossHops(t *testing.T) {
	m := newTestMesh(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		m.add(id)
	}
	m.link("a", "b", 1)
	m.link("b", "c", 1)
	m.link("c", "d", 1)
	m.waitConverged()
	srv, err := m.nodes["d"].ListenPacket("echo")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := m.nodes["a"].ListenPacket("")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.WriteTo([]byte("hello"), Addr{Node: "d", Service: "echo"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, from, err := srv.ReadFrom(buf)
	if err != nil || string(buf[:k]) != "hello" || from.String() != "a:"+cli.LocalAddr().(Addr).Service {
		t.Fatalf("ReadFrom = %q %v %v", buf[:k], from, err)
	}
	if _, err := srv.WriteTo([]byte("back"), from); err != nil {
		t.Fatal(err)
	}
	cli.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, from, err = cli.ReadFrom(buf)
	if err != nil || string(buf[:k]) != "back" || from != (Addr{Node: "d", Service: "echo"}) {
		t.Fatalf("reply = %q %v %v", buf[:k], from, err)
	}
	// Deadline in the past times out.
	cli.SetReadDeadline(time.Now().Add(-time.Second))
	if _, _, err := cli.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
	// An unbound service on d reports service unknown from d.
	if _, err := cli.WriteTo([]byte("x"), Addr{Node: "d", Service: "nosvc"}); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-cli.Unreachable():
		want := Unreachable{ReportedBy: "d", FromNode: "a", ToNode: "d", FromService: cli.LocalAddr().(Addr).Service,
			ToService: "nosvc", Problem: ProblemServiceUnknown}
		if u != want {
			t.Fatalf("unreachable = %+v, want %+v", u, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no unreachable notification")
	}
}

func TestSocketErrors(t *testing.T) {
	m := newTestMesh(t)
	n := m.add("a")
	tests := []struct {
		service string
		want    error
	}{
		{"ping", ErrServiceReserved},
		{"unreach", ErrServiceReserved},
		{"123456789", ErrServiceName},
	}
	for _, tt := range tests {
		if _, err := n.ListenPacket(tt.service); !errors.Is(err, tt.want) {
			t.Errorf("ListenPacket(%q) = %v, want %v", tt.service, err, tt.want)
		}
	}
	s, err := n.ListenPacket("svc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.ListenPacket("svc"); !errors.Is(err, ErrServiceTaken) {
		t.Fatalf("double bind: %v", err)
	}
	if _, err := s.WriteTo(make([]byte, wire.MaxDataPayload+1), Addr{Node: "a", Service: "svc"}); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("large write: %v", err)
	}
	if _, err := s.WriteTo(nil, Addr{Node: "a", Service: "123456789"}); !errors.Is(err, ErrServiceName) {
		t.Fatalf("long service write: %v", err)
	}
	// Local send to an unbound local service: notification, nothing on the wire.
	if _, err := s.WriteTo(nil, Addr{Node: "localhost", Service: "none"}); err != nil {
		t.Fatal(err)
	}
	if u := <-s.Unreachable(); u.Problem != ProblemServiceUnknown || u.ReportedBy != "a" {
		t.Fatalf("local unreachable: %+v", u)
	}
	s.Close()
	if _, _, err := s.ReadFrom(nil); !errors.Is(err, ErrSocketClosed) {
		t.Fatalf("read closed: %v", err)
	}
	if _, ok := <-s.Unreachable(); ok {
		t.Fatal("unreachable channel not closed")
	}
	if _, err := n.ListenPacket("svc"); err != nil {
		t.Fatalf("rebind after close: %v", err)
	}
}

func TestKillMiddleReroutesAndRestartRejoins(t *testing.T) {
	m := newTestMesh(t)
	for _, id := range []string{"a", "b", "c", "d"} {
		m.add(id)
	}
	// Square: a-b-d cheap, a-c-d expensive.
	m.link("a", "b", 1)
	m.link("b", "d", 1)
	m.link("a", "c", 2)
	m.link("c", "d", 2)
	m.waitConverged()
	if hop := m.nodes["a"].Status().RoutingTable["d"]; hop != "b" {
		t.Fatalf("a routes d via %q", hop)
	}
	m.kill("b")
	m.waitConverged()
	if hop := m.nodes["a"].Status().RoutingTable["d"]; hop != "c" {
		t.Fatalf("after kill a routes d via %q", hop)
	}
	if _, err := m.nodes["a"].Ping(context.Background(), "d"); err != nil {
		t.Fatal(err)
	}
	// Restart b with the same ID and backends: dialers redial it.
	b := m.add("b")
	if err := b.AddBackend(m.net.Listener("b->d"), BackendOptions{Cost: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddBackend(m.net.Dialer("a->b", memory.DialerOptions{Backoff: 10 * time.Millisecond}), BackendOptions{Cost: 1}); err != nil {
		t.Fatal(err)
	}
	m.links[[2]string{"a", "b"}], m.links[[2]string{"b", "d"}] = 1, 1
	m.waitConverged()
	if hop := m.nodes["a"].Status().RoutingTable["d"]; hop != "b" {
		t.Fatalf("after restart a routes d via %q", hop)
	}
}

func TestDuplicateNodeIDDirectRejected(t *testing.T) {
	m := newTestMesh(t)
	a := m.add("a")
	if err := a.AddBackend(m.net.Listener("a"), BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	p := m.rawDial("a", "a")
	p.next(wire.TypeRoute)
	p.sendRoute(map[string]float64{})
	if !p.waitClosed() {
		t.Fatal("no reject for our own node ID")
	}
	// Second session from an already-connected node is rejected; the first stays.
	p1 := m.rawDial("a", "x")
	p1.next(wire.TypeRoute)
	p1.sendRoute(map[string]float64{})
	testkit.Eventually(t, 10*time.Second, "condition", func() error {
		if len(a.Status().Connections) == 1 {
			return nil
		}
		return errors.New("x not connected")
	})
	p2 := m.rawDial("a", "x")
	p2.next(wire.TypeRoute)
	p2.sendRoute(map[string]float64{})
	if !p2.waitClosed() {
		t.Fatal("no reject for second session")
	}
	if c := a.Status().Connections; len(c) != 1 || c[0].NodeID != "x" {
		t.Fatalf("connections %+v", c)
	}
}

func TestDuplicateNodeIDAcrossMeshLaterLoses(t *testing.T) {
	m := newTestMesh(t)
	a1 := m.add("a")
	m.add("b")
	m.add("c")
	m.link("a", "b", 1)
	m.link("b", "c", 1)
	m.waitConverged()
	// A second "a" starts later (larger epoch) behind c.
	// freshEpoch hands out increasing epochs within a process, so a2 is newer.
	a2, err := New(fastOptions("a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if a2.Epoch() <= a1.Epoch() {
		t.Fatalf("second node's epoch %d is not newer than the first's %d", a2.Epoch(), a1.Epoch())
	}
	if err := a2.AddBackend(m.net.Dialer("c-listen", memory.DialerOptions{}), BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := m.nodes["c"].AddBackend(m.net.Listener("c-listen"), BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a2.Done():
		if !errors.Is(a2.Err(), ErrDuplicateNodeID) {
			t.Fatalf("a2 stopped with %v", a2.Err())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("later duplicate did not shut down")
	}
	if a1.Err() != nil {
		t.Fatalf("earlier node stopped: %v", a1.Err())
	}
	// Routes settle once the duplicate's session is gone.
	pingEventually(t, a1, "c")
}

func TestFirewall(t *testing.T) {
	tests := []struct {
		name    string
		rules   []map[string]string
		wantErr string
	}{
		{"accept", []map[string]string{{"action": "accept", "fromnode": "/a|c/"}, {"action": "drop"}}, ""},
		{"reject", []map[string]string{{"action": "reject", "tonode": "c", "toservice": "ping"}}, ProblemBlockedByFirewall},
		{"drop", []map[string]string{{"action": "drop", "fromnode": "/a|c/"}}, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMesh(t)
			m.mod = func(o *Options) {
				o.PingTimeout = 300 * time.Millisecond
				if o.NodeID == "b" {
					o.FirewallRules = tt.rules
				}
			}
			for _, id := range []string{"a", "b", "c"} {
				m.add(id)
			}
			m.link("a", "b", 1)
			m.link("b", "c", 1)
			m.waitConverged()
			res, err := m.nodes["a"].Ping(context.Background(), "c")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("ping: %+v %v, want %q", res, err, tt.wantErr)
			}
			if tt.wantErr == ProblemBlockedByFirewall && res.From != "b" {
				t.Fatalf("reported by %q", res.From)
			}
		})
	}
	if _, err := New(Options{NodeID: "x", FirewallRules: []map[string]string{{"action": "nope"}}}); err == nil {
		t.Fatal("bad rules accepted")
	}
}

func TestAllowedPeersAndBindToCertificate(t *testing.T) {
	tests := []struct {
		name       string
		opts       BackendOptions
		peerIDs    []string // reported by the session; nil = not implemented
		peer       string
		wantReject bool
	}{
		{"allowed", BackendOptions{AllowedPeers: []string{"x"}}, nil, "x", false},
		{"not allowed", BackendOptions{AllowedPeers: []string{"y"}}, nil, "x", true},
		{"bound ok", BackendOptions{BindPeerToCertificate: true}, []string{"w", "x"}, "x", false},
		{"bound mismatch", BackendOptions{BindPeerToCertificate: true}, []string{"y"}, "x", true},
		{"bound without identity", BackendOptions{BindPeerToCertificate: true}, nil, "x", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMesh(t)
			a := m.add("a")
			var b backends.Backend = m.net.Listener("a")
			if tt.peerIDs != nil {
				b = identityBackend{Backend: b, ids: tt.peerIDs}
			}
			if err := a.AddBackend(b, tt.opts); err != nil {
				t.Fatal(err)
			}
			p := m.rawDial("a", tt.peer)
			p.next(wire.TypeRoute)
			p.sendRoute(map[string]float64{})
			if tt.wantReject {
				if !p.waitClosed() {
					t.Fatal("closed without reject")
				}
				return
			}
			testkit.Eventually(t, 10*time.Second, "condition", func() error {
				if len(a.Status().Connections) == 1 {
					return nil
				}
				return errors.New("not established")
			})
			// A later update claiming another ForwardingNode is rejected.
			msg, _ := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: "x", UpdateID: "u", UpdateEpoch: 1, UpdateSequence: 9,
				ForwardingNode: "impostor"})
			p.send(msg)
			if !p.waitClosed() {
				t.Fatal("ForwardingNode change not rejected")
			}
		})
	}
}

type identityBackend struct {
	backends.Backend
	ids []string
}

type identitySession struct {
	backends.Session
	ids []string
}

func (s identitySession) PeerNodeIDs() []string { return s.ids }

func (b identityBackend) Start(ctx context.Context, accept func(backends.Session)) (func(), error) {
	return b.Backend.Start(ctx, func(s backends.Session) { accept(identitySession{s, b.ids}) })
}

func TestSessionProtocol(t *testing.T) {
	m := newTestMesh(t)
	a := m.add("a")
	if err := a.AddBackend(m.net.Listener("a"), BackendOptions{Cost: 2}); err != nil {
		t.Fatal(err)
	}
	p := m.rawDial("a", "x")
	first, err := wire.DecodeRoute(p.next(wire.TypeRoute))
	if err != nil {
		t.Fatal(err)
	}
	if first.NodeID != "a" || first.ForwardingNode != "a" || len(first.Connections) != 0 || first.Connections == nil ||
		first.UpdateEpoch != a.Epoch() || first.SuspectedDuplicate != 0 || len(first.UpdateID) != 8 {
		t.Fatalf("initial message %+v", first)
	}
	p.sendRoute(map[string]float64{})
	// Once established, a's updates list x with the session cost.
	for {
		u, err := wire.DecodeRoute(p.next(wire.TypeRoute))
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := u.Connections["x"]; ok {
			if c != 2 || u.UpdateSequence <= first.UpdateSequence {
				t.Fatalf("update %+v", u)
			}
			break
		}
	}
	// A ping to a is answered from service ping with an empty payload and
	// HopsToLive 29 (the originator decrements).
	ping, _ := wire.AppendData(nil, wire.DataHeader{HopsToLive: 5, FromNode: wire.HashName("x"), ToNode: wire.HashName("a"),
		FromService: "eph", ToService: "ping"}, []byte("ignored"))
	p.sendRoute(map[string]float64{"a": 2}) // keep routing happy: x lists a
	testkit.Eventually(t, 10*time.Second, "condition", func() error {
		if a.Status().RoutingTable["x"] == "x" {
			return nil
		}
		return errors.New("no route to x")
	})
	p.send(ping)
	reply := p.next(wire.TypeData)
	h, payload, err := wire.DecodeData(reply)
	if err != nil {
		t.Fatal(err)
	}
	want := wire.DataHeader{HopsToLive: 29, FromNode: wire.HashName("a"), ToNode: wire.HashName("x"), FromService: "ping", ToService: "eph"}
	if h != want || len(payload) != 0 {
		t.Fatalf("reply %+v %q", h, payload)
	}
	// Cost disagreement: x now claims cost 1 → reject.
	p.sendRoute(map[string]float64{"a": 1})
	if !p.waitClosed() {
		t.Fatal("no reject on cost disagreement")
	}
	testkit.Eventually(t, 10*time.Second, "condition", func() error {
		st := a.Status()
		if len(st.Connections) == 0 && len(st.RoutingTable) == 0 {
			return nil
		}
		return fmt.Errorf("%+v", st)
	})
}

func TestPeerNoLongerListsUs(t *testing.T) {
	m := newTestMesh(t)
	a := m.add("a")
	if err := a.AddBackend(m.net.Listener("a"), BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	p := m.rawDial("a", "x")
	p.next(wire.TypeRoute)
	p.sendRoute(map[string]float64{})
	p.sendRoute(map[string]float64{}) // late initial message: skipped, no reject
	p.sendRoute(map[string]float64{"a": 1})
	testkit.Eventually(t, 10*time.Second, "condition", func() error {
		if a.Status().RoutingTable["x"] == "x" {
			return nil
		}
		return errors.New("not routed")
	})
	p.sendRoute(map[string]float64{})
	if !p.waitClosed() {
		t.Fatal("no reject when the peer stops listing us")
	}
}

func TestInitialConnectGivesUpAndIdleTimeout(t *testing.T) {
	m := newTestMesh(t)
	m.mod = func(o *Options) {
		o.InitialConnectAttempts = 3
		o.InitialConnectPeriod = 10 * time.Millisecond
		o.MaxIdleTimeout = 200 * time.Millisecond
		o.RouteUpdateInterval = time.Hour
	}
	a := m.add("a")
	if err := a.AddBackend(m.net.Listener("a"), BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	p := m.rawDial("a", "x")
	count := 0
	for {
		msg, err := p.s.Recv(10 * time.Second)
		if err != nil {
			break
		}
		if wire.Type(msg[0]) == wire.TypeRoute {
			count++
		}
	}
	if count != 3 {
		t.Fatalf("got %d initial messages before close, want 3", count)
	}
	// Established, then silent: closed after the idle timeout.
	q := m.rawDial("a", "y")
	q.next(wire.TypeRoute)
	q.sendRoute(map[string]float64{})
	if q.waitClosed() {
		t.Fatal("idle close sent a reject")
	}
}

// TestInitialConnectGivesUpAfterLastMessage: the session closes right after
// the last initial message (upstream: the 11th at t ≈ 10 s), not one period
// later, and that last message is still written.
func TestInitialConnectGivesUpAfterLastMessage(t *testing.T) {
	m := newTestMesh(t)
	m.mod = func(o *Options) {
		o.InitialConnectAttempts = 1
		o.InitialConnectPeriod = time.Hour // waiting a period would hang the test
		o.MaxIdleTimeout = time.Hour
		o.RouteUpdateInterval = time.Hour
	}
	a := m.add("a")
	if err := a.AddBackend(m.net.Listener("a"), BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	p := m.rawDial("a", "x")
	var types []wire.Type
	for {
		msg, err := p.s.Recv(10 * time.Second)
		if errors.Is(err, backends.ErrTimeout) {
			t.Fatalf("session still open 10 s after %d message(s) %v", len(types), types)
		}
		if err != nil {
			break
		}
		types = append(types, wire.Type(msg[0]))
	}
	if len(types) != 1 || types[0] != wire.TypeRoute {
		t.Fatalf("got messages %v before close, want one Route", types)
	}
}

func TestGarbageDropsOnlyThatSession(t *testing.T) {
	m := newTestMesh(t)
	for _, id := range []string{"a", "b"} {
		m.add(id)
	}
	m.link("a", "b", 1)
	if err := m.nodes["a"].AddBackend(m.net.Listener("a"), BackendOptions{}); err != nil {
		t.Fatal(err)
	}
	m.waitConverged()
	inputs := [][]byte{
		{}, {9, 9, 9}, []byte("\x01{not json"), []byte("\x02[]"), {0, 1, 2},
		append([]byte{0}, make([]byte, 65534)...), // unknown hashes, max size
		[]byte("\x01{\"UpdateEpoch\":-1}"),
	}
	p := m.rawDial("a", "x")
	p.next(wire.TypeRoute)
	for _, in := range inputs {
		_ = p.s.Send(in) // the memory backend refuses the empty one
	}
	p.sendRoute(map[string]float64{})
	for _, in := range inputs {
		_ = p.s.Send(in)
	}
	q := m.rawDial("a", "y")
	q.send([]byte{3, '[', ']'})
	if q.waitClosed() {
		t.Fatal("node answered a reject with a reject")
	}
	if _, err := m.nodes["b"].Ping(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "condition", func() error {
		c := m.nodes["a"].Status().Connections
		if len(c) == 2 {
			return nil
		}
		return fmt.Errorf("connections %v", c)
	})
}

func TestServiceAdvertisements(t *testing.T) {
	m := newTestMesh(t)
	for _, id := range []string{"a", "b", "c"} {
		m.add(id)
	}
	// Triangle: a cancel must not circulate.
	m.link("a", "b", 1)
	m.link("b", "c", 1)
	m.link("c", "a", 1)
	m.waitConverged()
	ad := ServiceAd{ConnType: ConnTypeStream, Tags: map[string]string{"type": "Control Service"},
		WorkCommands: []WorkCommand{{WorkType: "echo", Secure: true}}}
	s, err := m.nodes["a"].ListenPacketAndAdvertise("control", ad)
	if err != nil {
		t.Fatal(err)
	}
	hasAd := func(n *Node) bool {
		for _, x := range n.Status().Advertisements {
			if x.NodeID == "a" && x.Service == "control" && x.ConnType == ConnTypeStream &&
				x.Tags["type"] == "Control Service" && slices.Equal(x.WorkCommands, ad.WorkCommands) {
				return true
			}
		}
		return false
	}
	for _, id := range []string{"a", "b", "c"} {
		testkit.Eventually(t, 10*time.Second, "condition", func() error {
			if hasAd(m.nodes[id]) {
				return nil
			}
			return errors.New(id + " lacks the ad")
		})
	}
	s.Close()
	for _, id := range []string{"a", "b", "c"} {
		testkit.Eventually(t, 10*time.Second, "condition", func() error {
			if !hasAd(m.nodes[id]) {
				return nil
			}
			return errors.New(id + " still has the ad")
		})
	}
	// A node joining later learns ads at establishment, not after AdInterval.
	m2 := newTestMesh(t)
	m2.mod = func(o *Options) { o.AdInterval = time.Hour }
	x := m2.add("x")
	m2.add("y")
	if _, err := x.ListenPacketAndAdvertise("svc", ServiceAd{}); err != nil {
		t.Fatal(err)
	}
	m2.link("x", "y", 1)
	testkit.Eventually(t, 10*time.Second, "condition", func() error {
		if len(m2.nodes["y"].Status().Advertisements) == 1 {
			return nil
		}
		return errors.New("y has no ad")
	})
}

func TestStoreAdTombstones(t *testing.T) {
	n, err := New(fastOptions("self"))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	ad := func(sec int, cancel bool) *wire.Advertisement {
		return &wire.Advertisement{NodeID: "r", Service: "s", Time: t0.Add(time.Duration(sec) * time.Second), Cancel: cancel}
	}
	steps := []struct {
		name string
		ad   *wire.Advertisement
		want bool
	}{
		{"first ad", ad(1, false), true},
		{"same time", ad(1, false), false},
		{"older", ad(0, false), false},
		{"newer", ad(2, false), true},
		{"cancel", ad(3, true), true},
		{"same cancel again (storm)", ad(3, true), false},
		{"older cancel", ad(2, true), false},
		{"stale ad after cancel", ad(3, false), false},
		{"newer ad revives", ad(4, false), true},
	}
	for _, st := range steps {
		n.mu.Lock()
		got := n.storeAdLocked(st.ad, nil)
		n.mu.Unlock()
		if got != st.want {
			t.Fatalf("%s: accepted=%v, want %v", st.name, got, st.want)
		}
	}
}

func TestOptionsAndBackendValidation(t *testing.T) {
	for _, id := range []string{"", "localhost", "LocalHost"} {
		if _, err := New(Options{NodeID: id}); err == nil {
			t.Errorf("New(%q) accepted", id)
		}
	}
	n, err := New(fastOptions("a"))
	if err != nil {
		t.Fatal(err)
	}
	net := memory.NewNetwork(0)
	for _, o := range []BackendOptions{{Cost: -1}, {NodeCost: map[string]float64{"b": 0}}} {
		if err := n.AddBackend(net.Listener("l"), o); err == nil {
			t.Errorf("AddBackend(%+v) accepted", o)
		}
	}
	n.Close()
	if err := n.AddBackend(net.Listener("l"), BackendOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddBackend after close: %v", err)
	}
	if !errors.Is(n.Err(), ErrClosed) {
		t.Fatalf("Err = %v", n.Err())
	}
}

func TestNodeCost(t *testing.T) {
	m := newTestMesh(t)
	a, b := m.add("a"), m.add("b")
	if err := a.AddBackend(m.net.Listener("a"), BackendOptions{NodeCost: map[string]float64{"b": 2.5}}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddBackend(m.net.Dialer("a", memory.DialerOptions{}), BackendOptions{Cost: 2.5}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "condition", func() error {
		st := a.Status()
		if st.KnownConnectionCosts["b"]["a"] == 2.5 && len(st.Connections) == 1 && st.Connections[0].Cost == 2.5 {
			return nil
		}
		return fmt.Errorf("%+v", st)
	})
}

// pingEventually pings until a reply from target arrives (bounded).
func pingEventually(t *testing.T, from *Node, target string) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, "condition", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		res, err := from.Ping(ctx, target)
		if err == nil && res.From == target {
			return nil
		}
		return fmt.Errorf("ping %s: %+v %v", target, res, err)
	})
}
