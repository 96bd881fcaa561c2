package mesh

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// hostileSetup is a node with two established fake sessions: x, on which
// the test feeds messages, and y, whose control queue shows what the node
// floods on.
func hostileSetup(t *testing.T, mod func(*Options)) (n *Node, x, y *session) {
	t.Helper()
	o := fastOptions("a")
	// No periodic floods of our own in y's queue during the test.
	o.RouteUpdateInterval = time.Hour
	if mod != nil {
		mod(&o)
	}
	n, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	x = &session{n: n, remote: "x", established: true, cost: 1, ctrl: make(chan []byte, ctrlQueueLen)}
	y = &session{n: n, remote: "y", established: true, cost: 1, ctrl: make(chan []byte, ctrlQueueLen)}
	n.mu.Lock()
	n.sessions["x"], n.sessions["y"] = x, y
	n.mu.Unlock()
	return n, x, y
}

// flooded drains s's control queue and reports whether a message
// containing marker was in it.
func flooded(s *session, marker string) bool {
	found := false
	for {
		select {
		case m := <-s.ctrl:
			s.ctrlBytes.Add(-int64(len(m)))
			if bytes.Contains(m, []byte(marker)) {
				found = true
			}
		default:
			return found
		}
	}
}

func encodeAd(t *testing.T, a *wire.Advertisement) []byte {
	t.Helper()
	msg, err := wire.EncodeAd(a)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func (n *Node) hasAd(node, service string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.ads[adKey{node, service}]
	return ok
}

// TestOversizedMessagesRefused: routing updates and advertisements that no
// TCP frame could carry (only a websocket delivers them) are neither stored
// nor flooded on; the session stays up.
func TestOversizedMessagesRefused(t *testing.T) {
	n, x, y := hostileSetup(t, nil)
	big := strings.Repeat("A", 70000)
	// Our encoder refuses to build it; a hostile peer writes it by hand.
	ad := []byte("\x02" + `{"NodeID":"evil","Service":"huge","Time":"` + time.Now().Format(time.RFC3339Nano) +
		`","ConnType":0,"Tags":{"pad":"` + big + `"},"WorkCommands":null,"Cancel":false}`)
	if len(ad) <= maxFloodedMessage {
		t.Fatalf("test ad only %d bytes", len(ad))
	}
	if err := x.handle(ad); err != nil {
		t.Fatalf("session ended on an oversized ad: %v", err)
	}
	if n.hasAd("evil", "huge") || flooded(y, "huge") {
		t.Fatal("oversized ad stored or flooded")
	}
	conns := map[string]float64{}
	for i := range 4000 {
		conns[fmt.Sprintf("neighbour-%06d", i)] = 1
	}
	var list strings.Builder
	for k := range conns {
		fmt.Fprintf(&list, `"%s":1,`, k)
	}
	route := []byte("\x01" + `{"NodeID":"bigroute","UpdateID":"u0000001","UpdateEpoch":1,"UpdateSequence":1,"Connections":{` +
		list.String() + `"x":1},"ForwardingNode":"x","SuspectedDuplicate":0}`)
	if len(route) <= maxFloodedMessage {
		t.Fatalf("test route only %d bytes", len(route))
	}
	if err := x.handle(route); err != nil {
		t.Fatalf("session ended on an oversized route: %v", err)
	}
	n.mu.Lock()
	_, known := n.known["bigroute"]
	n.mu.Unlock()
	if known || flooded(y, "bigroute") {
		t.Fatal("oversized routing update stored or flooded")
	}
	// A normal ad still passes.
	small := encodeAd(t, &wire.Advertisement{NodeID: "evil", Service: "small", Time: time.Now()})
	if err := x.handle(small); err != nil {
		t.Fatal(err)
	}
	if !n.hasAd("evil", "small") || !flooded(y, "small") {
		t.Fatal("normal ad not stored and flooded")
	}
}

// TestFarFutureAdRefused: an ad dated far ahead would pin its service (no
// later ad or cancel is newer); it is refused, and the real ad still
// updates the entry.
func TestFarFutureAdRefused(t *testing.T) {
	n, x, y := hostileSetup(t, nil)
	future := encodeAd(t, &wire.Advertisement{NodeID: "b", Service: "svc", Time: time.Now().Add(24 * 365 * time.Hour),
		Tags: map[string]string{"who": "forger"}})
	if err := x.handle(future); err != nil {
		t.Fatal(err)
	}
	if n.hasAd("b", "svc") || flooded(y, "forger") {
		t.Fatal("far-future ad stored or flooded")
	}
	near := encodeAd(t, &wire.Advertisement{NodeID: "b", Service: "svc", Time: time.Now().Add(time.Minute),
		Tags: map[string]string{"who": "skewed"}})
	if err := x.handle(near); err != nil {
		t.Fatal(err)
	}
	if !n.hasAd("b", "svc") || !flooded(y, "skewed") {
		t.Fatal("ad within the allowed clock skew refused")
	}
}

// TestSeenSetBounded: the UpdateID set keeps a fixed cost per entry
// whatever the IDs' length, stays within its byte budget, and forgets the
// oldest entries to make room instead of refusing new ones.
func TestSeenSetBounded(t *testing.T) {
	s := newSeenSet(100 * seenEntryBytes)
	now := time.Now()
	long := strings.Repeat("x", 10000)
	for i := range 1000 {
		s.add(fmt.Sprintf("%s-%d", long, i), now.Add(time.Duration(i)))
	}
	if s.len() != 100 || s.count != 100 || len(s.ring) != 100 {
		t.Fatalf("set holds %d (ring %d of %d), want 100", s.len(), s.count, len(s.ring))
	}
	if s.contains(long+"-0") || !s.contains(long+"-999") || !s.contains(long+"-900") || s.contains(long+"-899") {
		t.Fatal("eviction is not oldest-first")
	}
	if s.evicted != 900 {
		t.Fatalf("evicted %d", s.evicted)
	}
	s.expire(now.Add(950))
	if s.len() != 50 || s.contains(long+"-949") || !s.contains(long+"-950") {
		t.Fatalf("expire left %d", s.len())
	}
	s.expire(now.Add(time.Hour))
	if s.len() != 0 || s.count != 0 {
		t.Fatalf("expire all left %d (ring %d)", s.len(), s.count)
	}
	s.add("again", now)
	if !s.contains("again") || s.len() != 1 {
		t.Fatal("add after expiring all")
	}
}

// TestSeenSetFullDoesNotFreezeRouting: with the UpdateID set full of an
// attacker's IDs, new routing updates are still processed and flooded.
func TestSeenSetFullDoesNotFreezeRouting(t *testing.T) {
	n, x, y := hostileSetup(t, func(o *Options) { o.MaxSeenUpdateBytes = 64 * seenEntryBytes })
	send := func(node, id string, seq uint64) {
		t.Helper()
		msg, err := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: node, UpdateID: id, UpdateEpoch: 1,
			UpdateSequence: seq, Connections: map[string]float64{"x": 1}, ForwardingNode: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.handle(msg); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5000 {
		send("flooder", fmt.Sprintf("%08d%s", i, strings.Repeat("z", 200)), uint64(i+1))
	}
	flooded(y, "")
	n.mu.Lock()
	size := n.seen.len()
	n.mu.Unlock()
	if size > 64 {
		t.Fatalf("seen set holds %d entries, budget 64", size)
	}
	send("honest", "honest01", 1)
	if !flooded(y, "honest01") {
		t.Fatal("a new update was not flooded with the seen set full")
	}
	n.mu.Lock()
	info := n.known["honest"]
	n.mu.Unlock()
	if info == nil || info.sequence != 1 {
		t.Fatal("a new update was not stored with the seen set full")
	}
}

// TestRoutingStateBudget: connection lists and names a peer makes us keep
// stay within MaxRoutingStateBytes; updates beyond it are refused (not
// flooded), and the running count matches a recount.
func TestRoutingStateBudget(t *testing.T) {
	const limit = 200 << 10
	n, x, y := hostileSetup(t, func(o *Options) { o.MaxRoutingStateBytes = limit })
	refused := 0
	for i := range 200 {
		conns := map[string]float64{"x": 1}
		for j := range 100 {
			conns[fmt.Sprintf("n%03d-peer-with-a-long-name-%03d", i, j)] = 1
		}
		node := fmt.Sprintf("node%03d", i)
		msg, err := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: node, UpdateID: fmt.Sprintf("u%07d", i), UpdateEpoch: 1,
			UpdateSequence: 1, Connections: conns, ForwardingNode: "x"})
		if err != nil {
			t.Fatal(err)
		}
		if err := x.handle(msg); err != nil {
			t.Fatal(err)
		}
		if !flooded(y, node) {
			refused++
		}
	}
	n.mu.Lock()
	got, recount := n.routeBytes, n.routingStateBytes()
	n.mu.Unlock()
	if got != recount {
		t.Fatalf("running count %d, recount %d", got, recount)
	}
	if got > limit {
		t.Fatalf("routing state %d bytes, limit %d", got, limit)
	}
	if refused == 0 {
		t.Fatal("nothing refused: the test does not reach the budget")
	}
	// A node shrinking its list frees budget: the count follows.
	msg, _ := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: "node000", UpdateID: "shrink01", UpdateEpoch: 1,
		UpdateSequence: 2, Connections: map[string]float64{"x": 1}, ForwardingNode: "x"})
	if err := x.handle(msg); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	after, recount := n.routeBytes, n.routingStateBytes()
	n.mu.Unlock()
	if after != recount || after >= got {
		t.Fatalf("after shrinking: count %d, recount %d, before %d", after, recount, got)
	}
	t.Logf("routing state %d bytes (limit %d), %d of 200 updates refused", got, limit, refused)
}

