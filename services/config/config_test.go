package config

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testLoader has a fixed host name and a quiet logger.
func testLoader(host string) *Loader {
	return New(Options{
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Hostname: func() (string, error) { return host, nil },
	})
}

func mustLoadFile(t *testing.T, path string, env ...string) *Config {
	t.Helper()
	c, err := testLoader("testhost").LoadFile(path, env)
	if err != nil {
		t.Fatalf("LoadFile(%s): %v", path, err)
	}
	return c
}

func orderNames(c *Config) []string {
	var out []string
	for _, r := range c.Order {
		out = append(out, r.Entity)
	}
	return out
}

func TestPytestMeshDefinitions(t *testing.T) {
	n1 := mustLoadFile(t, "testdata/mesh1/node1.yaml")
	if n1.Node.ID != "node1" || n1.Node.DataDir != "/tmp/receptor" || n1.LogLevel != "info" {
		t.Errorf("mesh1 node1: node %+v log-level %q", n1.Node, n1.LogLevel)
	}
	if got, want := orderNames(n1), []string{"node", "tcp-listener", "control-service", "tcp-server", "tls-server", "control-service"}; !reflect.DeepEqual(got, want) {
		t.Errorf("mesh1 node1 order = %v, want %v", got, want)
	}
	if len(n1.ControlServices) != 2 {
		t.Fatalf("mesh1 node1: %d control services", len(n1.ControlServices))
	}
	wantCS := []ControlService{
		{Service: "control", Filename: "/tmp/receptorctltest/mesh1/node1.sock", Permissions: 0o600},
		{Service: "ctltls", Permissions: 0o600, TCPListen: "11113", TCPTLS: "tlsserver"},
	}
	if !reflect.DeepEqual(n1.ControlServices, wantCS) {
		t.Errorf("control services = %+v, want %+v", n1.ControlServices, wantCS)
	}
	wantTS := TCPServer{Port: 11112, BindAddr: "0.0.0.0", RemoteNode: "localhost", RemoteService: "control"}
	if !reflect.DeepEqual(n1.TCPServers, []TCPServer{wantTS}) {
		t.Errorf("tcp-server = %+v", n1.TCPServers)
	}
	if s, ok := n1.TLSServerByName("tlsserver"); !ok || !s.RequireClientCert || s.ClientCAs != "/tmp/receptorctltest/mesh1/ca.crt" {
		t.Errorf("tls-server = %+v", s)
	}
	if l := n1.TCPListeners; len(l) != 1 || l[0].Port != 11111 || l[0].Cost != 1 || l[0].BindAddr != "0.0.0.0" {
		t.Errorf("tcp-listener = %+v", l)
	}

	n2 := mustLoadFile(t, "testdata/mesh1/node2.yaml")
	if p := n2.TCPPeers; len(p) != 1 || p[0].Address != "localhost:11111" || !p[0].Redial || p[0].Cost != 1 {
		t.Errorf("mesh1 node2 tcp-peer = %+v", p)
	}

	n3 := mustLoadFile(t, "testdata/mesh1/node3.yaml")
	if len(n3.WorkCommands) != 2 {
		t.Fatalf("mesh1 node3: %d work commands", len(n3.WorkCommands))
	}
	if w := n3.WorkCommands[0]; w.WorkType != "sleep" || w.Command != "bash" || !w.AllowRuntimeParams ||
		w.Params != "-c \"read N_ITER; for i in `seq 1 $N_ITER`; do echo $((${N_ITER}-${i}+1)) 'remaining'; sleep 1; done\"" {
		t.Errorf("work-command sleep = %+v", w)
	}
	if w := n3.WorkCommands[1]; w.WorkType != "echo-uppercase" || w.AllowRuntimeParams {
		t.Errorf("work-command echo-uppercase (workType key) = %+v", w)
	}
	if n3.HasBackends() != true || n1.HasBackends() != true {
		t.Error("pytest nodes should have backends")
	}

	a1 := mustLoadFile(t, "testdata/access_control/node1.yaml")
	if a1.LogLevel != "debug" {
		t.Errorf("access_control node1 log level = %q", a1.LogLevel)
	}
	if a1.WorkSigning == nil || a1.WorkSigning.TokenExpiration != 10*time.Hour+30*time.Minute ||
		a1.WorkSigning.PrivateKey != "/tmp/receptorctltest/access_control/signwork_key" {
		t.Errorf("work-signing = %+v", a1.WorkSigning)
	}
	if a1.WorkVerification == nil || a1.WorkVerification.PublicKey != "/tmp/receptorctltest/access_control/signwork_key.pub" {
		t.Errorf("work-verification = %+v", a1.WorkVerification)
	}
	if len(a1.WorkCommands) != 2 || !a1.WorkCommands[0].VerifySignature || a1.WorkCommands[1].VerifySignature ||
		a1.WorkCommands[1].WorkType != "unsigned-echo" {
		t.Errorf("work commands = %+v", a1.WorkCommands)
	}
	for _, f := range []string{"testdata/access_control/node2.yaml", "testdata/access_control/node3.yaml"} {
		c := mustLoadFile(t, f)
		if len(c.TCPPeers) != 1 || len(c.ControlServices) != 1 || c.LogLevel != "debug" {
			t.Errorf("%s: %+v", f, c)
		}
	}
}

