package integration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// sessionsWith counts the mesh sessions with peer that n's log records as
// established and as ended (all runs of n).
func sessionsWith(t *testing.T, n *Node, peer string) (established, ended int) {
	t.Helper()
	data, err := os.ReadFile(n.Log)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		switch {
		case strings.Contains(line, "mesh session established") && strings.Contains(line, "peer="+peer+" "):
			established++
		case strings.Contains(line, "mesh session ended") && strings.Contains(line, "peer="+peer+" "):
			ended++
		}
	}
	return established, ended
}

// requireOneSession fails unless n's log shows exactly one session with
// peer, still open: a reload kept the link instead of redialing it.
func requireOneSession(t *testing.T, n *Node, peer, when string) {
	t.Helper()
	if est, end := sessionsWith(t, n, peer); est != 1 || end != 0 {
		t.Errorf("%s: node %s logged %d sessions established and %d ended with %s; want the first one kept", when, n.ID, est, end, peer)
	}
}

func accepts(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

func waitAccepts(t *testing.T, addr string, want bool) {
	t.Helper()
	testkit.Eventually(t, convergeTimeout, fmt.Sprintf("%s accepting=%v", addr, want), func() error {
		err := accepts(addr)
		if (err == nil) != want {
			return fmt.Errorf("dial %s: %v", addr, err)
		}
		return nil
	})
}

// TestReloadEverySource starts the all-in-one binary from two -c files and
// a command-line peer. Reload (the control command, then SIGHUP) re-reads
// all three: entities written in another order are no change, a changed
// listener is replaced, and the link to the peer, which came from the
// command line and did not change, stays the same session throughout.
func TestReloadEverySource(t *testing.T) {
	b := NewNode(t, "b")
	b.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, entity("tcp-listener", "port", strconv.Itoa(n.Port("mesh")), "bindaddr", "127.0.0.1"))
	}})

	a := NewNode(t, "a")
	second := filepath.Join(a.Dir, "listeners.yaml")
	listeners := func(names ...string) string {
		var s strings.Builder
		s.WriteString("---\n")
		for _, name := range names {
			s.WriteString(entity("tcp-listener", "port", strconv.Itoa(a.Port(name)), "bindaddr", "127.0.0.1"))
		}
		return s.String()
	}
	writeFile := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a.Start(Spec{
		Bin: "receptor",
		Config: func(n *Node) string {
			writeFile(second, listeners("one", "two"))
			return nodeYAML(n, nil, entity("work-command", "worktype", "echo", "command", "echo"))
		},
		Args: func(n *Node) []string {
			return []string{"-c", second, "--tcp-peer", "address=" + b.Addr("mesh"), "redial=true"}
		},
	})
	a.WaitRoutes(map[string]string{"b": "b"})
	waitAccepts(t, a.Addr("one"), true)
	waitAccepts(t, a.Addr("two"), true)

	// The same entities in another order, in both files: nothing to do.
	first, err := os.ReadFile(a.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	reordered := reorderItems(string(first))
	if reordered == string(first) {
		t.Fatalf("could not reorder the configuration:\n%s", first)
	}
	writeFile(a.ConfigPath(), reordered)
	writeFile(second, listeners("two", "one"))
	if got := a.Command("reload"); got != `{"Success":true}` {
		t.Fatalf("reload of reordered files = %s", got)
	}
	if !a.LogContains("configuration reloaded backends_kept=3 backends_stopped=0 backends_started=0") {
		t.Errorf("reordered reload did not keep every backend:\n%s", a.logTail())
	}

	// A changed listener in the second file: "two" moves to "three".
	writeFile(second, listeners("three", "one"))
	if got := a.Command("reload"); got != `{"Success":true}` {
		t.Fatalf("reload with a changed listener = %s", got)
	}
	waitAccepts(t, a.Addr("three"), true)
	waitAccepts(t, a.Addr("two"), false)
	waitAccepts(t, a.Addr("one"), true)
	requireOneSession(t, a, "b", "after reload")

	// SIGHUP reloads the same way.
	writeFile(second, listeners("one"))
	if err := a.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitAccepts(t, a.Addr("three"), false)
	waitAccepts(t, a.Addr("one"), true)
	a.WaitRoutes(map[string]string{"b": "b"})
	requireOneSession(t, a, "b", "after SIGHUP")
	requireOneSession(t, b, "a", "after SIGHUP (peer's log)")

	// A non-reloadable entity added in the second file: refused with
	// upstream's code, nothing changes.
	writeFile(second, listeners("one")+entity("work-command", "worktype", "cat", "command", "cat"))
	want := `{"Error":"a non-reloadable config action 'work-command' was modified or added. Must restart receptor for these changes to take effect ERRORCODE 3","Success":false}`
	if got := a.Command("reload"); got != want {
		t.Errorf("reload with a work-command added = %s\nwant %s", got, want)
	}
	waitAccepts(t, a.Addr("one"), true)
	requireOneSession(t, a, "b", "after a refused reload")
}

