package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// startPair starts nodea (YAML, tcp listener) and nodeb (command line,
// dialing nodea) and waits for the mesh.
func startPair(t *testing.T) (a, b *Node) {
	t.Helper()
	a, b = NewNode(t, "nodea"), NewNode(t, "nodeb")
	a.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, asYAML(tcpTransport.listener(n))) }})
	b.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(a))...) }})
	a.WaitKnownNodes("nodea", "nodeb")
	a.WaitRoutes(map[string]string{"nodeb": "nodeb"})
	b.WaitRoutes(map[string]string{"nodea": "nodea"})
	a.WaitOwnService("control")
	b.WaitOwnService("control")
	return a, b
}

// WaitOwnService waits until the node lists its own advertisement of
// service: the control socket may answer a moment before the mesh
// listeners of the control services are up.
func (n *Node) WaitOwnService(service string) {
	n.t.Helper()
	n.WaitStatus("own service "+service+" advertised", func(s Status) bool {
		for _, ad := range s.Advertisements {
			if ad.NodeID == n.ID && ad.Service == service {
				return true
			}
		}
		return false
	})
}

// binVersion is what `--version` prints.
func binVersion(t *testing.T) string {
	t.Helper()
	res := runCommand(t, os.TempDir(), routerBin, "", "--version")
	if res.Code != 0 {
		t.Fatalf("--version: exit %d: %s", res.Code, res.Out)
	}
	return strings.TrimSpace(res.Out)
}

// exchange is one request and the exact reply lines it must produce.
type exchange struct {
	send string
	want []string
}

// runExchanges sends each request on one session and checks the replies
// byte for byte; a status afterwards proves no stray reply was queued.
func runExchanges(t *testing.T, n *Node, exs []exchange) {
	t.Helper()
	rc := n.Raw()
	defer rc.Close()
	for _, ex := range exs {
		rc.Send(ex.send)
		for _, w := range ex.want {
			if got := rc.Line(); got != w {
				t.Errorf("after %q: got %q, want %q", truncate(ex.send), got, w)
			}
		}
	}
	rc.Send(`{"command":"status","requested_fields":["NodeID"]}` + "\n")
	if got, want := rc.Line(), `{"NodeID":"`+n.ID+`"}`; got != want {
		t.Errorf("status after the exchanges: got %q, want %q", got, want)
	}
}

// stillServes requires a fresh session to answer status.
func stillServes(t *testing.T, n *Node) {
	t.Helper()
	if exited, err := n.Exited(); exited {
		t.Fatalf("node %s exited: %v", n.ID, err)
	}
	if got := n.Status(); got.NodeID != n.ID {
		t.Fatalf("status NodeID %q, want %q", got.NodeID, n.ID)
	}
}