func TestMeshSpecExample(t *testing.T) {
	// The example in testdata/spec/mesh-17.1.yaml (upstream's v1 syntax,
	// every backend kind) references a tls-client "cli" that it never defines:
	// it parses, but cannot start.
	_, err := testLoader("h").LoadFile("testdata/spec/mesh-17.1.yaml", nil)
	if want := "testdata/spec/mesh-17.1.yaml: item 6: ws-peer: tls: unknown TLS config cli"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	c := mustLoadFile(t, "testdata/spec/mesh-17.1-complete.yaml")
	if c.Node.ID != "node-a" || c.LogLevel != "debug" {
		t.Errorf("node %+v level %q", c.Node, c.LogLevel)
	}
	if want := []map[string]string{{"action": "reject", "fromnode": "/bad.*/"}}; !reflect.DeepEqual(c.Node.FirewallRules, want) {
		t.Errorf("firewall rules = %v", c.Node.FirewallRules)
	}
	if l := c.TCPListeners[0]; l.Port != 27199 || l.TLS != "srv" || !reflect.DeepEqual(l.NodeCost, map[string]float64{"node-b": 2.5}) {
		t.Errorf("tcp-listener = %+v", l)
	}
	if p := c.WSPeers[0]; p.Address != "wss://hub.example.com:443/receptor" || p.ExtraHeader != "Authorization: Bearer xyz" || p.TLS != "cli" || !p.Redial {
		t.Errorf("ws-peer = %+v", p)
	}
	if u := c.UDPListeners[0]; u.Port != 27198 || u.BindAddr != "0.0.0.0" {
		t.Errorf("udp-listener = %+v", u)
	}
	if s := c.TLSServers[0]; !s.RequireClientCert || s.SkipReceptorNamesCheck || s.MinTLS13 {
		t.Errorf("tls-server = %+v", s)
	}
}

func TestAllEntitiesV1(t *testing.T) {
	fp32 := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	c := mustLoadFile(t, "testdata/spec/all-entities-v1.yaml")
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("node", c.Node, Node{ID: "hub", DataDir: "/var/lib/receptor", MaxIdleConnectionTimeout: 90 * time.Second,
		FirewallRules: []map[string]string{{"action": "reject", "fromnode": "/bad.*/"}, {"action": "accept", "toservice": "control"}}})
	check("log-level", c.LogLevel, "debug")
	check("trace", c.Trace, true)
	check("local-only", c.LocalOnly, true)
	check("tls-server", c.TLSServers, []TLSServer{{Name: "srv", Cert: "/etc/receptor/hub.crt", Key: "/etc/receptor/hub.key",
		ClientCAs: "/etc/receptor/ca.crt", RequireClientCert: true, PinnedClientCert: []string{fp32}, MinTLS13: true}})
	check("tls-client", c.TLSClients, []TLSClient{{Name: "cli", InsecureSkipVerify: true, PinnedServerCert: []string{strings.Repeat("01", 64), strings.ToLower(fp32)}}})
	check("tcp-listener", c.TCPListeners, []TCPListener{{Port: 27199, BindAddr: "0.0.0.0", TLS: "srv", Cost: 2,
		NodeCost: map[string]float64{"node-b.example.com": 2.5}, AllowedPeers: []string{"node-b", "node-c"}}})
	check("tcp-peer", c.TCPPeers, []TCPPeer{{Address: "hub2.example.com:27199", TLS: "cli", Cost: 2}})
	check("udp-listener", c.UDPListeners, []UDPListener{{Port: 0x6A2E, BindAddr: "0.0.0.0", Cost: 1}})
	check("udp-peer", c.UDPPeers, []UDPPeer{{Address: "10.0.0.2:27198", Redial: true, Cost: 1}})
	check("ws-listener", c.WSListeners, []WSListener{{Port: 8080, BindAddr: "0.0.0.0", Path: "/receptor", TLS: "srv", Cost: 1}})
	check("ws-peer", c.WSPeers, []WSPeer{{Address: "wss://hub.example.com:443/receptor", Redial: true,
		ExtraHeader: "Authorization: Bearer xyz", TLS: "cli", Cost: 1}})
	check("control-service", c.ControlServices, []ControlService{{Service: "control", Filename: "/run/receptor/receptor.sock",
		Permissions: 0o660, TLS: "srv", TCPListen: "127.0.0.1:27180", TCPTLS: "srv"}})
	check("tcp-server", c.TCPServers, []TCPServer{{Port: 11112, BindAddr: "0.0.0.0", RemoteNode: "localhost",
		RemoteService: "control", TLSServer: "srv", TLSClient: "cli"}})
	check("tcp-client", c.TCPClients, []TCPClient{{Service: "web", Address: "127.0.0.1:80", TLSServer: "srv"}})
	check("udp-server", c.UDPServers, []UDPServer{{Port: 5353, BindAddr: "0.0.0.0", RemoteNode: "node-b", RemoteService: "dns"}})
	check("udp-client", c.UDPClients, []UDPClient{{Service: "dns", Address: "127.0.0.1:53"}})
	check("unix-socket-server", c.UnixSocketServers, []UnixSocketServer{{Filename: "/run/receptor/proxy.sock",
		Permissions: 0o660, RemoteNode: "node-b", RemoteService: "control", TLS: "cli"}})
	check("unix-socket-client", c.UnixSocketClients, []UnixSocketClient{{Service: "sock", Filename: "/run/app.sock", TLS: "srv"}})
	check("ip-router", c.IPRouters, []IPRouter{{NetworkName: "ipnet", Interface: "tun7", LocalNet: "10.1.0.0/30", Routes: "10.2.0.0/16,10.3.0.0/24"}})
	check("command-service", c.CommandServices, []CommandService{{Service: "shell", Command: "/bin/bash"}})
	check("work-signing", c.WorkSigning, &WorkSigning{PrivateKey: "/etc/receptor/signing.pem", TokenExpiration: 5 * time.Minute})
	check("work-verification", c.WorkVerification, &WorkVerification{PublicKey: "/etc/receptor/signing.pub"})
	check("work-command", c.WorkCommands, []WorkCommand{{WorkType: "echo", Command: "cat", Params: "-n", AllowRuntimeParams: true, VerifySignature: true}})
	check("work-kubernetes", c.WorkKubernetes, []WorkKubernetes{{WorkType: "kube", Namespace: "awx", Image: "quay.io/ansible/awx-ee",
		AuthMethod: "InCluster", StreamMethod: "tcp",
		RetryInitial: 250 * time.Millisecond, RetryMax: 10 * time.Second, RetryTimeout: 2 * time.Minute, ReapInterval: 5 * time.Minute}})
	check("work-python", c.WorkPython, []WorkPython{{WorkType: "py", Plugin: "receptor_demo", Function: "run",
		Config: map[string]any{"depth": 3, "names": []any{"a", "b"}}}})
	check("grpc-server", c.GRPCServers, []GRPCServer{{Filename: "/run/receptor/grpc.sock", Permissions: 0o600, TCPListen: "27200", TLS: "srv"}})
	check("http-gateway", c.HTTPGateway, &HTTPGateway{TCPListen: "127.0.0.1:8443", TLS: "srv"})
	check("work-agent", c.WorkAgent, &WorkAgent{Address: "unix:///run/receptor/worker.sock"})
	check("router", c.Router, &RouterEndpoint{Address: "hub.example.com:27200", TLSClient: "cli"})
	if len(c.Order) != 30 || c.Order[0].Entity != "node" || c.Order[29].Entity != "router" || c.Order[29].Source != "testdata/spec/all-entities-v1.yaml" {
		t.Errorf("order = %+v", c.Order)
	}
	if s := c.Summary(); !strings.Contains(s, "node: id=hub") || !strings.Contains(s, "work-command: 1") {
		t.Errorf("summary:\n%s", s)
	}
}

