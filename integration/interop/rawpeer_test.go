package interop

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// rawPeer is a hand-driven mesh node on one TCP session (docs/protocol.md §3.2
// framing), for sending what no real node would.
type rawPeer struct {
	t      *testing.T
	id     string
	c      net.Conn
	frames chan []byte // received frames; closed when the session ends
	seq    uint64
	epoch  uint64
	wg     sync.WaitGroup
}

const rawPeerQueue = 4096

func dialRawPeer(t *testing.T, addr, id string) *rawPeer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, id: id, c: c, frames: make(chan []byte, rawPeerQueue), epoch: wire.NewEpoch(time.Now())}
	p.wg.Add(1)
	go p.readLoop()
	t.Cleanup(func() {
		c.Close()
		p.wg.Wait()
	})
	return p
}

func (p *rawPeer) readLoop() {
	defer p.wg.Done()
	defer close(p.frames)
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(p.c, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.LittleEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(p.c, body); err != nil {
			return
		}
		select {
		case p.frames <- body:
		default: // bounded: a flood is not what these tests look for
		}
	}
}

func (p *rawPeer) send(msg []byte) {
	p.t.Helper()
	var hdr [2]byte
	binary.LittleEndian.PutUint16(hdr[:], uint16(len(msg)))
	if _, err := p.c.Write(append(hdr[:], msg...)); err != nil {
		p.t.Fatalf("raw peer %s: send: %v", p.id, err)
	}
}

// sendRoute sends our own routing update listing conns.
func (p *rawPeer) sendRoute(conns map[string]float64) {
	p.t.Helper()
	p.seq++
	msg, err := wire.EncodeRoute(&wire.RoutingUpdate{
		NodeID: p.id, UpdateID: wire.RandomName(), UpdateEpoch: p.epoch, UpdateSequence: p.seq,
		Connections: conns, ForwardingNode: p.id,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(msg)
}

// sendData sends a data message with the given header names (hashed here).
func (p *rawPeer) sendData(fromNode, fromSvc, toNode, toSvc string, payload []byte) {
	p.t.Helper()
	msg, err := wire.AppendData(nil, wire.DataHeader{
		HopsToLive: 29, FromNode: wire.HashName(fromNode), ToNode: wire.HashName(toNode),
		FromService: fromSvc, ToService: toSvc,
	}, payload)
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(msg)
}

// handshake establishes the session with target (docs/protocol.md §5.3, §5.4).
func (p *rawPeer) handshake(target string) {
	p.t.Helper()
	p.sendRoute(map[string]float64{})
	p.next(wire.TypeRoute, 15*time.Second)
	p.sendRoute(map[string]float64{target: 1})
}

// next returns the next frame of type typ, skipping others.
func (p *rawPeer) next(typ wire.Type, timeout time.Duration) []byte {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				p.t.Fatalf("raw peer %s: session closed while waiting for a type-%d message", p.id, typ)
			}
			if len(f) > 0 && wire.Type(f[0]) == typ {
				return f
			}
		case <-deadline:
			p.t.Fatalf("raw peer %s: no type-%d message within %v", p.id, typ, timeout)
		}
	}
}

// pingRound sends a ping from (p.id, svc) to target and returns every data
// message received up to and including the reply, then for settle more.
func (p *rawPeer) pingRound(target, svc string, settle time.Duration) (reply wire.DataHeader, others []wire.DataHeader) {
	p.t.Helper()
	p.sendData(p.id, svc, target, "ping", nil)
	got := false
	deadline := time.After(15 * time.Second)
	var quiet <-chan time.Time
	for {
		select {
		case f, ok := <-p.frames:
			if !ok {
				p.t.Fatalf("raw peer %s: session closed (got reply %v, others %+v)", p.id, got, others)
			}
			if len(f) == 0 || wire.Type(f[0]) != wire.TypeData {
				continue
			}
			h, _, err := wire.DecodeData(f)
			if err != nil {
				p.t.Fatalf("raw peer %s: bad data message %x: %v", p.id, f, err)
			}
			if mesh.IsLinkProbe(h) {
				continue // our node's RTT probe of the link (docs/protocol.md M22)
			}
			if !got && h.ToService == svc && h.FromService == "ping" {
				reply, got = h, true
				quiet = time.After(settle)
				continue
			}
			others = append(others, h)
		case <-deadline:
			if !got {
				p.t.Fatalf("raw peer %s: no ping reply from %s within 15 s (other data %+v)", p.id, target, others)
			}
		case <-quiet:
			return reply, others
		}
	}
}

// TestUnknownNameHash checks docs/protocol.md §2.2 and §8.3: data messages whose
// FromNode (or ToNode) hash the receiver never learned are dropped silently,
// by upstream and by our binary: no reply, no unreachable, no crash, the
// session stays; a ping from the known peer name around them is answered.
func TestUnknownNameHash(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	for _, b := range []struct{ name, bin, id string }{{"upstream", upBin, "up1"}, {"ours", bin, "obin"}} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			var port int
			node := startListening(t, b.bin, b.id, func() []string {
				port = freeTCPPort(t)
				return []string{"--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(port)}
			})
			p := dialRawPeer(t, fmt.Sprintf("127.0.0.1:%d", port), "fake")
			p.handshake(b.id)
			node.waitRoute("fake", "fake")

			// The control round proves replies would be seen.
			if _, others := p.pingRound(b.id, "fk1", 0); len(others) != 0 {
				t.Fatalf("unexpected data before the test: %+v", others)
			}
			p.sendData("ghost", "gh1", b.id, "ping", nil)          // unknown sender → ping
			p.sendData("ghost", "gh2", b.id, "nosvc", []byte("x")) // unknown sender → unbound service
			p.sendData("fake", "fk2", "nowhere", "ping", nil)      // unknown destination
			reply, others := p.pingRound(b.id, "fk3", time.Second)
			if len(others) != 0 {
				t.Fatalf("%s answered messages with unknown name hashes: %+v", b.id, others)
			}
			if reply.FromNode != wire.HashName(b.id) || reply.ToNode != wire.HashName("fake") {
				t.Fatalf("ping reply header %+v", reply)
			}
			s, err := node.Status()
			if err != nil || node.Exited() {
				t.Fatalf("%s after unknown hashes: exited %v, status error %v", b.id, node.Exited(), err)
			}
			if !slices.ContainsFunc(s.Connections, func(c struct {
				NodeID string
				Cost   float64
			}) bool {
				return c.NodeID == "fake"
			}) {
				t.Fatalf("%s dropped the session: %+v", b.id, s.Connections)
			}
			t.Logf("PASS %s drops unknown FromNode/ToNode hashes silently; session and node unaffected", b.id)
		})
	}
}
