package integration

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// These tests run one hostile mesh peer, written by hand with the wire
// encoder, against real nodes: each attack must be refused and the node
// must keep serving.

// hostilePeer is a hand-written mesh peer on a raw tcp or websocket
// connection. A reader goroutine drains what the node sends and remembers
// the node's current epoch from its own routing updates.
type hostilePeer struct {
	t      *testing.T
	id     string
	victim string
	epoch  uint64

	sendMu sync.Mutex
	write  func(msg []byte) error
	flush  func() error
	close  func()

	closed      chan struct{}
	routes      chan *wire.RoutingUpdate // the victim's routing updates
	victimEpoch atomic.Uint64
	seq         atomic.Uint64
	stopKeep    chan struct{}
	keepWG      sync.WaitGroup
}

func newHostilePeer(t *testing.T, id, victim string, read func() ([]byte, error)) *hostilePeer {
	p := &hostilePeer{t: t, id: id, victim: victim, epoch: wire.NewEpoch(time.Now()),
		closed: make(chan struct{}), routes: make(chan *wire.RoutingUpdate, 1024), stopKeep: make(chan struct{})}
	go func() {
		defer close(p.closed)
		for {
			msg, err := read()
			if err != nil {
				return
			}
			if len(msg) == 0 || wire.Type(msg[0]) != wire.TypeRoute {
				continue
			}
			u, err := wire.DecodeRoute(msg)
			if err != nil || u.NodeID != victim {
				continue
			}
			p.victimEpoch.Store(u.UpdateEpoch)
			select {
			case p.routes <- u:
			default:
			}
		}
	}()
	t.Cleanup(p.shutdown)
	return p
}

// dialHostileTCP connects a hostile peer to a tcp-listener.
func dialHostileTCP(t *testing.T, addr, id, victim string) *hostilePeer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	bw := bufio.NewWriterSize(conn, 256<<10)
	p := newHostilePeer(t, id, victim, func() ([]byte, error) { return backends.ReadFrame(br) })
	var frame []byte
	p.write = func(msg []byte) error {
		frame, err = backends.AppendFrame(frame[:0], msg)
		if err != nil {
			return err
		}
		_, err := bw.Write(frame)
		return err
	}
	p.flush = bw.Flush
	p.close = func() { _ = conn.Close() }
	return p
}

// dialHostileWS connects a hostile peer to a ws-listener.
func dialHostileWS(t *testing.T, url, id, victim string) *hostilePeer {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := newHostilePeer(t, id, victim, func() ([]byte, error) {
		_, msg, err := conn.ReadMessage()
		return msg, err
	})
	p.write = func(msg []byte) error { return conn.WriteMessage(websocket.BinaryMessage, msg) }
	p.flush = func() error { return nil }
	p.close = func() { _ = conn.Close() }
	return p
}

func (p *hostilePeer) shutdown() {
	select {
	case <-p.stopKeep:
	default:
		close(p.stopKeep)
	}
	p.keepWG.Wait()
	p.close()
	<-p.closed
}

// sendRaw writes messages as they are and flushes.
func (p *hostilePeer) sendRaw(msgs ...[]byte) {
	p.t.Helper()
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	for _, m := range msgs {
		if err := p.write(m); err != nil {
			p.t.Fatalf("hostile peer send: %v", err)
		}
	}
	if err := p.flush(); err != nil {
		p.t.Fatalf("hostile peer send: %v", err)
	}
}

func (p *hostilePeer) encodeRoute(u *wire.RoutingUpdate) []byte {
	p.t.Helper()
	u.ForwardingNode = p.id
	if u.UpdateID == "" {
		u.UpdateID = wire.RandomName()
	}
	msg, err := wire.EncodeRoute(u)
	if err != nil {
		p.t.Fatal(err)
	}
	return msg
}