// TestAdvertisementBudget: stored ads stay within MaxAdvertisementBytes.
func TestAdvertisementBudget(t *testing.T) {
	const limit = 256 << 10
	n, x, y := hostileSetup(t, func(o *Options) { o.MaxAdvertisementBytes = limit })
	pad := strings.Repeat("p", 10000)
	for i := range 100 {
		ad := encodeAd(t, &wire.Advertisement{NodeID: fmt.Sprintf("n%d", i), Service: "s", Time: time.Now(),
			Tags: map[string]string{"pad": pad}})
		if err := x.handle(ad); err != nil {
			t.Fatal(err)
		}
	}
	flooded(y, "")
	n.mu.Lock()
	used, stored := n.adBytes, len(n.ads)
	n.mu.Unlock()
	if used > limit || stored == 0 || stored == 100 {
		t.Fatalf("ads: %d bytes (limit %d), %d of 100 stored", used, limit, stored)
	}
	// A cancel of a stored ad frees its bytes for a tombstone.
	cancel := encodeAd(t, &wire.Advertisement{NodeID: "n0", Service: "s", Time: time.Now().Add(time.Second), Cancel: true})
	if err := x.handle(cancel); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	after := n.adBytes
	n.mu.Unlock()
	if after >= used {
		t.Fatalf("cancel did not free bytes: %d -> %d", used, after)
	}
}
