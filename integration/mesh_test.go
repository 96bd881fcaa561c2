package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// pingRE is the success reply of `ping` (docs/protocol.md §12.3), keys in order.
var pingRE = regexp.MustCompile(`^\{"From":"([^"]+)","Success":true,"Time":(\d+),"TimeStr":"([^"]+)"\}$`)

// hopRE is one traceroute hop without an error.
var hopRE = regexp.MustCompile(`^\{"From":"([^"]+)","Time":(\d+),"TimeStr":"([^"]+)"\}$`)

// checkDuration requires that TimeStr is Go's text for Time nanoseconds.
func checkDuration(t *testing.T, what, ns, text string) {
	t.Helper()
	v, err := strconv.ParseInt(ns, 10, 64)
	if err != nil {
		t.Fatalf("%s: Time %q: %v", what, ns, err)
	}
	if v <= 0 {
		t.Errorf("%s: Time %d, want > 0", what, v)
	}
	if got := time.Duration(v).String(); got != text {
		t.Errorf("%s: TimeStr %q does not match Time %d (%q)", what, text, v, got)
	}
}

// checkPing runs `ping target` on from and checks the exact reply shape.
func checkPing(t *testing.T, from *Node, target string) {
	t.Helper()
	line := from.Command("ping " + target)
	m := pingRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("ping %s from %s: reply %q does not have the shape %s", target, from.ID, line, pingRE)
	}
	want := target
	if strings.EqualFold(target, "localhost") {
		want = from.ID
	}
	if m[1] != want {
		t.Errorf("ping %s: From %q, want %q", target, m[1], want)
	}
	checkDuration(t, "ping "+target, m[2], m[3])
}

// checkTraceroute runs `traceroute target` on from and requires exactly
// the hops want (hop 0 = from itself), each with the exact entry shape.
func checkTraceroute(t *testing.T, from *Node, target string, want ...string) {
	t.Helper()
	line := from.Command("traceroute " + target)
	var hops map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &hops); err != nil {
		t.Fatalf("traceroute %s: reply %q: %v", target, line, err)
	}
	if len(hops) != len(want) {
		t.Fatalf("traceroute %s: %d hops in %q, want %v", target, len(hops), line, want)
	}
	keys := make([]string, 0, len(want))
	for i, id := range want {
		k := strconv.Itoa(i)
		keys = append(keys, k)
		m := hopRE.FindStringSubmatch(string(hops[k]))
		if m == nil {
			t.Fatalf("traceroute %s: hop %s %q does not have the shape %s", target, k, hops[k], hopRE)
		}
		if m[1] != id {
			t.Errorf("traceroute %s: hop %s from %q, want %q (reply %s)", target, k, m[1], id, line)
		}
		checkDuration(t, "traceroute hop "+k, m[2], m[3])
	}
	// Keys appear sorted bytewise, as Go's encoding/json writes maps.
	sort.Strings(keys)
	var order []string
	for _, m := range regexp.MustCompile(`"(\d+)":\{`).FindAllStringSubmatch(line, -1) {
		order = append(order, m[1])
	}
	if fmt.Sprint(order) != fmt.Sprint(keys) {
		t.Errorf("traceroute %s: hop keys in order %v, want %v", target, order, keys)
	}
}

// startLine starts a - b - c over tr: a listens (YAML), b dials a and
// listens (YAML), c dials b (command-line entities). extra returns more
// YAML items and command-line args for a node; bins names the binary of
// each node ("" = receptor-router).
func startLine(t *testing.T, tr transport, extra func(n *Node) ([]string, []string), bins [3]string) (a, b, c *Node) {
	t.Helper()
	a, b, c = NewNode(t, "nodea"), NewNode(t, "nodeb"), NewNode(t, "nodec")
	more := func(n *Node) ([]string, []string) {
		if extra == nil {
			return nil, nil
		}
		return extra(n)
	}
	a.Start(Spec{Bin: bins[0], Config: func(n *Node) string {
		items, _ := more(n)
		return nodeYAML(n, nil, append(items, asYAML(tr.listener(n)))...)
	}})
	b.Start(Spec{Bin: bins[1], Config: func(n *Node) string {
		items, _ := more(n)
		return nodeYAML(n, nil, append(items, asYAML(tr.peer(a)), asYAML(tr.listener(n)))...)
	}})
	c.Start(Spec{Bin: bins[2], Args: func(n *Node) []string {
		_, args := more(n)
		return append(nodeArgs(n, args...), asArgs(tr.peer(b))...)
	}})
	return a, b, c
}