func TestV2Form(t *testing.T) {
	c := mustLoadFile(t, "testdata/spec/v2.yaml")
	if c.Node.ID != "hub" || c.LogLevel != "info" || !c.Trace || !c.LocalOnly {
		t.Errorf("node %+v level %q trace %v local-only %v", c.Node, c.LogLevel, c.Trace, c.LocalOnly)
	}
	if want := []map[string]string{{"action": "drop", "fromservice": "/x.*/"}}; !reflect.DeepEqual(c.Node.FirewallRules, want) {
		t.Errorf("firewall = %v", c.Node.FirewallRules)
	}
	// v2 defaulting: cost 0 → 1, empty bindaddr → 0.0.0.0, redial forced on.
	if l := c.TCPListeners[0]; l.Cost != 1 || l.BindAddr != "0.0.0.0" || l.TLS != "srv" {
		t.Errorf("tcp-listener = %+v", l)
	}
	if len(c.TCPPeers) != 2 || !c.TCPPeers[0].Redial || c.TCPPeers[1].TLS != "cli" {
		t.Errorf("tcp-peers = %+v", c.TCPPeers)
	}
	counts := map[string]int{"tls-server": len(c.TLSServers), "tls-client": len(c.TLSClients), "udp-listener": len(c.UDPListeners),
		"ws-listener": len(c.WSListeners), "udp-peer": len(c.UDPPeers), "ws-peer": len(c.WSPeers),
		"control-service": len(c.ControlServices), "work-command": len(c.WorkCommands), "work-kubernetes": len(c.WorkKubernetes),
		"tcp-server": len(c.TCPServers), "tcp-client": len(c.TCPClients), "udp-server": len(c.UDPServers), "udp-client": len(c.UDPClients),
		"unix-socket-server": len(c.UnixSocketServers), "unix-socket-client": len(c.UnixSocketClients), "ip-router": len(c.IPRouters),
		"grpc-server": len(c.GRPCServers)}
	for k, n := range counts {
		want := 1
		if k == "control-service" {
			want = 2
		}
		if n != want {
			t.Errorf("%s: %d entries, want %d", k, n, want)
		}
	}
	if c.WorkCommands[0].WorkType != "echo" || c.WorkSigning.TokenExpiration != time.Hour || c.WorkVerification.PublicKey != "/k.pub" {
		t.Errorf("work: %+v %+v %+v", c.WorkCommands, c.WorkSigning, c.WorkVerification)
	}
	if c.HTTPGateway.TCPListen != "8080" || c.WorkAgent.Address != "unix:///tmp/worker.sock" || c.ControlServices[1].TCPListen != "11113" {
		t.Errorf("http-gateway %+v work-agent %+v", c.HTTPGateway, c.WorkAgent)
	}
	// Registry order: node, log-level, trace, local-only, TLS, backends ...
	if got := orderNames(c)[:5]; !reflect.DeepEqual(got, []string{"node", "log-level", "trace", "local-only", "tls-server"}) {
		t.Errorf("order starts %v", got)
	}
	// --config-v2 reads the same file the same way.
	c2, err := testLoader("h").ParseArgs([]string{"--config-v2", "testdata/spec/v2.yaml"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c2.Order, c.Order) || !c2.V2 {
		t.Errorf("--config-v2 order differs: %+v (V2 %v)", c2.Order, c2.V2)
	}
	// Upstream's form: a bare switch anywhere, with --config FILE.
	for _, args := range [][]string{
		{"--config-v2", "--config", "testdata/spec/v2.yaml"},
		{"--config", "testdata/spec/v2.yaml", "--config-v2"},
	} {
		c3, err := testLoader("h").ParseArgs(args, nil)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !reflect.DeepEqual(c3.Order, c.Order) || !c3.V2 || !reflect.DeepEqual(c3.Sources, []string{"testdata/spec/v2.yaml"}) {
			t.Errorf("%v: order %+v V2 %v sources %v", args, c3.Order, c3.V2, c3.Sources)
		}
	}
	// Without a file, upstream's default $HOME/receptor.yaml.
	home := t.TempDir()
	data, err := os.ReadFile("testdata/spec/v2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "receptor.yaml"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	c4, err := testLoader("h").ParseArgs([]string{"--config-v2"}, []string{"HOME=" + home})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(orderNames(c4), orderNames(c)) || c4.Sources[0] != filepath.Join(home, "receptor.yaml") {
		t.Errorf("--config-v2 alone: order %+v sources %v", c4.Order, c4.Sources)
	}
	if _, err := testLoader("h").ParseArgs([]string{"--config-v2"}, nil); err == nil {
		t.Error("--config-v2 without a file or HOME loaded")
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(t *testing.T, c *Config)
	}{
		{"no args is help", nil, func(t *testing.T, c *Config) {
			if !c.Help {
				t.Error("Help not set")
			}
		}},
		{"help", []string{"--node", "id=a", "-h"}, func(t *testing.T, c *Config) {
			if !c.Help {
				t.Error("Help not set")
			}
		}},
		{"bash completion", []string{"--bash-completion"}, func(t *testing.T, c *Config) {
			if !c.BashCompletion {
				t.Error("BashCompletion not set")
			}
		}},
		{"version", []string{"--version"}, func(t *testing.T, c *Config) {
			if c.Exclusive == nil || c.Exclusive.Name != "version" || c.Node.ID != "" || len(c.Order) != 1 {
				t.Errorf("exclusive %+v node %+v", c.Exclusive, c.Node)
			}
		}},
		{"entities, case-insensitive, bare values", []string{"--Node", "ID=a", "-TCP-Listener", "2222", "--tcp-peer", "x:1", "--tcp-peer", "address=y:2", "cost=2.5"},
			func(t *testing.T, c *Config) {
				if c.Node.ID != "a" || c.TCPListeners[0].Port != 2222 || len(c.TCPPeers) != 2 || c.TCPPeers[0].Address != "x:1" ||
					c.TCPPeers[1].Address != "y:2" || c.TCPPeers[1].Cost != 2.5 {
					t.Errorf("%+v", c)
				}
			}},
		{"value split at first =", []string{"--ws-peer", "address=ws://h:1/?a=b", "extraheader=X-A:b=c"}, func(t *testing.T, c *Config) {
			if p := c.WSPeers[0]; p.Address != "ws://h:1/?a=b" || p.ExtraHeader != "X-A:b=c" {
				t.Errorf("%+v", p)
			}
		}},
		{"list append and JSON", []string{"--tcp-listener", "port=1", "allowedpeers=a", "allowedpeers=b", "nodecost={\"b\":2}",
			"--tcp-listener", "port=2", "allowedpeers=[\"x\",\"y\"]"}, func(t *testing.T, c *Config) {
			if l := c.TCPListeners; !reflect.DeepEqual(l[0].AllowedPeers, []string{"a", "b"}) || l[0].NodeCost["b"] != 2 ||
				!reflect.DeepEqual(l[1].AllowedPeers, []string{"x", "y"}) {
				t.Errorf("%+v", l)
			}
		}},
		{"octal permissions and bools", []string{"--control-service", "permissions=0660", "--tls-server", "name=s", "cert=c", "key=k",
			"requireclientcert=Y", "mintls13=False"}, func(t *testing.T, c *Config) {
			if c.ControlServices[0].Permissions != 0o660 || !c.TLSServers[0].RequireClientCert || c.TLSServers[0].MinTLS13 {
				t.Errorf("%+v %+v", c.ControlServices, c.TLSServers)
			}
		}},
		{"decimal permissions stay decimal", []string{"--control-service", "permissions=660"}, func(t *testing.T, c *Config) {
			if c.ControlServices[0].Permissions != 660 {
				t.Errorf("permissions = %d", c.ControlServices[0].Permissions)
			}
		}},
		{"implicit node from host name, log-level without value", []string{"--log-level", "--local-only"}, func(t *testing.T, c *Config) {
			if c.Node.ID != "testhost" || c.LogLevel != "error" || !c.LocalOnly || c.Order[0].Source != "implicit" {
				t.Errorf("node %+v level %q order %+v", c.Node, c.LogLevel, c.Order)
			}
		}},
		{"command runner (hidden)", []string{"--node", "id=worker", "--log-level", "info", "--command-runner", "command=/bin/echo",
			"params=a b", "unitdir=/tmp/u"}, func(t *testing.T, c *Config) {
			if c.CommandRunner == nil || *c.CommandRunner != (CommandRunner{Command: "/bin/echo", Params: "a b", UnitDir: "/tmp/u"}) {
				t.Errorf("%+v", c.CommandRunner)
			}
		}},
		{"cert-makereq", []string{"--cert-makereq", "commonname=n", "bits=2048", "outreq=r", "outkey=k", "nodeid=a", "nodeid=b",
			"ipaddress=127.0.0.1"}, func(t *testing.T, c *Config) {
			m := c.Exclusive.CertMakeReq
			if c.Exclusive.Name != "cert-makereq" || m == nil || !reflect.DeepEqual(m.NodeID, []string{"a", "b"}) || m.Bits != 2048 {
				t.Errorf("%+v", c.Exclusive)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := testLoader("testhost").ParseArgs(tc.args, nil)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tc.args, err)
			}
			tc.check(t, c)
		})
	}
}

