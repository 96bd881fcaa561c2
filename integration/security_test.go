package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestControlSocketPermissions checks the socket's file mode (0600 by
// default, `permissions` when given, as the string AWX writes), the lock
// file, and that a second node cannot take a socket in use.
func TestControlSocketPermissions(t *testing.T) {
	t.Parallel()
	def, shared := NewNode(t, "nodea"), NewNode(t, "nodeb")
	def.Start(Spec{Args: func(n *Node) []string { return nodeArgs(n, "--local-only") }})
	shared.Start(Spec{Config: func(n *Node) string {
		return "---\n" + entity("node", "id", n.ID, "datadir", n.Dir+"/data") +
			entity("control-service", "filename", n.Socket, "permissions", "'0660'") + "- local-only\n"
	}})
	for _, tc := range []struct {
		n    *Node
		want fs.FileMode
	}{{def, 0o600}, {shared, 0o660}} {
		st, err := os.Stat(tc.n.Socket)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Type() != fs.ModeSocket || st.Mode().Perm() != tc.want {
			t.Errorf("%s: socket mode %v, want socket %v", tc.n.ID, st.Mode(), tc.want)
		}
		if _, err := os.Stat(tc.n.Socket + ".lock"); err != nil {
			t.Errorf("%s: lock file: %v", tc.n.ID, err)
		}
	}

	// A second process on nodea's socket fails to start and leaves the
	// first one serving.
	res := runCommand(t, def.Dir, routerBin, "", "--node", "id=nodez", "--local-only",
		"--control-service", "filename="+def.Socket)
	if res.Code != 1 || !strings.Contains(res.Out, "Error: ") || !strings.Contains(res.Out, "lock") {
		t.Errorf("second node on a socket in use: exit %d, want 1 with an Error about the lock\n%s", res.Code, res.Out)
	}
	stillServes(t, def)
}

// TestTLSRequireClientCert: a TLS listener with requireclientcert accepts
// a peer with a CA-signed node certificate and refuses one without any.
func TestTLSRequireClientCert(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	l, good, bad := NewNode(t, "nodel"), NewNode(t, "nodeg"), NewNode(t, "noden")
	lc, gc := ca.issue(t, "nodel"), ca.issue(t, "nodeg")
	l.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, append(ca.tlsItems(lc), asYAML(tlsTransport.listener(n)))...)
	}})
	// noden trusts the CA but presents no certificate.
	bad.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil,
			entity("tls-client", "name", "cli", "cert", `""`, "key", `""`, "rootcas", ca.Cert),
			asYAML(tlsTransport.peer(l)))
	}})
	good.Start(Spec{Args: func(n *Node) []string {
		return append(nodeArgs(n, ca.tlsArgs(gc)...), asArgs(tlsTransport.peer(l))...)
	}})
	l.WaitRoutes(map[string]string{"nodeg": "nodeg"})
	// noden dialed first; its refusal shows in nodel's log and it never
	// joins.
	testkit.Eventually(t, convergeTimeout, "nodel's log shows the refused TLS handshake", func() error {
		if l.LogContains("tls handshake failed") && l.LogContains("certificate") {
			return nil
		}
		return errors.New("want l.LogContains(\"tls handshake failed\") && l.LogContains(\"certificate\")")
	})
	if st := l.Status(); st.ConnectedTo("noden") {
		t.Errorf("nodel accepted noden without a client certificate: %v", st)
	}
	if st := bad.Status(); len(st.Connections) != 0 {
		t.Errorf("noden has connections: %v", st)
	}
}

// TestAllowedPeers: a listener with allowedpeers refuses other nodes.
func TestAllowedPeers(t *testing.T) {
	t.Parallel()
	l, ok, other := NewNode(t, "nodel"), NewNode(t, "nodeok"), NewNode(t, "nodex")
	l.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, entity("tcp-listener", "port", fmt.Sprint(n.Port("mesh")),
			"bindaddr", "127.0.0.1", "allowedpeers", "[nodeok]"))
	}})
	other.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(l))...) }})
	ok.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(l))...) }})
	l.WaitRoutes(map[string]string{"nodeok": "nodeok"})
	testkit.Eventually(t, convergeTimeout, "nodel's log shows nodex refused", func() error {
		if l.LogContains(`nodex\" is not in allowedpeers`) {
			return nil
		}
		return errors.New("want l.LogContains(`nodex\\\" is not in allowedpeers`)")
	})
	if st := l.Status(); st.ConnectedTo("nodex") {
		t.Errorf("nodel accepted nodex, which is not in allowedpeers: %v", st)
	}
	if st := other.Status(); len(st.Connections) != 0 || len(st.RoutingTable) != 0 {
		t.Errorf("nodex joined the mesh: %v", st)
	}
}