// own sends the peer's own routing update listing conns.
func (p *hostilePeer) own(conns map[string]float64) {
	p.t.Helper()
	p.sendRaw(p.encodeRoute(&wire.RoutingUpdate{NodeID: p.id, UpdateEpoch: p.epoch, UpdateSequence: p.seq.Add(1),
		Connections: conns}))
}

// establish completes the handshake and waits until the victim lists the
// peer as a connection.
func (p *hostilePeer) establish(victim *Node) {
	p.t.Helper()
	select {
	case <-p.routes:
	case <-p.closed:
		p.t.Fatal("victim closed the hostile session before its first message")
	case <-time.After(convergeTimeout):
		p.t.Fatal("no initial routing update from the victim")
	}
	p.own(map[string]float64{})
	p.own(map[string]float64{p.victim: 1})
	victim.WaitStatus("hostile peer "+p.id+" connected", func(s Status) bool { return s.ConnectedTo(p.id) })
}

// keepAlive sends the peer's own update every 5 s so the victim does not
// close the session as idle (21 s).
func (p *hostilePeer) keepAlive() {
	p.keepWG.Go(func() {
		for {
			select {
			case <-p.stopKeep:
				return
			case <-p.closed:
				return
			case <-time.After(5 * time.Second):
			}
			msg := p.encodeRoute(&wire.RoutingUpdate{NodeID: p.id, UpdateEpoch: p.epoch, UpdateSequence: p.seq.Add(1),
				Connections: map[string]float64{p.victim: 1}})
			p.sendMu.Lock()
			err := p.write(msg)
			if err == nil {
				err = p.flush()
			}
			p.sendMu.Unlock()
			if err != nil {
				return
			}
		}
	})
}

func (p *hostilePeer) alive() bool {
	select {
	case <-p.closed:
		return false
	default:
		return true
	}
}

// pid is the node's process ID.
func (n *Node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.proc.Pid()
}

// rssKiB is the node process's resident memory.
func rssKiB(t *testing.T, n *Node) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.pid()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// startVictim starts a node with the given listener entities (YAML items).
func startVictim(t *testing.T, id string, items func(n *Node) []string) *Node {
	t.Helper()
	v := NewNode(t, id)
	v.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, items(n)...) }})
	return v
}

// TestHostileForgedDuplicateReport: a peer forges the report that an
// earlier node with the victim's ID exists (the epoch it needs is in every
// routing update). The victim re-announces itself with a fresh epoch and,
// the report not persisting, keeps running past the three routing
// intervals after which a real duplicate stops.
func TestHostileForgedDuplicateReport(t *testing.T) {
	t.Parallel()
	v := startVictim(t, "victim1", func(n *Node) []string { return []string{asYAML(tcpTransport.listener(n))} })
	p := dialHostileTCP(t, v.Addr("mesh"), "forger1", "victim1")
	p.establish(v)
	p.keepAlive()
	before := p.victimEpoch.Load()
	p.sendRaw(p.encodeRoute(&wire.RoutingUpdate{NodeID: "victim1", UpdateEpoch: before - 1, UpdateSequence: 1,
		Connections: map[string]float64{}, SuspectedDuplicate: before}))
	testkit.Eventually(t, convergeTimeout, "the victim re-announces with a fresh epoch", func() error {
		if p.victimEpoch.Load() > before && v.LogContains("re-announcing with a fresh epoch") {
			return nil
		}
		return errors.New("want p.victimEpoch.Load() > before && v.LogContains(\"re-announcing with a fresh epoch\")")
	})
	// Three routing intervals (10 s each) and some margin.
	time.Sleep(35 * time.Second)
	stillServes(t, v)
	if v.LogContains("stopping the node") {
		t.Fatal("the victim decided to stop after one forged report")
	}
	if !p.alive() {
		t.Fatal("the hostile session was closed")
	}
	t.Logf("epoch %d -> %d after one forged report; node up 35 s later", before, p.victimEpoch.Load())
}

