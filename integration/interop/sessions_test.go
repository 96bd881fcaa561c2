package interop

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"testing"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// transport describes one backend kind on both implementations.
type transport struct {
	name string
	cost float64 // configured on both ends of the session
	// upstream entities: listener on port / peer to our port
	upListen func(t *testing.T, port int, cost string) []string
	upDial   func(t *testing.T, port int, cost string) []string
	// our backends
	ourListen func(t *testing.T, o *ourNode, opts mesh.BackendOptions) int
	ourDial   func(t *testing.T, o *ourNode, port int, opts mesh.BackendOptions)
	freePort  func(t *testing.T) int
}

func transports() []transport {
	return []transport{
		{
			name: "tcp", cost: 1, freePort: freeTCPPort,
			upListen: func(_ *testing.T, port int, cost string) []string {
				return []string{"--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(port), "cost=" + cost}
			},
			upDial: func(_ *testing.T, port int, cost string) []string {
				return []string{"--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", port), "cost=" + cost}
			},
			ourListen: func(_ *testing.T, o *ourNode, opts mesh.BackendOptions) int { return o.ListenTCP(nil, opts) },
			ourDial: func(_ *testing.T, o *ourNode, port int, opts mesh.BackendOptions) {
				o.DialTCP(fmt.Sprintf("127.0.0.1:%d", port), nil, opts)
			},
		},
		{
			name: "udp", cost: 2, freePort: freeUDPPort,
			upListen: func(_ *testing.T, port int, cost string) []string {
				return []string{"--udp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(port), "cost=" + cost}
			},
			upDial: func(_ *testing.T, port int, cost string) []string {
				return []string{"--udp-peer", fmt.Sprintf("address=127.0.0.1:%d", port), "cost=" + cost}
			},
			ourListen: func(_ *testing.T, o *ourNode, opts mesh.BackendOptions) int { return o.ListenUDP(opts) },
			ourDial: func(_ *testing.T, o *ourNode, port int, opts mesh.BackendOptions) {
				o.DialUDP(fmt.Sprintf("127.0.0.1:%d", port), opts)
			},
		},
		{
			name: "ws", cost: 1.5, freePort: freeTCPPort,
			upListen: func(_ *testing.T, port int, cost string) []string {
				return []string{"--ws-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(port), "path=/mesh", "cost=" + cost}
			},
			upDial: func(_ *testing.T, port int, cost string) []string {
				return []string{"--ws-peer", fmt.Sprintf("address=ws://127.0.0.1:%d/mesh", port), "cost=" + cost}
			},
			ourListen: func(_ *testing.T, o *ourNode, opts mesh.BackendOptions) int { return o.ListenWS("/mesh", nil, opts) },
			ourDial: func(_ *testing.T, o *ourNode, port int, opts mesh.BackendOptions) {
				o.DialWS(fmt.Sprintf("ws://127.0.0.1:%d/mesh", port), nil, opts)
			},
		},
		{
			name: "tcp+tls", cost: 1, freePort: freeTCPPort,
			upListen: func(t *testing.T, port int, cost string) []string {
				return append(pki.UpstreamTLSArgs(t, "up1"),
					"--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(port), "cost="+cost, "tls=srv")
			},
			upDial: func(t *testing.T, port int, cost string) []string {
				return append(pki.UpstreamTLSArgs(t, "up1"),
					"--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", port), "cost="+cost, "tls=cli")
			},
			ourListen: func(t *testing.T, o *ourNode, opts mesh.BackendOptions) int {
				return o.ListenTCP(pki.OurServerTLS(t, o.NodeID()), opts)
			},
			ourDial: func(t *testing.T, o *ourNode, port int, opts mesh.BackendOptions) {
				o.DialTCP(fmt.Sprintf("127.0.0.1:%d", port), pki.OurClientTLS(t, o.NodeID()), opts)
			},
		},
		{
			name: "wss", cost: 3, freePort: freeTCPPort,
			upListen: func(t *testing.T, port int, cost string) []string {
				return append(pki.UpstreamTLSArgs(t, "up1"),
					"--ws-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(port), "path=/mesh", "cost="+cost, "tls=srv")
			},
			upDial: func(t *testing.T, port int, cost string) []string {
				return append(pki.UpstreamTLSArgs(t, "up1"),
					"--ws-peer", fmt.Sprintf("address=wss://127.0.0.1:%d/mesh", port), "cost="+cost, "tls=cli")
			},
			ourListen: func(t *testing.T, o *ourNode, opts mesh.BackendOptions) int {
				return o.ListenWS("/mesh", pki.OurServerTLS(t, o.NodeID()), opts)
			},
			ourDial: func(t *testing.T, o *ourNode, port int, opts mesh.BackendOptions) {
				o.DialWS(fmt.Sprintf("wss://127.0.0.1:%d/mesh", port), pki.OurClientTLS(t, o.NodeID()), opts)
			},
		},
	}
}

// TestSessionEstablishes checks docs/protocol.md §5 over every backend (§3): for
// every transport, ours dials upstream and upstream dials ours; the session
// establishes and both sides show it with the configured cost.
func TestSessionEstablishes(t *testing.T) {
	bin := requireUpstream(t)
	for _, tr := range transports() {
		cost := strconv.FormatFloat(tr.cost, 'g', -1, 64)
		opts := mesh.BackendOptions{Cost: tr.cost}
		t.Run(tr.name+"/ours-dials-upstream", func(t *testing.T) {
			t.Parallel()
			var port int
			up := startListening(t, bin, "up1", func() []string {
				port = tr.freePort(t)
				return tr.upListen(t, port, cost)
			})
			ours := newOurNode(t, "ours")
			tr.ourDial(t, ours, port, opts)
			ours.waitConnected("up1", tr.cost)
			up.waitConnected("ours", tr.cost)
			t.Logf("PASS %s: ours dialed upstream; both list the session with cost %s", tr.name, cost)
		})
		t.Run(tr.name+"/upstream-dials-ours", func(t *testing.T) {
			t.Parallel()
			ours := newOurNode(t, "ours")
			port := tr.ourListen(t, ours, opts)
			up := startProc(t, bin, "up1", tr.upDial(t, port, cost)...)
			ours.waitConnected("up1", tr.cost)
			up.waitConnected("ours", tr.cost)
			t.Logf("PASS %s: upstream dialed ours; both list the session with cost %s", tr.name, cost)
		})
	}
}

// routeMsg is the JSON of a routing update (docs/protocol.md §4.4).
type routeMsg struct {
	NodeID             string
	UpdateID           string
	UpdateEpoch        uint64
	UpdateSequence     uint64
	Connections        map[string]float64
	ForwardingNode     string
	SuspectedDuplicate uint64
}

// TestFirstFrameIsRoute checks on the wire (docs/protocol.md §5.2, §3.2)
// that each side's first TCP frame is its routing update carrying its own ID
// in ForwardingNode, in both dial directions.
func TestFirstFrameIsRoute(t *testing.T) {
	bin := requireUpstream(t)
	check := func(t *testing.T, r *tcpRelay, dialer, listener string) {
		t.Helper()
		testkit.Eventually(t, convergeTimeout, "frames from both sides", func() error {
			var d, l bool
			for _, f := range r.Frames() {
				d = d || f.FromDialer
				l = l || !f.FromDialer
			}
			if d && l {
				return nil
			}
			return errors.New(describeFrames(r.Frames()))
		})
		seen := map[bool]bool{}
		for _, f := range r.Frames() {
			if seen[f.FromDialer] {
				continue
			}
			seen[f.FromDialer] = true
			want := listener
			if f.FromDialer {
				want = dialer
			}
			if len(f.Data) == 0 || f.Data[0] != 1 {
				t.Fatalf("first frame from %s is not a routing update: %q", want, f.Data)
			}
			var m routeMsg
			if err := json.Unmarshal(f.Data[1:], &m); err != nil {
				t.Fatalf("first frame from %s: %v: %q", want, err, f.Data)
			}
			if m.NodeID != want || m.ForwardingNode != want || m.UpdateEpoch == 0 || len(m.UpdateID) != 8 {
				t.Fatalf("first frame from %s: %+v", want, m)
			}
		}
		t.Logf("PASS first frames: %s", describeFrames(r.Frames()[:2]))
	}
	t.Run("ours-dials-upstream", func(t *testing.T) {
		t.Parallel()
		var port int
		startListening(t, bin, "up1", func() []string {
			port = freeTCPPort(t)
			return []string{"--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(port)}
		})
		r := newTCPRelay(t, fmt.Sprintf("127.0.0.1:%d", port))
		ours := newOurNode(t, "ours")
		ours.DialTCP(r.Addr(), nil, mesh.BackendOptions{})
		ours.waitConnected("up1", 1)
		check(t, r, "ours", "up1")
	})
	t.Run("upstream-dials-ours", func(t *testing.T) {
		t.Parallel()
		ours := newOurNode(t, "ours")
		port := ours.ListenTCP(nil, mesh.BackendOptions{})
		r := newTCPRelay(t, fmt.Sprintf("127.0.0.1:%d", port))
		startProc(t, bin, "up1", "--tcp-peer", "address="+r.Addr())
		ours.waitConnected("up1", 1)
		check(t, r, "up1", "ours")
	})
}