// TestMeshLine runs a 3-node line over each transport and checks routes,
// costs, and ping and traceroute across two hops.
func TestMeshLine(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	certs := map[string]nodeCert{}
	for _, id := range []string{"nodea", "nodeb", "nodec"} {
		certs[id] = ca.issue(t, id)
	}
	for _, tc := range []struct {
		name string
		tr   transport
		bins [3]string
	}{
		{"tcp", tcpTransport, [3]string{}},
		{"udp", udpTransport, [3]string{}},
		{"ws", wsTransport, [3]string{}},
		{"tls", tlsTransport, [3]string{}},
		{"wss", wssTransport, [3]string{}},
		// The all-in-one binary is a drop-in mesh node too.
		{"tcp mixed binaries", tcpTransport, [3]string{"receptor", "", "receptor"}},
	} {
		tr := tc.tr
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var extra func(n *Node) ([]string, []string)
			if tr.name == "tls" || tr.name == "wss" {
				extra = func(n *Node) ([]string, []string) {
					return ca.tlsItems(certs[n.ID]), ca.tlsArgs(certs[n.ID])
				}
			}
			a, b, c := startLine(t, tr, extra, tc.bins)
			st := a.WaitRoutes(map[string]string{"nodeb": "nodeb", "nodec": "nodeb"})
			c.WaitRoutes(map[string]string{"nodea": "nodeb", "nodeb": "nodeb"})
			b.WaitRoutes(map[string]string{"nodea": "nodea", "nodec": "nodec"})
			st = a.WaitKnownNodes("nodea", "nodeb", "nodec")
			if got := st.KnownConnectionCosts["nodeb"]; got["nodea"] != 1 || got["nodec"] != 1 || len(got) != 2 {
				t.Errorf("nodea's view of nodeb's connections: %v, want nodea:1 nodec:1", got)
			}
			if len(st.Connections) != 1 || st.Connections[0] != (Connection{NodeID: "nodeb", Cost: 1}) {
				t.Errorf("nodea's connections: %v, want [nodeb cost 1]", st.Connections)
			}
			checkPing(t, a, "nodec")
			checkPing(t, c, "nodea")
			checkTraceroute(t, a, "nodec", "nodea", "nodeb", "nodec")
			checkTraceroute(t, c, "nodea", "nodec", "nodeb", "nodea")
		})
	}
}

// TestMeshRingCostsAndRecovery runs the ring a-b-c-d-a where the a-d link
// costs 5: routes take the cheap way round; when b is killed (SIGKILL)
// traffic moves to the expensive link; when b restarts it rejoins and the
// cheap routes come back.
func TestMeshRingCostsAndRecovery(t *testing.T) {
	t.Parallel()
	a, b, c, d := NewNode(t, "nodea"), NewNode(t, "nodeb"), NewNode(t, "nodec"), NewNode(t, "noded")
	listen := func(n *Node, nodecost string) string {
		kv := []string{"port", fmt.Sprint(n.Port("mesh")), "bindaddr", "127.0.0.1", "cost", "1"}
		if nodecost != "" {
			kv = append(kv, "nodecost", nodecost)
		}
		return entity("tcp-listener", kv...)
	}
	peer := func(to *Node, cost string) string {
		return entity("tcp-peer", "address", to.Addr("mesh"), "cost", cost)
	}
	a.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, listen(n, "{noded: 5}")) }})
	b.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, listen(n, ""), peer(a, "1")) }})
	c.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, listen(n, ""), peer(b, "1")) }})
	d.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, peer(c, "1"), peer(a, "5")) }})

	st := a.WaitRoutes(map[string]string{"nodeb": "nodeb", "nodec": "nodeb", "noded": "nodeb"})
	if got := st.KnownConnectionCosts["nodea"]["noded"]; got != 5 {
		t.Errorf("cost nodea->noded = %v, want 5 (status %v)", got, st)
	}
	d.WaitRoutes(map[string]string{"nodea": "nodec", "nodeb": "nodec", "nodec": "nodec"})
	// Replies of intermediate hops need their routes back to nodea too.
	b.WaitRoutes(map[string]string{"nodea": "nodea", "nodec": "nodec", "noded": "nodec"})
	c.WaitRoutes(map[string]string{"nodea": "nodeb", "nodeb": "nodeb", "noded": "noded"})
	checkTraceroute(t, a, "noded", "nodea", "nodeb", "nodec", "noded")

	b.Kill()
	a.WaitRoutes(map[string]string{"nodec": "noded", "noded": "noded"})
	c.WaitRoutes(map[string]string{"nodea": "noded", "noded": "noded"})
	d.WaitRoutes(map[string]string{"nodea": "nodea", "nodec": "nodec"})
	checkPing(t, a, "nodec")
	checkTraceroute(t, a, "nodec", "nodea", "noded", "nodec")

	b.Restart()
	a.WaitRoutes(map[string]string{"nodeb": "nodeb", "nodec": "nodeb", "noded": "nodeb"})
	b.WaitRoutes(map[string]string{"nodea": "nodea", "nodec": "nodec", "noded": "nodec"})
	c.WaitRoutes(map[string]string{"nodea": "nodeb", "nodeb": "nodeb", "noded": "noded"})
	d.WaitRoutes(map[string]string{"nodea": "nodec", "nodeb": "nodec", "nodec": "nodec"})
	checkPing(t, b, "noded")
	checkTraceroute(t, a, "nodec", "nodea", "nodeb", "nodec")
}

// TestMeshDuplicateNodeID: a second node with an ID already connected to
// the hub is refused, and the first keeps its session.
func TestMeshDuplicateNodeID(t *testing.T) {
	t.Parallel()
	a, b1, b2 := NewNode(t, "nodea"), NewNode(t, "nodeb"), NewNode(t, "nodeb")
	a.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, asYAML(tcpTransport.listener(n))) }})
	b1.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(a))...) }})
	a.WaitRoutes(map[string]string{"nodeb": "nodeb"})
	b1.WaitRoutes(map[string]string{"nodea": "nodea"})
	b2.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(a))...) }})
	testkit.Eventually(t, convergeTimeout, "nodea refuses the second nodeb", func() error {
		if b2.LogContains("rejected by peer") && a.LogContains(`already connected to node \"nodeb\"`) {
			return nil
		}
		return errors.New("want b2.LogContains(\"rejected by peer\") && a.LogContains(`already connected to node \\\"nodeb\\\"`)")
	})
	if st := b2.Status(); len(st.Connections) != 0 {
		t.Errorf("the second nodeb has connections: %v", st)
	}
	if st := b1.Status(); !st.ConnectedTo("nodea") {
		t.Errorf("the first nodeb lost its session: %v", st)
	}
	checkPing(t, a, "nodeb")
}