func TestConfigOrderAcrossSources(t *testing.T) {
	dir := t.TempDir()
	f1 := filepath.Join(dir, "a.yaml")
	f2 := filepath.Join(dir, "b.yaml")
	if err := os.WriteFile(f1, []byte("- tcp-listener:\n    port: 2222\n- log-level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f2, []byte("tcp-peers:\n  - address: z:3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := testLoader("h").ParseArgs([]string{"--node", "id=a", "-c", f1, "--tcp-peer", "h:1", "--config", f2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []EntityRef{{"node", 0, ""}, {"tcp-listener", 0, f1}, {"log-level", 0, f1}, {"tcp-peer", 0, ""}, {"tcp-peer", 1, f2}}
	if !reflect.DeepEqual(c.Order, want) {
		t.Errorf("order = %+v, want %+v", c.Order, want)
	}
	if !reflect.DeepEqual(c.Sources, []string{f1, f2}) || c.TCPPeers[1].Address != "z:3" {
		t.Errorf("sources %v peers %+v", c.Sources, c.TCPPeers)
	}
	// A singleton repeated by a second file is reported at that file.
	_, err = testLoader("h").ParseArgs([]string{"-c", f1, "--config", f1}, nil)
	if want := f1 + ": item 2: only one log-level directive is allowed"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestYAMLValueConversion(t *testing.T) {
	tests := []struct {
		name, yaml string
		check      func(c *Config) bool
	}{
		{"octal int", "- control-service:\n    permissions: 0660", func(c *Config) bool { return c.ControlServices[0].Permissions == 0o660 }},
		{"octal string", "- control-service:\n    permissions: \"0660\"", func(c *Config) bool { return c.ControlServices[0].Permissions == 0o660 }},
		{"hex string", "- control-service:\n    permissions: \"0x1ff\"", func(c *Config) bool { return c.ControlServices[0].Permissions == 0o777 }},
		{"0o string", "- control-service:\n    permissions: \"0o640\"", func(c *Config) bool { return c.ControlServices[0].Permissions == 0o640 }},
		{"int to string", "- http-gateway:\n    tcplisten: 11113", func(c *Config) bool { return c.HTTPGateway.TCPListen == "11113" }},
		{"control idle timeout", "- control-service:\n    filename: /s\n    idletimeout: 90s", func(c *Config) bool { return c.ControlServices[0].IdleTimeout == 90*time.Second }},
		{"float to string", "- work-command:\n    worktype: w\n    command: c\n    params: 1.5", func(c *Config) bool { return c.WorkCommands[0].Params == "1.500000" }},
		{"bool to string", "- work-command:\n    worktype: w\n    command: c\n    params: yes", func(c *Config) bool { return c.WorkCommands[0].Params == "true" }},
		{"yaml 1.1 bools", "- tcp-peer:\n    address: a:1\n    redial: off", func(c *Config) bool { return !c.TCPPeers[0].Redial }},
		{"bool words", "- tcp-peer:\n    address: a:1\n    redial: \"NO\"", func(c *Config) bool { return !c.TCPPeers[0].Redial }},
		{"int cost", "- tcp-peer:\n    address: a:1\n    cost: 3", func(c *Config) bool { return c.TCPPeers[0].Cost == 3 }},
		{"string cost", "- tcp-peer:\n    address: a:1\n    cost: \"0.5\"", func(c *Config) bool { return c.TCPPeers[0].Cost == 0.5 }},
		{"scalar list appends", "- tcp-peer:\n    address: a:1\n    allowedpeers: b", func(c *Config) bool {
			return reflect.DeepEqual(c.TCPPeers[0].AllowedPeers, []string{"b"})
		}},
		{"JSON map string", "- tcp-listener:\n    port: 1\n    nodecost: '{\"x\": 3}'", func(c *Config) bool { return c.TCPListeners[0].NodeCost["x"] == 3 }},
		{"JSON plugin config", "- work-python:\n    worktype: p\n    plugin: p\n    function: f\n    config: '{\"a\": [1]}'", func(c *Config) bool {
			return reflect.DeepEqual(c.WorkPython[0].Config, map[string]any{"a": []any{1.0}})
		}},
		{"bare string values", "- node: myid\n- log-level: WARNING\n- work-signing: /k.pem\n- trace", func(c *Config) bool {
			return c.Node.ID == "myid" && c.LogLevel == "warning" && c.WorkSigning.PrivateKey == "/k.pem" && c.Trace
		}},
		{"null params", "- node:\n- local-only:\n- control-service:", func(c *Config) bool {
			return c.Node.ID == "testhost" && c.LocalOnly && c.ControlServices[0].Service == "control"
		}},
		{"empty file", "", func(c *Config) bool { return c.Node.ID == "testhost" && len(c.Order) == 1 }},
		{"null value means unset", "- tcp-listener:\n    port: 1\n    bindaddr:", func(c *Config) bool { return c.TCPListeners[0].BindAddr == "0.0.0.0" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := testLoader("testhost").LoadV1("t.yaml", []byte(tc.yaml), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("unexpected result: %+v", c)
			}
		})
	}
}

func TestEnvironment(t *testing.T) {
	l := testLoader("testhost")
	env := []string{
		"PATH=/bin",
		"RECEPTOR_NODE_ID=envnode",
		"RECEPTOR_NODE_DATADIR=/var/env",
		"RECEPTOR_LOG_LEVEL=debug",
		"RECEPTOR_GRPC_SERVER_FILENAME=/run/g.sock",
		"RECEPTOR_GRPC_SERVER_1_FILENAME=/run/g2.sock",
		"RECEPTOR_TCP_LISTENER_ALLOWEDPEERS=[\"p\"]",
		"RECEPTOR_TRACE=true",
		"RECEPTOR_KUBE_CLIENTSET_QPS=10",      // not an entity: ignored
		"RECEPTOR_ROUTER_PORT=tcp://x:1",      // service link: ignored with a warning
		"RECEPTOR_NODE_SERVICE_HOST=10.0.0.1", // not a parameter shape: ignored
	}
	c, err := l.ParseArgs([]string{"--node", "id=cli", "datadir=/cli", "--log-level", "error", "--tcp-listener", "1", "allowedpeers=a", "allowedpeers=b"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.ID != "envnode" || c.Node.DataDir != "/var/env" || c.LogLevel != "debug" || !c.Trace {
		t.Errorf("node %+v level %q trace %v", c.Node, c.LogLevel, c.Trace)
	}
	if want := []GRPCServer{{Filename: "/run/g.sock", Permissions: 0o600}, {Filename: "/run/g2.sock", Permissions: 0o600}}; !reflect.DeepEqual(c.GRPCServers, want) {
		t.Errorf("grpc servers = %+v", c.GRPCServers)
	}
	if !reflect.DeepEqual(c.TCPListeners[0].AllowedPeers, []string{"p"}) {
		t.Errorf("env list should replace: %v", c.TCPListeners[0].AllowedPeers)
	}
	if c.Router != nil {
		t.Errorf("service link created a router entity: %+v", c.Router)
	}

	// Env-created implicit node with a file.
	c, err = l.LoadFile("testdata/mesh1/node2.yaml", []string{"RECEPTOR_NODE_ID=other", "RECEPTOR_LOCAL_ONLY=1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Node.ID != "other" || !c.LocalOnly {
		t.Errorf("node %+v local-only %v", c.Node, c.LocalOnly)
	}
	// Environment is not read for one-shot commands.
	c, err = l.ParseArgs([]string{"--version"}, []string{"RECEPTOR_NODE_ID=x"})
	if err != nil || c.Exclusive == nil {
		t.Errorf("version with env: %v %+v", err, c)
	}
	// Switching an entity off removes it.
	c, err = l.ParseArgs([]string{"--trace", "--local-only"}, []string{"RECEPTOR_TRACE=false"})
	if err != nil || c.Trace {
		t.Errorf("RECEPTOR_TRACE=false: %v %+v", err, c)
	}
}

func TestBadConfigs(t *testing.T) {
	type tc struct {
		name string
		args []string // command line; or
		v1   string   // v1 YAML as t.yaml; or
		v2   string   // v2 YAML as t.yaml
		env  []string
		host string
		want string
	}
	tests := []tc{
		{name: "cli bad int", args: []string{"--tcp-listener", "port=abc"}, want: `tcp-listener: port: "abc" is not a number`},
		{name: "cli unknown param", args: []string{"--tcp-listener", "prot=1"}, want: `tcp-listener: unknown parameter "prot"`},
		{name: "cli unknown entity", args: []string{"--tcp-lisener", "port=1"}, want: `unknown entity "tcp-lisener"`},
		{name: "cli required", args: []string{"--tcp-peer", "cost=1"}, want: `tcp-peer: required parameter missing: address`},
		{name: "cli required several", args: []string{"--tls-server"}, want: `tls-server: required parameters missing: name, cert, key`},
		{name: "cli param before entity", args: []string{"port=1"}, want: `parameter specified before command: "port=1"`},
		{name: "cli no bare", args: []string{"--tcp-server", "x"}, want: `tcp-server: command does not allow bare values (got "x")`},
		{name: "cli singleton", args: []string{"--node", "a", "--node", "b"}, want: `directive "node" is only allowed once`},
		{name: "cli exclusive", args: []string{"--node", "a", "--version"}, want: `cannot specify any other options with version`},
		{name: "cli lower-case y", args: []string{"--tcp-peer", "a:1", "redial=y"}, want: `tcp-peer: redial: "y" is not a boolean`},
		{name: "cli config without file", args: []string{"--config"}, want: `--config requires a file name`},
		{name: "cli missing file", args: []string{"-c", "testdata/nope.yaml"}, want: `testdata/nope.yaml: cannot read config file: open testdata/nope.yaml: no such file or directory`},
		{name: "idle timeout", args: []string{"--node", "id=a", "maxidleconnectiontimeout=5s"}, want: `node: maxidleconnectiontimeout: "5s" is below the minimum of 21s`},
		{name: "idle timeout syntax", args: []string{"--node", "id=a", "maxidleconnectiontimeout=5"}, want: `node: maxidleconnectiontimeout: "5" is not a valid duration`},
		{name: "localhost id", args: []string{"--node", "id=LocalHost"}, want: `node: id: node ID "localhost" is reserved`},
		{name: "localhost host name", args: []string{"--local-only"}, host: "localhost.localdomain", want: `node: no node ID specified and local host name is localhost`},
		{name: "log level", args: []string{"--log-level", "verbose"}, want: `log-level: level: "verbose" is not a valid log level name`},
		{name: "cost zero", args: []string{"--tcp-listener", "port=1", "cost=0"}, want: `tcp-listener: cost: 0 must be greater than 0`},
		{name: "nodecost negative", args: []string{"--tcp-listener", "port=1", "nodecost={\"b\":-1}"}, want: `tcp-listener: nodecost: b: -1 must be greater than 0`},
		{name: "service name too long", args: []string{"--tcp-client", "service=abcdefghi", "address=a:1"}, want: `tcp-client: service: "abcdefghi" is longer than 8 bytes (mesh service names are at most 8 bytes)`},
		{name: "unknown tls", args: []string{"--tcp-listener", "port=1", "tls=nope"}, want: `tcp-listener: tls: unknown TLS config nope`},
		{name: "tls of the wrong kind", args: []string{"--tls-client", "name=c", "cert=", "key=", "--tcp-listener", "port=1", "tls=c"}, want: `tcp-listener: tls: unknown TLS config c`},
		{name: "tcptls", args: []string{"--control-service", "tcplisten=1", "tcptls=x"}, want: `control-service: tcptls: unknown TLS config x`},
		{name: "tlsclient of work-agent", args: []string{"--work-agent", "address=h:1", "tlsclient=x"}, want: `work-agent: tlsclient: unknown TLS config x`},
		{name: "verifysignature", args: []string{"--work-command", "worktype=w", "command=c", "verifysignature=true"},
			want: `work-command: VerifySignature for work command 'w' is true, but the work verification public key is not specified`},
		{name: "token expiration", args: []string{"--work-signing", "privatekey=/k", "tokenexpiration=soon"},
			want: `work-signing: tokenexpiration: failed to parse TokenExpiration -- valid examples include '1.5h', '30m', '30m10s'`},
		{name: "tls client cert without key", args: []string{"--tls-client", "name=c", "cert=x", "key="}, want: `tls-client: cert and key must both be supplied or neither`},
		{name: "duplicate tls name", args: []string{"--tls-server", "name=s", "cert=c", "key=k", "--tls-server", "name=s", "cert=c", "key=k"}, want: `tls-server: name: duplicate TLS config name "s"`},
		{name: "fingerprint", args: []string{"--tls-server", "name=s", "cert=c", "key=k", "pinnedclientcert=AB:CD"}, want: `tls-server: pinnedclientcert: "AB:CD" is not a hex SHA-256 or SHA-512 fingerprint`},
		{name: "peer address", args: []string{"--tcp-peer", "nohost"}, want: `tcp-peer: address: "nohost" is not host:port`},
		{name: "ws address", args: []string{"--ws-peer", "http://x/"}, want: `ws-peer: address: "http://x/" is not a ws:// or wss:// URL`},
		{name: "extraheader", args: []string{"--ws-peer", "ws://x/", "extraheader=nocolon"}, want: `ws-peer: extraheader: "nocolon" is not Name:value`},
		{name: "control tcp without tls on all interfaces", args: []string{"--control-service", "tcplisten=11113"},
			want: `control-service: tcplisten: "11113": refusing to serve the control service without TLS on a non-loopback address; set tcptls to a tls-server name, or listen on 127.0.0.1`},
		{name: "control tcp without tls, empty host", args: []string{"--control-service", "tcplisten=:11113"}, want: `control-service: tcplisten: ":11113": refusing to serve the control service without TLS on a non-loopback address; set tcptls to a tls-server name, or listen on 127.0.0.1`},
		{name: "control tcp without tls, 0.0.0.0", args: []string{"--control-service", "tcplisten=0.0.0.0:11113"}, want: `control-service: tcplisten: "0.0.0.0:11113": refusing to serve the control service without TLS on a non-loopback address; set tcptls to a tls-server name, or listen on 127.0.0.1`},
		{name: "control tcp without tls, ::", args: []string{"--control-service", "tcplisten=[::]:11113"}, want: `control-service: tcplisten: "[::]:11113": refusing to serve the control service without TLS on a non-loopback address; set tcptls to a tls-server name, or listen on 127.0.0.1`},
		{name: "control tcp without tls, other host", args: []string{"--control-service", "tcplisten=10.1.2.3:11113"}, want: `control-service: tcplisten: "10.1.2.3:11113": refusing to serve the control service without TLS on a non-loopback address; set tcptls to a tls-server name, or listen on 127.0.0.1`},
		{name: "control idle timeout negative", args: []string{"--control-service", "filename=/s", "idletimeout=-1s"}, want: `control-service: idletimeout: "-1s" is negative`},
		{name: "control service without listeners", args: []string{"--control-service", "service="}, want: `control-service: no listeners specified`},
		{name: "grpc tcp without tls", args: []string{"--grpc-server", "tcplisten=9000"}, want: `grpc-server: tls: required with tcplisten: the TCP listener needs TLS with client certificates`},
		{name: "grpc without listeners", args: []string{"--grpc-server"}, want: `grpc-server: no listeners specified (set filename and/or tcplisten)`},
		{name: "http gateway required", args: []string{"--http-gateway"}, want: `http-gateway: required parameter missing: tcplisten`},
		{name: "router address", args: []string{"--router", "address=unix://relative"}, want: `router: address: "unix://relative" must be unix:///absolute/path or host:port`},
		{name: "port range", args: []string{"--tcp-listener", "70000"}, want: `tcp-listener: port: 70000 is out of range 0-65535`},
		{name: "ip-router localnet", args: []string{"--ip-router", "networkname=n", "localnet=10.0.0.0/24"}, want: `ip-router: localnet: "10.0.0.0/24" is not an IPv4 /30 CIDR`},
		{name: "kubernetes authmethod", args: []string{"--work-kubernetes", "worktype=k", "authmethod=magic"}, want: `work-kubernetes: authmethod: invalid AuthMethod: magic`},
		{name: "kubernetes namespace", args: []string{"--work-kubernetes", "worktype=k", "image=i"}, want: `work-kubernetes: must provide namespace when AuthMethod is not kubeconfig`},
		{name: "kubernetes stream", args: []string{"--work-kubernetes", "worktype=k", "image=i", "namespace=n", "streammethod=udp"}, want: `work-kubernetes: streammethod: stream mode must be logger or tcp`},
		{name: "makereq keys", args: []string{"--cert-makereq", "commonname=c", "outreq=r"}, want: `cert-makereq: must provide either InKey or OutKey`},
		{name: "makereq ip", args: []string{"--cert-makereq", "commonname=c", "outreq=r", "outkey=k", "bits=2048", "ipaddress=1.2.3"}, want: `cert-makereq: ipaddress: invalid IP address: 1.2.3`},
		{name: "makereq bits with inkey", args: []string{"--cert-makereq", "commonname=c", "outreq=r", "inkey=k", "bits=2048"}, want: `cert-makereq: cannot specify key bits when reading an already-existing key`},
		{name: "cert-init date", args: []string{"--cert-init", "commonname=c", "bits=0", "outcert=a", "outkey=b", "notafter=tomorrow"}, want: `cert-init: notafter: "tomorrow" is not an RFC 3339 date/time`},
		{name: "firewall rule key", args: []string{"--node", "id=a", `firewallrules=[{"action":"drop","fromhost":"x"}]`}, want: `node: firewallrules: rule 1: unknown key "fromhost"`},
		{name: "json list", args: []string{"--tcp-peer", "a:1", "allowedpeers=[1,"}, want: `tcp-peer: allowedpeers: "[1," is not a JSON list of strings`},

		{name: "yaml bad int", v1: "- node: a\n- tcp-listener:\n    port: 1\n- tcp-listener:\n    port: abc", want: `t.yaml: item 3: tcp-listener: port: "abc" is not a number`},
		{name: "yaml unknown param", v1: "- tcp-listener:\n    prot: 1", want: `t.yaml: item 1: tcp-listener: unknown parameter "prot"`},
		{name: "yaml unknown entity", v1: "- tcp-lisener:\n    port: 1", want: `t.yaml: item 1: unknown entity "tcp-lisener"`},
		{name: "yaml entity names are lower-case", v1: "- UDP-listener:\n    port: 1", want: `t.yaml: item 1: unknown entity "UDP-listener"`},
		{name: "yaml multiple names", v1: "- node: a\n  trace:", want: `t.yaml: item 1: config format invalid: item has multiple names`},
		{name: "yaml singleton", v1: "- node: a\n- node: b", want: `t.yaml: item 2: only one node directive is allowed`},
		{name: "yaml bare int", v1: "- tcp-listener: 27199", want: `t.yaml: item 1: tcp-listener: bare value must be a string, got number 27199 (use the map form)`},
		{name: "yaml no bare", v1: "- control-service: x", want: `t.yaml: item 1: control-service: command does not allow bare values (got "x")`},
		{name: "yaml invalid", v1: "node: a\n- x", want: `t.yaml: invalid YAML: yaml: line 1: did not find expected key`},
		{name: "yaml not a list", v1: "node: a", want: `t.yaml: config format invalid: the top level must be a list of entities`},
		{name: "yaml params list", v1: "- tcp-peer: [a]", want: `t.yaml: item 1: tcp-peer: parameters must be a map or a bare value, got a list`},
		{name: "yaml wrong type", v1: "- tcp-peer:\n    address: a:1\n    allowedpeers: {a: 1}", want: `t.yaml: item 1: tcp-peer: allowedpeers: expected a string, got a map`},
		{name: "yaml firewall value type", v1: "- node:\n    id: a\n    firewallrules:\n      - action: 1", want: `t.yaml: item 1: node: firewallrules: rule 1: action: expected a string, got number 1`},
		{name: "yaml item type", v1: "- 42", want: `t.yaml: item 1: config format invalid: item must be an entity name or a one-key map, got number 42`},
		{name: "yaml duplicate param", v1: "- work-command:\n    workType: a\n    worktype: b\n    command: c", want: `t.yaml: item 1: work-command: parameter "worktype" given twice (as "workType" and "worktype")`},
		{name: "yaml exclusive", v1: "- cert-init:\n    commonname: c\n- node: a", want: `t.yaml: item 1: cannot specify any other options with cert-init`},

		{name: "v2 unknown key", v2: "tcp-listenerz:\n  - port: 1", want: `t.yaml: unknown key "tcp-listenerz"`},
		{name: "v2 bad item", v2: "tcp-listeners:\n  - port: x", want: `t.yaml: tcp-listeners[0]: tcp-listener: port: "x" is not a number`},
		{name: "v2 not a list", v2: "tcp-peers:\n  address: a:1", want: `t.yaml: tcp-peers: expected a list of tcp-peer entries, got a map`},
		{name: "v2 version", v2: "version: 3", want: `t.yaml: version: number 3 is not supported (expected 2)`},
		{name: "v2 top list forced", v2: "- node: a", want: `t.yaml: config format invalid: the top level of a v2 configuration must be a map`},

		{name: "env bad value", args: []string{"--node", "a"}, env: []string{"RECEPTOR_NODE_MAXIDLECONNECTIONTIMEOUT=x"}, want: `environment: RECEPTOR_NODE_MAXIDLECONNECTIONTIMEOUT: node: maxidleconnectiontimeout: "x" is not a valid duration`},
		{name: "env instance gap", args: []string{"--node", "a"}, env: []string{"RECEPTOR_TCP_PEER_2_ADDRESS=a:1"}, want: `environment: RECEPTOR_TCP_PEER_2_ADDRESS: tcp-peer: cannot override instance 2: only 0 defined`},
		{name: "env created entity incomplete", args: []string{"--node", "a"}, env: []string{"RECEPTOR_HTTP_GATEWAY_TLS=x"}, want: `environment: RECEPTOR_HTTP_GATEWAY_TLS: http-gateway: required parameter missing: tcplisten`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.host
			if host == "" {
				host = "testhost"
			}
			l := testLoader(host)
			var err error
			switch {
			case tc.v1 != "":
				_, err = l.LoadV1("t.yaml", []byte(tc.v1), tc.env)
			case tc.v2 != "":
				_, err = l.LoadV2("t.yaml", []byte(tc.v2), tc.env)
			default:
				_, err = l.ParseArgs(tc.args, tc.env)
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error is %T, not *Error", err)
			}
		})
	}
}

func TestSlogLevel(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want slog.Level
	}{
		{[]string{"--local-only"}, slog.LevelInfo},
		{[]string{"--log-level"}, slog.LevelError},
		{[]string{"--log-level", "Warning"}, slog.LevelWarn},
		{[]string{"--log-level", "level=DEBUG"}, slog.LevelDebug},
	} {
		c, err := testLoader("h").ParseArgs(tc.args, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.SlogLevel(); got != tc.want {
			t.Errorf("%v: level %v, want %v", tc.args, got, tc.want)
		}
	}
}

func TestHelpListsRegistry(t *testing.T) {
	var b bytes.Buffer
	if err := WriteHelp(&b, "receptor", true); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range registry {
		has := strings.Contains(out, "  --"+s.name+" ") || strings.Contains(out, "  --"+s.name+"\n")
		if has == s.hidden {
			t.Errorf("help: entity %s listed=%v, hidden=%v", s.name, has, s.hidden)
		}
	}
	for _, want := range []string{
		"Usage: receptor ",
		"--node (required, only once)",
		"port=<int>",
		"Local TCP port to listen on (required; bare value)",
		"bindaddr=<string>",
		"(default: 0.0.0.0)",
		"nodecost=<map of node to float>",
		"permissions=<int>",
		"(default: 0600)",
		"--cert-init (exclusive)",
		"--grpc-server",
		"RECEPTOR_NODE_ID",
		"receptor validate [<file>...]",
		"receptor --embedded-config",
		"receptor --config-v2 --config <file>",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	b.Reset()
	if err := WriteBashCompletion(&b, "receptor"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "complete -o nospace -F _receptor_complete receptor") || !strings.Contains(b.String(), "tcp-listener) COMPREPLY") {
		t.Errorf("completion:\n%s", b.String())
	}
}

// TestRegistry checks every entity can be built from its defaults alone
// where it has no required parameter, and that names are unique.
func TestRegistry(t *testing.T) {
	l := testLoader("h")
	v2 := map[string]bool{}
	for _, s := range registry {
		if v2[s.v2key] {
			t.Errorf("duplicate v2 key %s", s.v2key)
		}
		v2[s.v2key] = true
		if s.name != strings.ToLower(s.name) {
			t.Errorf("entity %s is not lower-case", s.name)
		}
		for _, p := range s.params {
			if p.help == "" {
				t.Errorf("%s.%s has no help", s.name, p.name)
			}
			if p.def != "" {
				v := reflect.New(s.typ)
				if err := set(p.kind, v.Elem().Field(p.field), p.def, false); err != nil {
					t.Errorf("%s.%s: default %q: %v", s.name, p.name, p.def, err)
				}
			}
		}
		if _, err := l.convert(&rawEntity{spec: s}); err != nil && !strings.Contains(err.Error(), "required") &&
			!strings.Contains(err.Error(), "listeners") && !strings.Contains(err.Error(), "must ") {
			t.Errorf("%s with no params: %v", s.name, err)
		}
	}
}

// TestControlTCPLoopbackWithoutTLS: a plaintext control tcplisten is
// accepted on loopback addresses only; with tcptls any address is.
func TestControlTCPLoopbackWithoutTLS(t *testing.T) {
	for _, args := range [][]string{
		{"--control-service", "tcplisten=127.0.0.1:11113"},
		{"--control-service", "tcplisten=localhost:11113"},
		{"--control-service", "tcplisten=[::1]:11113"},
		{"--tls-server", "name=s", "cert=c", "key=k", "--control-service", "tcplisten=11113", "tcptls=s"},
	} {
		if _, err := testLoader("testhost").ParseArgs(args, nil); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}