// TestHostileRealDuplicateExits: a real second node with the same ID,
// started later two hops away (dup1 - hub - relay - dup2), stops once the
// earlier node's reports persist, and its process (the all-in-one
// receptor) exits non-zero; the earlier node stays.
func TestHostileRealDuplicateExits(t *testing.T) {
	t.Parallel()
	first := startVictim(t, "dupnode", func(n *Node) []string { return []string{asYAML(tcpTransport.listener(n))} })
	firstReady := time.Now()
	hub, relay := NewNode(t, "hub"), NewNode(t, "relay")
	hub.Start(Spec{Args: func(n *Node) []string {
		return append(nodeArgs(n), append(asArgs(tcpTransport.listener(n)), asArgs(tcpTransport.peer(first))...)...)
	}})
	relay.Start(Spec{Args: func(n *Node) []string {
		return append(nodeArgs(n), append(asArgs(tcpTransport.listener(n)), asArgs(tcpTransport.peer(hub))...)...)
	}})
	relay.WaitRoutes(map[string]string{"dupnode": "hub", "hub": "hub"})
	// Epochs start with the Unix second: start the duplicate in a later one.
	for time.Now().Unix() < firstReady.Unix()+2 {
		time.Sleep(100 * time.Millisecond)
	}
	// The all-in-one binary (router and work agent in one process): its
	// exit status must reflect the router's failure too.
	second := NewNode(t, "dupnode")
	second.Start(Spec{Bin: "receptor", Args: func(n *Node) []string {
		return append(nodeArgs(n), asArgs(tcpTransport.peer(relay))...)
	}})
	bound := 30*time.Second + 2*convergeTimeout
	if !testkit.Poll(bound, func() bool { exited, _ := second.Exited(); return exited }) {
		t.Fatalf("the later duplicate still runs after %v", bound)
	}
	_, err := second.Exited()
	second.Kill() // it ended by itself, as expected: no cleanup complaint
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("the later duplicate exited with %v, want a non-zero status", err)
	}
	if !second.LogContains("mesh node stopped") || !second.LogContains("re-announcing") {
		t.Fatalf("no clear log line for the stop:\n%s", second.logTail())
	}
	stillServes(t, first)
	relay.WaitRoutes(map[string]string{"dupnode": "hub", "hub": "hub"})
	t.Logf("later duplicate exited with status %d; the earlier one serves", exit.ExitCode())
}

// TestHostileAdsOverWebsocket: over a websocket a peer sends an
// advertisement too large for any TCP frame and one dated a year ahead.
// The victim stores and floods neither; its TCP session to a third node
// stays up (relaying the large one there would tear it down), and a normal
// advertisement sent afterwards still reaches the third node.
func TestHostileAdsOverWebsocket(t *testing.T) {
	t.Parallel()
	v := startVictim(t, "victim3", func(n *Node) []string {
		return []string{asYAML(wsTransport.listener(n)),
			entity("tcp-listener", "port", fmt.Sprint(n.Port("tcp")), "bindaddr", "127.0.0.1")}
	})
	third := NewNode(t, "third3")
	third.Start(Spec{Args: func(n *Node) []string {
		return append(nodeArgs(n), "--tcp-peer", "address="+v.Addr("tcp"))
	}})
	third.WaitRoutes(map[string]string{"victim3": "victim3"})
	p := dialHostileWS(t, "ws://"+v.Addr("mesh")+"/mesh", "evil3", "victim3")
	p.establish(v)
	third.WaitRoutes(map[string]string{"victim3": "victim3", "evil3": "victim3"})

	ad := func(service, tags string, at time.Time) []byte {
		return []byte("\x02" + `{"NodeID":"evil3","Service":"` + service + `","Time":"` + at.Format(time.RFC3339Nano) +
			`","ConnType":1,"Tags":` + tags + `,"WorkCommands":null,"Cancel":false}`)
	}
	huge := ad("huge", `{"pad":"`+strings.Repeat("A", 200<<10)+`"}`, time.Now())
	future := ad("future", `{"k":"v"}`, time.Now().AddDate(1, 0, 0))
	fine := ad("fine", `{"k":"v"}`, time.Now())
	p.sendRaw(huge, future, fine)
	hasAd := func(s Status, service string) bool {
		for _, a := range s.Advertisements {
			if a.NodeID == "evil3" && a.Service == service {
				return true
			}
		}
		return false
	}
	// The same session carried the three in order: once "fine" arrived, the
	// others were handled.
	third.WaitStatus("the normal ad reaches the third node", func(s Status) bool { return hasAd(s, "fine") })
	for _, n := range []*Node{v, third} {
		st := n.Status()
		if hasAd(st, "huge") || hasAd(st, "future") {
			t.Fatalf("%s stored a refused advertisement: %+v", n.ID, st.Advertisements)
		}
	}
	if !v.LogContains("refusing an oversized routing update or advertisement") || !v.LogContains("dated in the future") {
		t.Fatal("no refusal logged")
	}
	if !third.Status().ConnectedTo("victim3") || third.LogContains("mesh session ended") {
		t.Fatal("the tcp session between the victim and the third node did not stay up")
	}
	stillServes(t, v)
	if !p.alive() {
		t.Fatal("the hostile websocket was closed")
	}
}