// TestControlProtocol speaks the receptorctl protocol
// (docs/protocol.md §12.2-§12.4) with raw bytes against a real node.
func TestControlProtocol(t *testing.T) {
	t.Parallel()
	version := binVersion(t)
	a, _ := startPair(t)

	t.Run("greeting", func(t *testing.T) {
		rc := a.RawNoGreeting()
		defer rc.Close()
		line, err := rc.br.ReadString('\n')
		if err != nil || line != "Receptor Control, node nodea\n" {
			t.Fatalf("greeting %q, %v", line, err)
		}
	})

	t.Run("status keys", func(t *testing.T) {
		line := a.Command("status")
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("status reply %q: %v", truncate(line), err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		want := "Advertisements Connections KnownConnectionCosts NodeID RoutingTable SystemCPUCount SystemMemoryMiB Version"
		if strings.Join(keys, " ") != want {
			t.Errorf("status keys %v, want %s", keys, want)
		}
		// Keys are written sorted, with no whitespace.
		if !regexp.MustCompile(`^\{"Advertisements":\[.*\],"Connections":\[\{"NodeID":"nodeb","Cost":1\}\],"KnownConnectionCosts":\{.*\},"NodeID":"nodea","RoutingTable":\{"nodeb":"nodeb"\},"SystemCPUCount":\d+,"SystemMemoryMiB":\d+,"Version":"[^"]*"\}$`).MatchString(line) {
			t.Errorf("status reply layout: %s", line)
		}
		if !strings.Contains(line, `{"NodeID":"nodea","Service":"control","Time":"`) ||
			!strings.Contains(line, `"ConnType":1,"Tags":{"type":"Control Service"},"WorkCommands":null}`) {
			t.Errorf("status: control service advertisement missing or out of member order: %s", line)
		}
	})

	t.Run("status requested_fields", func(t *testing.T) {
		runExchanges(t, a, []exchange{
			{`{"command":"status","requested_fields":["Version","NodeID","bogus"]}` + "\n",
				[]string{`{"NodeID":"nodea","Version":"` + version + `"}`}},
			{`{"command":"status","requested_fields":[]}` + "\n", []string{`{}`}},
			{`{"command":"status","requested_fields":["Version",5]}` + "\n",
				[]string{`ERROR: each element of requested_fields must be a string`}},
			{"STATUS extra\n", []string{"ERROR: status command does not take parameters"}},
		})
	})

	t.Run("ping", func(t *testing.T) {
		checkPing(t, a, "nodeb")
		runExchanges(t, a, []exchange{
			{"ping\n", []string{"ERROR: no ping target"}},
			{`{"command":"ping","target":5}` + "\n", []string{"ERROR: ping target must be string"}},
		})
		m := pingRE.FindStringSubmatch(a.Command("ping localhost"))
		if m == nil || m[1] != "nodea" {
			t.Errorf("ping localhost: got %v, want a success from nodea", m)
		}
	})

	// Slow failures run in parallel, after the other subtests.
	t.Run("ping unknown node", func(t *testing.T) {
		t.Parallel()
		got := a.Command(`{"command":"ping","target":"nodex"}`)
		if want := `{"Error":"no route to node","Success":false}`; got != want {
			t.Errorf("ping nodex: got %s, want %s", got, want)
		}
	})

	t.Run("connect unknown node", func(t *testing.T) {
		t.Parallel()
		got := a.Command("connect nodex control ")
		if !strings.HasPrefix(got, "ERROR: ") || !strings.Contains(got, "no route to node") {
			t.Errorf("connect nodex control: got %q, want an ERROR line with no route to node", got)
		}
	})

	t.Run("traceroute", func(t *testing.T) {
		checkTraceroute(t, a, "nodeb", "nodea", "nodeb")
		runExchanges(t, a, []exchange{
			{"traceroute\n", []string{"ERROR: no traceroute target"}},
		})
	})

	t.Run("connect", func(t *testing.T) {
		rc := a.Raw()
		defer rc.Close()
		rc.Send("connect nodeb control \n")
		if got := rc.Line(); got != "Connecting" {
			t.Fatalf("connect: got %q, want Connecting", got)
		}
		if got := rc.Line(); got != "Receptor Control, node nodeb" {
			t.Fatalf("after Connecting: got %q, want nodeb's greeting", got)
		}
		rc.Send(`{"command":"status","requested_fields":["NodeID"]}` + "\n")
		if got := rc.Line(); got != `{"NodeID":"nodeb"}` {
			t.Errorf("status through the bridge: got %q", got)
		}
		rc.CloseWrite()
		rc.ExpectEOF()

		local := a.Raw()
		defer local.Close()
		local.Send("connect localhost control\n")
		if got := local.Line(); got != "Connecting" {
			t.Fatalf("connect localhost: got %q", got)
		}
		if got := local.Line(); got != "Receptor Control, node nodea" {
			t.Fatalf("connect localhost: got %q, want own greeting", got)
		}

		runExchanges(t, a, []exchange{
			{"connect nodeb\n", []string{"ERROR: no connect target"}},
			{"connect a b c d\n", []string{"ERROR: too many parameters"}},
			{"connect nodeb control x\n", []string{"ERROR: unknown TLS config x"}},
			{`{"command":"connect","node":"nodeb"}` + "\n", []string{"ERROR: no connect target service"}},
		})
	})

	t.Run("malformed", func(t *testing.T) {
		runExchanges(t, a, []exchange{
			{"foo\n", []string{"ERROR: Unknown command"}},
			{"\n", nil},
			{"\r\n", nil},
			{"{bad json\n", []string{
				"ERROR: invalid character 'b' looking for beginning of object key string",
				"ERROR: Unknown command"}},
			{`{"nocommand":1}` + "\n", []string{"ERROR: JSON did not contain a command", "ERROR: Unknown command"}},
			{`{"command":5}` + "\n", []string{"ERROR: command must be a string", "ERROR: Unknown command"}},
			{`{"command":"WORK","subcommand":"list"}` + "\n", []string{"ERROR: Unknown command"}},
			// Every \r is dropped wherever it appears.
			{"sta\rtus\r extra\r\n", []string{"ERROR: status command does not take parameters"}},
		})
	})

	t.Run("oversized line", func(t *testing.T) {
		rc := a.Raw()
		defer rc.Close()
		// Written by a goroutine: the node may stop reading (and close)
		// before the line is complete.
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			big := strings.Repeat("x", 4<<20) + "\n"
			_, _ = rc.conn.Write([]byte(big))
		}()
		line, err := rc.ReadLine()
		if err == nil && !strings.HasPrefix(line, "ERROR: ") {
			t.Errorf("oversized line: reply %q, want an ERROR line or a closed session", truncate(line))
		}
		rc.Close()
		wg.Wait()
		stillServes(t, a)
	})

	t.Run("binary garbage", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, prefix := range []string{"", "{", "work ", "connect "} {
			rc := a.Raw()
			garbage := make([]byte, 64<<10)
			for i := range garbage {
				garbage[i] = byte(rng.UintN(256))
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = rc.conn.Write(append([]byte(prefix), garbage...))
				_ = rc.conn.(interface{ CloseWrite() error }).CloseWrite()
			}()
			// Every reply must be an ERROR line, JSON, or the connect
			// reply; the node must end the session at EOF.
			for {
				line, err := rc.ReadLine()
				if err != nil {
					if line != "" && !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("garbage %q: partial reply %q", prefix, truncate(line))
					}
					if errors.Is(err, os.ErrDeadlineExceeded) {
						t.Errorf("garbage %q: session not ended after EOF", prefix)
					}
					break
				}
				if !strings.HasPrefix(line, "ERROR: ") && !json.Valid([]byte(line)) {
					t.Errorf("garbage %q: unexpected reply %q", prefix, truncate(line))
				}
			}
			rc.Close()
			wg.Wait()
		}
		stillServes(t, a)
	})

	t.Run("concurrent sessions", func(t *testing.T) {
		const sessions, commands = 32, 10
		errs := make(chan error, sessions)
		var wg sync.WaitGroup
		for range sessions {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
				defer cancel()
				c, err := a.Dial(ctx)
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				for range commands {
					var st struct{ NodeID string }
					if err := c.CommandJSON(ctx, map[string]any{"command": "status", "requested_fields": []string{"NodeID"}}, &st); err != nil || st.NodeID != "nodea" {
						errs <- fmt.Errorf("status: %+v, %v", st, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("client vanishes", func(t *testing.T) {
		for _, send := range []string{
			"stat",                                  // half a line
			"status\n",                              // reply never read
			strings.Repeat("status\n", 200),         // many replies never read
			"connect nodeb control \n",              // bridge dropped at once
			"connect nodeb control \nstatus\n",      // bridge dropped mid-use
			"traceroute nodeb\nping nodeb\n",        // slow commands in flight
			`{"command":"status","requested_fi`,     // half a JSON line
			"work submit localhost echo\nsome data", // payload cut off
		} {
			rc := a.Raw()
			rc.Send(send)
			rc.Close()
		}
		stillServes(t, a)
		runExchanges(t, a, []exchange{{"foo\n", []string{"ERROR: Unknown command"}}})
	})
}

// TestReload checks the reload command: a config change of a tcp-peer
// takes effect, a non-reloadable change is refused with ERRORCODE 3, and a
// node started without -c refuses with ERRORCODE 4.
func TestReload(t *testing.T) {
	t.Parallel()
	r, s := NewNode(t, "noder"), NewNode(t, "nodes")
	s.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.listener(n))...) }})
	// r first dials a port nothing listens on.
	dead := freePort(t)
	peerTo := "127.0.0.1:" + strconv.Itoa(dead)
	r.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, entity("tcp-peer", "address", peerTo))
	}})
	if st := r.Status(); st.ConnectedTo("nodes") {
		t.Fatalf("noder connected to nodes before the reload: %v", st)
	}

	// Change the tcp-peer to nodes' listener.
	peerTo = s.Addr("mesh")
	if err := os.WriteFile(r.ConfigPath(), []byte(r.spec.Config(r)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := r.Command("reload"); got != `{"Success":true}` {
		t.Fatalf("reload: got %q", got)
	}
	r.WaitRoutes(map[string]string{"nodes": "nodes"})
	s.WaitRoutes(map[string]string{"noder": "noder"})
	checkPing(t, r, "nodes")

	// Add a control service: not reloadable.
	cfg := r.spec.Config(r) + entity("control-service", "service", "ctl2", "filename", r.Socket+"2")
	if err := os.WriteFile(r.ConfigPath(), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	want := `{"Error":"a non-reloadable config action 'control-service' was modified or added. Must restart receptor for these changes to take effect ERRORCODE 3","Success":false}`
	if got := r.Command(`{"command":"reload"}`); got != want {
		t.Errorf("reload with an added control-service:\n got %s\nwant %s", got, want)
	}
	// The refused reload changed nothing.
	checkPing(t, r, "nodes")

	// Remove the control service r started with: not reloadable either.
	cfg = strings.Replace(r.spec.Config(r), entity("control-service", "service", "control", "filename", r.Socket), "", 1)
	if err := os.WriteFile(r.ConfigPath(), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	want = `{"Error":"a non-reloadable config action 'control-service' was removed. Must restart receptor for changes to take effect ERRORCODE 3","Success":false}`
	if got := r.Command("reload"); got != want {
		t.Errorf("reload with the control-service removed:\n got %s\nwant %s", got, want)
	}

	// A file that no longer parses: code 4, nothing changed.
	if err := os.WriteFile(r.ConfigPath(), []byte("- node: [unclosed\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got := r.Command("reload")
	if !regexp.MustCompile(`^\{"Error":".+ ERRORCODE 4","Success":false\}$`).MatchString(got) {
		t.Errorf("reload of a broken file: got %s, want an ERRORCODE 4 failure", got)
	}
	checkPing(t, r, "nodes")

	// Started from the command line alone: reload re-reads those entities
	// (upstream refuses with ERRORCODE 4; docs/protocol.md M20), finds
	// nothing changed and succeeds.
	want = `{"Success":true}`
	if got := s.Command("reload"); got != want {
		t.Errorf("reload of a command-line-only node:\n got %s\nwant %s", got, want)
	}
	stillServes(t, s)
}
