package integration

import (
	"os"
	"path/filepath"
	"strings"
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