// TestFirewallReject: nodeb rejects data from nodea (a regex rule), so
// pings from nodea to nodeb, and through nodeb to nodec, report "blocked
// by firewall", while nodec still reaches nodeb.
func TestFirewallReject(t *testing.T) {
	t.Parallel()
	a, b, c := NewNode(t, "nodea"), NewNode(t, "nodeb"), NewNode(t, "nodec")
	a.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, asYAML(tcpTransport.listener(n))) }})
	b.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, []string{"firewallrules", "[{action: reject, fromnode: '/node[a]/'}]"},
			asYAML(tcpTransport.peer(a)), asYAML(tcpTransport.listener(n)))
	}})
	c.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(b))...) }})
	a.WaitRoutes(map[string]string{"nodeb": "nodeb", "nodec": "nodeb"})
	c.WaitRoutes(map[string]string{"nodea": "nodeb", "nodeb": "nodeb"})

	want := `{"Error":"blocked by firewall","Success":false}`
	for _, target := range []string{"nodeb", "nodec"} {
		if got := a.Command("ping " + target); got != want {
			t.Errorf("ping %s from nodea: got %s, want %s", target, got, want)
		}
	}
	checkPing(t, c, "nodeb")
}

// startTLSControl starts nodea with a control service on TCP behind TLS
// (requireclientcert, the test CA's clientcas) that lets the certificate
// it returns, "ctlclient", read.
func startTLSControl(t *testing.T) (*Node, *testCA, nodeCert) {
	t.Helper()
	ca := newCA(t)
	nc, cc := ca.issue(t, "nodea"), ca.issue(t, "ctlclient")
	n := NewNode(t, "nodea")
	n.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, append(ca.tlsItems(nc),
			entity("control-service", "service", "ctltls", "tcplisten", n.Addr("ctl"), "tcptls", "srv"),
			entity("access", "role", "reader", "principals", "[cert:ctlclient]"),
			"- local-only\n")...)
	}})
	return n, ca, cc
}

// TestControlTCPWithTLS: a control service on TCP with tcptls and
// requireclientcert serves a client holding a CA-signed certificate and
// refuses one without (docs/protocol.md §12.1).
func TestControlTCPWithTLS(t *testing.T) {
	t.Parallel()
	n, ca, cc := startTLSControl(t)
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.Cert)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("reading CA %s: %v", ca.Cert, err)
	}
	pair, err := tls.LoadX509KeyPair(cc.Cert, cc.Key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	addr := "tls://" + n.Addr("ctl")

	// The Unix socket may answer a moment before the second control
	// service listens.
	var c *client.Conn
	testkit.Eventually(t, startTimeout, "control over TLS with a client certificate", func() error {
		c, err = client.Dial(ctx, addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}})
		if err != nil {
			t.Logf("dial %s: %v", addr, err)
		}
		return err
	})
	var st struct{ NodeID string }
	err = c.CommandJSON(ctx, map[string]any{"command": "status", "requested_fields": []string{"NodeID"}}, &st)
	_ = c.Close()
	if err != nil || st.NodeID != "nodea" {
		t.Errorf("status over TLS: %+v, %v", st, err)
	}

	// Without a certificate the server ends the handshake: no greeting.
	c, err = client.Dial(ctx, addr, &tls.Config{RootCAs: pool})
	if err == nil {
		_ = c.Close()
		t.Fatalf("control over TLS without a client certificate got a session")
	}
	// Plain TCP gets no greeting either.
	raw, err := net.DialTimeout("tcp", n.Addr("ctl"), commandTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_, _ = raw.Write([]byte("status\n"))
	_ = raw.SetReadDeadline(time.Now().Add(commandTimeout))
	b, _ := io.ReadAll(raw)
	if strings.Contains(string(b), "Receptor Control") {
		t.Errorf("plain TCP client on a TLS control port got %q", b)
	}
	stillServes(t, n)
}