// TestHostileUpdateIDFlood: a peer sends 700 000 routing updates with
// distinct 64-byte UpdateIDs (stale, so none is flooded on). The victim's
// memory of UpdateIDs stays within its byte budget (the oldest entries make
// room) and routing does not freeze: an update from a new node sent after
// the flood is processed.
func TestHostileUpdateIDFlood(t *testing.T) {
	t.Parallel()
	v := startVictim(t, "victim4", func(n *Node) []string { return []string{asYAML(tcpTransport.listener(n))} })
	p := dialHostileTCP(t, v.Addr("mesh"), "flooder4", "victim4")
	p.establish(v)
	p.keepAlive()
	before := rssKiB(t, v)
	const total, batch = 700_000, 5000
	pad := strings.Repeat("u", 56)
	started := time.Now()
	for i := 0; i < total; i += batch {
		msgs := make([][]byte, 0, batch)
		for j := i; j < i+batch; j++ {
			msgs = append(msgs, p.encodeRoute(&wire.RoutingUpdate{NodeID: "stale4", UpdateID: fmt.Sprintf("%08d%s", j, pad),
				UpdateEpoch: 1, UpdateSequence: 1, Connections: map[string]float64{}}))
		}
		p.sendRaw(msgs...)
	}
	p.sendRaw(p.encodeRoute(&wire.RoutingUpdate{NodeID: "late4", UpdateEpoch: 1, UpdateSequence: 1,
		Connections: map[string]float64{"flooder4": 1}}))
	v.WaitStatus("an update sent after the flood is processed", func(s Status) bool {
		_, ok := s.KnownConnectionCosts["late4"]
		return ok
	})
	took := time.Since(started)
	after := rssKiB(t, v)
	stillServes(t, v)
	if !p.alive() {
		t.Fatal("the flooding session was closed")
	}
	// An 8 MiB budget of UpdateIDs plus the garbage collector's slack over
	// the decoding garbage; kept as strings, the 700 000 64-byte IDs alone
	// would take about 100 MiB.
	if grew := after - before; grew > 48<<10 {
		t.Fatalf("RSS grew by %d KiB under the flood", grew)
	}
	t.Logf("UpdateID flood: %d updates in %v; RSS %d KiB before, %d KiB after (+%d KiB)",
		total, took.Round(time.Millisecond), before, after, after-before)
}

