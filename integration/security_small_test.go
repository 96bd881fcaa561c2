package integration

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestUnsafeDirectoriesRefused: a world-writable data directory, or a
// world-writable directory holding the control socket, makes the node
// refuse to start with an error naming the path, owner and mode; once the
// directory is private again the same configuration starts and serves.
func TestUnsafeDirectoriesRefused(t *testing.T) {
	t.Parallel()
	n := NewNode(t, "nodea")
	datadir := filepath.Join(n.Dir, "data")
	sockDir := filepath.Join(n.Dir, "run")
	for _, d := range []string{datadir, sockDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(sockDir, "ctl.sock")
	args := []string{"--node", "id=nodea", "datadir=" + datadir, "--local-only",
		"--control-service", "filename=" + sock,
		"--work-command", "worktype=cat", "command=cat"}
	for _, bad := range []string{datadir, sockDir} {
		if err := os.Chmod(bad, 0o777); err != nil {
			t.Fatal(err)
		}
		res := runCommand(t, n.Dir, "receptor", "", args...)
		if res.Code != 1 || !strings.Contains(res.Out, "Error: ") || !strings.Contains(res.Out, bad+" (owner uid ") ||
			!strings.Contains(res.Out, "drwxrwxrwx") || !strings.Contains(res.Out, "writable by its group or by others") {
			t.Errorf("start with %s mode 0777: exit %d, want 1 with an error naming path, owner and mode\n%s", bad, res.Code, res.Out)
		}
		if _, err := os.Stat(sock); err == nil {
			t.Errorf("a refused start created the socket %s", sock)
		}
		if err := os.Chmod(bad, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	n.Socket = sock
	n.Start(Spec{Bin: "receptor", Args: func(*Node) []string { return args }})
	stillServes(t, n)
}

// TestTLSOnlyForwardSecretSuites: a TLS control service refuses a TLS 1.2
// client that offers only a suite without an ephemeral key exchange, and
// serves one offering ECDHE.
func TestTLSOnlyForwardSecretSuites(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	nc, cc := ca.issue(t, "nodea"), ca.issue(t, "ctlclient")
	n := NewNode(t, "nodea")
	n.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, append(ca.tlsItems(nc),
			entity("control-service", "service", "ctltls", "tcplisten", n.Addr("ctl"), "tcptls", "srv"),
			"- local-only\n")...)
	}})
	pair, err := tls.LoadX509KeyPair(cc.Cert, cc.Key)
	if err != nil {
		t.Fatal(err)
	}
	dial := func(suite uint16) (string, error) {
		d := &net.Dialer{Timeout: commandTimeout}
		c, err := tls.DialWithDialer(d, "tcp", n.Addr("ctl"), &tls.Config{
			Certificates:       []tls.Certificate{pair},
			InsecureSkipVerify: true, // only the suite matters here
			MaxVersion:         tls.VersionTLS12, CipherSuites: []uint16{suite},
		})
		if err != nil {
			return "", err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(commandTimeout))
		buf := make([]byte, 64)
		k, err := c.Read(buf)
		return string(buf[:k]), err
	}
	eventually(t, startTimeout, "TLS control listener with an ECDHE suite", func() bool {
		greeting, err := dial(tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)
		if err != nil {
			t.Logf("ECDHE dial: %v", err)
		}
		return err == nil && strings.HasPrefix(greeting, "Receptor Control")
	})
	for _, suite := range []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384} {
		if greeting, err := dial(suite); err == nil {
			t.Errorf("client offering only %s got a session: %q", tls.CipherSuiteName(suite), greeting)
		} else {
			t.Logf("%s refused: %v", tls.CipherSuiteName(suite), err)
		}
	}
	stillServes(t, n)
}