// TestMeshControlServiceTLS: a control service on the mesh with tls is
// advertised with ConnType 2; `connect <node> <service> <tlsclient>`
// reaches it when the server certificate carries the target's node ID,
// and is refused when it carries another node's ID.
func TestMeshControlServiceTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	certs := map[string]nodeCert{}
	for _, id := range []string{"nodea", "nodeb", "nodec", "nodez"} {
		certs[id] = ca.issue(t, id)
	}
	a, b, c := NewNode(t, "nodea"), NewNode(t, "nodeb"), NewNode(t, "nodec")
	a.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, append(ca.tlsItems(certs[n.ID]), asYAML(tcpTransport.listener(n)))...)
	}})
	b.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, append(ca.tlsItems(certs[n.ID]), asYAML(tcpTransport.peer(a)),
			entity("control-service", "service", "ctltls", "tls", "srv"))...)
	}})
	// nodec serves with nodez's certificate: dialers verifying nodec's
	// node ID must refuse it.
	c.Start(Spec{Config: func(n *Node) string {
		z := certs["nodez"]
		return nodeYAML(n, nil, asYAML(tcpTransport.peer(a)),
			entity("tls-server", "name", "wrong", "cert", z.Cert, "key", z.Key, "skipreceptornamescheck", "true"),
			entity("control-service", "service", "ctltls", "tls", "wrong"))
	}})
	adType := func(s Status, node, service string) int {
		for _, ad := range s.Advertisements {
			if ad.NodeID == node && ad.Service == service {
				return ad.ConnType
			}
		}
		return -1
	}
	a.WaitStatus("advertisements of nodeb and nodec", func(s Status) bool {
		return adType(s, "nodeb", "ctltls") == 2 && adType(s, "nodeb", "control") == 1 && adType(s, "nodec", "ctltls") == 2
	})

	rc := a.Raw()
	defer rc.Close()
	rc.Send("connect nodeb ctltls cli\n")
	if got := rc.Line(); got != "Connecting" {
		t.Fatalf("connect nodeb ctltls cli: got %q, want Connecting", got)
	}
	if got := rc.Line(); got != "Receptor Control, node nodeb" {
		t.Fatalf("after Connecting: got %q, want nodeb's greeting", got)
	}
	rc.Send(`{"command":"status","requested_fields":["NodeID"]}` + "\n")
	if got := rc.Line(); got != `{"NodeID":"nodeb"}` {
		t.Errorf("status through the TLS bridge: got %q", got)
	}

	got := a.Command("connect nodec ctltls cli")
	if !strings.HasPrefix(got, "ERROR: ") {
		t.Errorf("connect to nodec, whose certificate names nodez: got %q, want an ERROR line", got)
	}
	stillServes(t, a)
}

// TestFirewallDropAndService: drop rules discard silently (ping times
// out) and rules on a service leave other traffic alone.
func TestFirewallDropAndService(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, rules, check string
	}{
		{"drop", "[{action: drop, fromnode: nodea, tonode: nodeb}]", "drop"},
		{"reject service", "[{Action: Reject, ToService: control}]", "service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := NewNode(t, "nodea"), NewNode(t, "nodeb")
			a.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, asYAML(tcpTransport.listener(n))) }})
			b.Start(Spec{Config: func(n *Node) string {
				return nodeYAML(n, []string{"firewallrules", tc.rules}, asYAML(tcpTransport.peer(a)))
			}})
			a.WaitRoutes(map[string]string{"nodeb": "nodeb"})
			b.WaitRoutes(map[string]string{"nodea": "nodea"})
			switch tc.check {
			case "drop":
				if got, want := a.Command("ping nodeb"), `{"Error":"timeout","Success":false}`; got != want {
					t.Errorf("ping through a drop rule: got %s, want %s", got, want)
				}
			case "service":
				checkPing(t, a, "nodeb")
				// Only "service unknown" aborts a dial early
				// (docs/protocol.md §10.5); a rejected one fails at the handshake timeout.
				got := a.Command("connect nodeb control ")
				if !strings.HasPrefix(got, "ERROR: ") {
					t.Errorf("connect to a rejected service: got %q, want an ERROR line", got)
				}
			}
		})
	}
}