// TestHostileSpoofedUDPSources: datagrams from many loopback source
// addresses and ports. Garbage gets no reply at all; a valid first message
// gets exactly one small reply (the initial connect message) and nothing
// more, since the source never proves it receives us. Sessions stay within
// the listener's cap, and a real UDP peer still connects afterwards.
func TestHostileSpoofedUDPSources(t *testing.T) {
	t.Parallel()
	v := startVictim(t, "victim5", func(n *Node) []string { return []string{asYAML(udpTransport.listener(n))} })
	target, err := net.ResolveUDPAddr("udp", v.Addr("mesh"))
	if err != nil {
		t.Fatal(err)
	}
	const sources = 600
	socks := make([]*net.UDPConn, 0, sources)
	for i := range sources {
		// Loopback addresses 127.0.0.2-127.0.0.51, many ports each.
		laddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%50))}
		c, err := net.ListenUDP("udp", laddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		socks = append(socks, c)
	}
	var (
		replies   atomic.Int64
		bytesIn   atomic.Int64
		perSource = make([]atomic.Int64, sources)
		wg        sync.WaitGroup
		phase     atomic.Int32
		garbageIn atomic.Int64
	)
	for i, c := range socks {
		wg.Go(func() {
			buf := make([]byte, 65536)
			for {
				n, _, err := c.ReadFromUDP(buf)
				if err != nil {
					return
				}
				if phase.Load() == 0 {
					garbageIn.Add(1)
				}
				replies.Add(1)
				bytesIn.Add(int64(n))
				perSource[i].Add(1)
			}
		})
	}
	defer func() {
		for _, c := range socks {
			_ = c.Close()
		}
		wg.Wait()
	}()
	// Phase 0: garbage (not a valid first message) from every source.
	for _, c := range socks {
		if _, err := c.WriteToUDP([]byte("\x01{not json"), target); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second)
	if g := garbageIn.Load(); g != 0 {
		t.Fatalf("%d replies to garbage from unestablished sources", g)
	}
	// Phase 1: a valid initial routing update from every source, each
	// claiming its own node ID; watch the victim's session count meanwhile.
	phase.Store(1)
	var peak atomic.Int64
	watchDone := make(chan struct{})
	stopWatch := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			if s, _, err := v.status(); err == nil && int64(len(s.Connections)) > peak.Load() {
				peak.Store(int64(len(s.Connections)))
			}
			select {
			case <-stopWatch:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	for i, c := range socks {
		id := fmt.Sprintf("spoof%03d", i)
		msg, err := wire.EncodeRoute(&wire.RoutingUpdate{NodeID: id, UpdateID: wire.RandomName(), UpdateEpoch: 1,
			UpdateSequence: 1, Connections: map[string]float64{}, ForwardingNode: id})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteToUDP(msg, target); err != nil {
			t.Fatal(err)
		}
	}
	// Longer than two routing intervals: an established session would have
	// had periodic floods by now.
	time.Sleep(25 * time.Second)
	close(stopWatch)
	<-watchDone
	maxPer, answered := int64(0), 0
	for i := range perSource {
		if c := perSource[i].Load(); c > 0 {
			answered++
			maxPer = max(maxPer, c)
		}
	}
	if maxPer > 1 {
		t.Fatalf("a spoofed source got %d messages; want at most the one initial reply", maxPer)
	}
	if p := peak.Load(); p > int64(backends.DefaultUDPMaxSessions) {
		t.Fatalf("%d sessions at once, cap %d", p, backends.DefaultUDPMaxSessions)
	}
	stillServes(t, v)
	// A real UDP peer connects right after the flood.
	real5 := NewNode(t, "real5")
	real5.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(udpTransport.peer(v))...) }})
	real5.WaitRoutes(map[string]string{"victim5": "victim5"})
	t.Logf("%d spoofed sources: %d answered, at most %d message each, %d replies (%d bytes) in all; peak %d sessions (cap %d)",
		sources, answered, maxPer, replies.Load(), bytesIn.Load(), peak.Load(), backends.DefaultUDPMaxSessions)
}
