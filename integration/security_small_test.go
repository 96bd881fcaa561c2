package integration

import (
	"testing"
)

// TestFirewallRegexAlternationAnchored: a firewall regex with an
// alternation must match a whole node ID. nodeb rejects /nodea|nodex/, so
// nodea is blocked while nodea-evil, whose ID only starts with one branch,
// still reaches nodeb.
func TestFirewallRegexAlternationAnchored(t *testing.T) {
	t.Parallel()
	a, b, e := NewNode(t, "nodea"), NewNode(t, "nodeb"), NewNode(t, "nodea-evil")
	b.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, []string{"firewallrules", "[{action: reject, fromnode: '/nodea|nodex/'}]"},
			asYAML(tcpTransport.listener(n)))
	}})
	a.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(b))...) }})
	e.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(b))...) }})
	a.WaitRoutes(map[string]string{"nodeb": "nodeb", "nodea-evil": "nodeb"})
	e.WaitRoutes(map[string]string{"nodeb": "nodeb", "nodea": "nodeb"})

	if got, want := a.Command("ping nodeb"), `{"Error":"blocked by firewall","Success":false}`; got != want {
		t.Errorf("ping nodeb from nodea: got %s, want %s", got, want)
	}
	checkPing(t, e, "nodeb")
	stillServes(t, b)
}