// reorderItems moves the first item of a v1 configuration list (as
// testkit.Entity renders them: each starts a line with "- ") to its end.
func reorderItems(doc string) string {
	var items []string
	for line := range strings.Lines(strings.TrimPrefix(doc, "---\n")) {
		if strings.HasPrefix(line, "- ") || len(items) == 0 {
			items = append(items, line)
			continue
		}
		items[len(items)-1] += line
	}
	if len(items) < 2 {
		return doc
	}
	return "---\n" + strings.Join(append(items[1:], items[0]), "")
}

// serverCertSerial returns the serial number of the certificate the TLS
// listener at addr presents to a client holding client.
func serverCertSerial(addr string, client nodeCert, roots string) (string, error) {
	pair, err := tls.LoadX509KeyPair(client.Cert, client.Key)
	if err != nil {
		return "", err
	}
	pem, err := os.ReadFile(roots)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func fileSerial(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber.String()
}

// TestReloadCertificate replaces a node's certificate and key on disk
// while a TLS link to it is established: new handshakes get the new
// certificate (through the file watch, then again through reload), and
// the established link is the same session throughout.
func TestReloadCertificate(t *testing.T) {
	ca := newCA(t)
	a, b := NewNode(t, "a"), NewNode(t, "b")
	// a's certificate and key live in a directory of their own, replaced
	// in place as a renewal would.
	tlsDir := filepath.Join(a.Dir, "tls")
	if err := os.Mkdir(tlsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	own := nodeCert{Cert: filepath.Join(tlsDir, "a.crt"), Key: filepath.Join(tlsDir, "a.key")}
	install := func(nc nodeCert) {
		t.Helper()
		for _, f := range [][2]string{{nc.Key, own.Key}, {nc.Cert, own.Cert}} {
			data, err := os.ReadFile(f[0])
			if err != nil {
				t.Fatal(err)
			}
			tmp := f[1] + ".new"
			if err := os.WriteFile(tmp, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, f[1]); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(ca.issue(t, "a"))
	a.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, append(ca.tlsItems(own),
			entity("tcp-listener", "port", strconv.Itoa(n.Port("mesh")), "bindaddr", "127.0.0.1", "tls", "srv"))...)
	}})
	bc := ca.issue(t, "b")
	b.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, append(ca.tlsItems(bc), entity("tcp-peer", "address", a.Addr("mesh"), "tls", "cli"))...)
	}})
	a.WaitRoutes(map[string]string{"b": "b"})
	probe := ca.issue(t, "probe")
	if got, err := serverCertSerial(a.Addr("mesh"), probe, ca.Cert); err != nil || got != fileSerial(t, own.Cert) {
		t.Fatalf("serial before renewal = %s, %v; want %s", got, err, fileSerial(t, own.Cert))
	}

	// Renewal on disk: the watch picks it up.
	renewed := ca.Issue(t, testkit.CertRequest{Name: "a-renewed", CommonName: "a", NodeIDs: []string{"a"},
		DNSNames: []string{"localhost"}, IPs: []string{"127.0.0.1"}})
	install(renewed)
	want := fileSerial(t, renewed.Cert)
	testkit.Eventually(t, convergeTimeout, "the listener presents the renewed certificate", func() error {
		got, err := serverCertSerial(a.Addr("mesh"), probe, ca.Cert)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("serial %s, want %s", got, want)
		}
		return nil
	})
	// The store swaps the certificates in, then logs: the line may come a
	// moment after the first handshake that presents the new certificate.
	testkit.Eventually(t, convergeTimeout, "the reload logged", func() error {
		if !a.LogContains("TLS certificates reloaded") {
			return fmt.Errorf("no reload logged:\n%s", a.logTail())
		}
		return nil
	})
	// A third node joins with the new certificate in place.
	c := NewNode(t, "c")
	cc := ca.issue(t, "c")
	c.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, append(ca.tlsItems(cc), entity("tcp-peer", "address", a.Addr("mesh"), "tls", "cli"))...)
	}})
	a.WaitKnownNodes("a", "b", "c")
	requireOneSession(t, a, "b", "after the certificate was renewed")

	// reload re-reads the files too (here: back to the first certificate).
	install(nodeCert{Cert: filepath.Join(ca.Dir, "a.crt"), Key: filepath.Join(ca.Dir, "a.key")})
	if got := a.Command("reload"); got != `{"Success":true}` {
		t.Fatalf("reload = %s", got)
	}
	first := fileSerial(t, own.Cert)
	if got, err := serverCertSerial(a.Addr("mesh"), probe, ca.Cert); err != nil || got != first {
		t.Errorf("serial after reload = %s, %v; want %s", got, err, first)
	}
	requireOneSession(t, a, "b", "after reload")
	requireOneSession(t, b, "a", "after reload (peer's log)")

	// A key that does not match the certificate is refused; the node
	// keeps serving the last good pair.
	if err := os.WriteFile(own.Key, mustRead(t, renewed.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := a.Command("reload"); !strings.Contains(got, `"Success":false`) || !strings.Contains(got, "ERRORCODE 4") {
		t.Errorf("reload with a mismatched key = %s", got)
	}
	if got, err := serverCertSerial(a.Addr("mesh"), probe, ca.Cert); err != nil || got != first {
		t.Errorf("serial after a refused reload = %s, %v; want %s", got, err, first)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestValidatePerProcess checks that validate refuses what each binary
// would refuse to start with, and takes files without -c.
func TestValidatePerProcess(t *testing.T) {
	dir := shortTempDir(t)
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	node := "---\n" + entity("node", "id", "v", "datadir", filepath.Join(dir, "data"))
	local := write("local.yaml", node+entity("local-only"))
	noBackends := write("nobackends.yaml", node+entity("grpc-server", "filename", filepath.Join(dir, "w.sock")))
	worker := write("worker.yaml", node+entity("grpc-server", "filename", filepath.Join(dir, "w.sock"))+
		entity("router", "address", "unix://"+filepath.Join(dir, "r.sock")))
	for _, tc := range []struct {
		bin  string
		args []string
		code int
		want string
	}{
		{"receptor", []string{"validate", local}, 0, "configuration is valid\n"},
		{"receptor", []string{"validate", noBackends}, 1, "Error: no backends configured"},
		{"receptor-router", []string{"validate", noBackends}, 1, "Error: no backends configured"},
		{"receptor-router", []string{"validate", local}, 0, "configuration is valid\n"},
		{"receptor-worker", []string{"validate", local}, 1, "Error: receptor-worker needs a router entity"},
		{"receptor-worker", []string{"validate", noBackends}, 1, "Error: receptor-worker needs a router entity"},
		{"receptor-worker", []string{"validate", worker}, 0, "configuration is valid\n"},
		{"receptor-worker", []string{"validate", "-c", worker}, 0, "configuration is valid\n"},
	} {
		res := runCommand(t, dir, tc.bin, "", tc.args...)
		if res.Code != tc.code || !strings.HasPrefix(res.Out, tc.want) {
			t.Errorf("%s %v: exit %d, output %q; want exit %d and %q", tc.bin, tc.args, res.Code, res.Out, tc.code, tc.want)
		}
		if res.Code == 0 && strings.Count(res.Out, "log-level") != 1 {
			t.Errorf("%s %v: want one log-level line:\n%s", tc.bin, tc.args, res.Out)
		}
	}
	help := runCommand(t, dir, "receptor", "", "--help")
	for _, want := range []string{"receptor validate [<file>...]", "receptor --embedded-config", "--config-v2 --config <file>"} {
		if !strings.Contains(help.Out, want) {
			t.Errorf("receptor --help lacks %q", want)
		}
	}
}

// TestCommandServiceBinary runs a command-service in the all-in-one
// binary and reaches it from another node with the control protocol's
// connect: the command's output comes back and the bridge ends with it.
func TestCommandServiceBinary(t *testing.T) {
	a, b := NewNode(t, "a"), NewNode(t, "b")
	a.Start(Spec{Bin: "receptor", Config: func(n *Node) string {
		return nodeYAML(n, nil, entity("tcp-listener", "port", strconv.Itoa(n.Port("mesh")), "bindaddr", "127.0.0.1"),
			entity("command-service", "service", "hello", "command", yamlQuote(`printf 'hello %s\n' mesh`)))
	}})
	b.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, entity("tcp-peer", "address", a.Addr("mesh")))
	}})
	b.WaitStatus("the command service advertised", func(s Status) bool {
		for _, ad := range s.Advertisements {
			if ad.NodeID == "a" && ad.Service == "hello" {
				return true
			}
		}
		return false
	})
	rc := b.Raw()
	defer rc.Close()
	rc.Send("connect a hello\n")
	if got := rc.Line(); got != "Connecting" {
		t.Fatalf("connect = %q", got)
	}
	var out bytes.Buffer
	for {
		line, err := rc.ReadLine()
		out.WriteString(line)
		if err != nil {
			break
		}
	}
	if got := out.String(); !strings.Contains(got, "hello mesh") {
		t.Errorf("command output = %q", got)
	}
}

// TestConfigV2Watch starts the all-in-one binary as upstream's v2 mode is
// started (--config-v2 --config FILE) and edits the file: the listener
// change is applied without a reload command, as upstream watches it.
func TestConfigV2Watch(t *testing.T) {
	a := NewNode(t, "a")
	v2 := func(n *Node, port string) string {
		return fmt.Sprintf("node:\n  id: %s\n  datadir: %s\nlog-level:\n  level: debug\ncontrol-services:\n  - service: control\n    filename: %s\ntcp-listeners:\n  - port: %d\n    bindaddr: 127.0.0.1\n",
			n.ID, filepath.Join(n.Dir, "data"), n.Socket, n.Port(port))
	}
	a.Start(Spec{Bin: "receptor", Config: func(n *Node) string { return v2(n, "one") }, Args: func(*Node) []string { return []string{"--config-v2"} }})
	waitAccepts(t, a.Addr("one"), true)
	if err := os.WriteFile(a.ConfigPath(), []byte(v2(a, "two")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitAccepts(t, a.Addr("two"), true)
	waitAccepts(t, a.Addr("one"), false)
}
