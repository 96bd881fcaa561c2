package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionAndHelp checks the one-shot informational commands.
func TestVersionAndHelp(t *testing.T) {
	t.Parallel()
	for _, bin := range []string{routerBin, "receptor", "receptor-worker"} {
		t.Run(bin, func(t *testing.T) {
			checkVersionAndHelp(t, bin)
		})
	}
}

func checkVersionAndHelp(t *testing.T, bin string) {
	dir := shortTempDir(t)
	v := runCommand(t, dir, bin, "", "--version")
	if v.Code != 0 || strings.TrimSpace(v.Out) == "" || strings.Count(v.Out, "\n") != 1 {
		t.Errorf("--version: exit %d, output %q; want exit 0 and one line", v.Code, v.Out)
	}
	h := runCommand(t, dir, bin, "", "--help")
	if h.Code != 0 {
		t.Fatalf("--help: exit %d\n%s", h.Code, h.Out)
	}
	for _, e := range []string{
		"node", "log-level", "local-only", "tls-server", "tls-client",
		"tcp-listener", "tcp-peer", "udp-listener", "udp-peer", "ws-listener", "ws-peer",
		"control-service", "tcp-server", "tcp-client", "udp-server", "udp-client",
		"unix-socket-server", "unix-socket-client", "work-command", "work-signing", "work-verification",
		"grpc-server", "http-gateway", "work-agent", "cert-init", "cert-makereq", "cert-signreq", "version",
	} {
		if !strings.Contains(h.Out, "\n  --"+e+" ") {
			t.Errorf("--help does not list entity --%s", e)
		}
	}
	for _, p := range []string{"allowedpeers=", "nodecost=", "requireclientcert=", "firewallrules=", "permissions="} {
		if !strings.Contains(h.Out, p) {
			t.Errorf("--help does not list parameter %s", p)
		}
	}
}

// TestBadConfiguration checks that start-up errors exit 1 with an
// "Error: ..." line naming what is wrong, before anything starts.
func TestBadConfiguration(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sock := filepath.Join(dir, "ctl.sock")
	badCost := write("cost.yaml", "---\n"+entity("node", "id", "x")+entity("tcp-listener", "port", "\"12345\"", "cost", "-1"))
	badEntity := write("entity.yaml", "---\n"+entity("node", "id", "x")+entity("UDP-listener", "port", "\"12345\""))
	badYAML := write("yaml.yaml", "- node: [unclosed\n")
	missingCert := write("tls.yaml", "---\n"+entity("node", "id", "x")+
		entity("tls-server", "name", "srv", "cert", filepath.Join(dir, "nosuch.crt"), "key", filepath.Join(dir, "nosuch.key"))+
		entity("tcp-listener", "port", "\"12345\"", "tls", "srv")+
		entity("control-service", "filename", sock))

	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the Error line
	}{
		{"bad int", []string{"--node", "id=x", "--tcp-listener", "port=abc"}, []string{"tcp-listener", "port", "abc"}},
		{"unknown entity", []string{"--node", "id=x", "--bogus"}, []string{"bogus"}},
		{"unknown param", []string{"--node", "id=x", "--tcp-peer", "address=127.0.0.1:1", "colour=red"}, []string{"tcp-peer", "colour"}},
		{"bad address", []string{"--node", "id=x", "--tcp-peer", "address=nope"}, []string{"tcp-peer", "address", "nope"}},
		{"reserved node id", []string{"--node", "id=localhost", "--local-only"}, []string{"localhost", "reserved"}},
		{"bad bool", []string{"--node", "id=x", "--tcp-peer", "address=127.0.0.1:1", "redial=maybe"}, []string{"tcp-peer", "redial", "maybe"}},
		{"exclusive", []string{"--cert-init", "commonname=x", "--node", "id=x"}, []string{"cannot specify any other options with cert-init"}},
		{"no backends", []string{"--node", "id=x", "--control-service", "filename=" + sock}, []string{"no backends"}},
		{"yaml bad cost", []string{"-c", badCost}, []string{"tcp-listener", "cost", "-1"}},
		{"yaml uppercase entity", []string{"-c", badEntity}, []string{"UDP-listener"}},
		{"yaml syntax", []string{"-c", badYAML}, []string{"yaml.yaml"}},
		{"missing config file", []string{"-c", filepath.Join(dir, "nosuch.yaml")}, []string{"nosuch.yaml"}},
		{"missing certificate", []string{"-c", missingCert}, []string{"nosuch.crt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCommand(t, dir, routerBin, "", tc.args...)
			if res.Code != 1 {
				t.Errorf("exit %d, want 1\n%s", res.Code, res.Out)
			}
			i := strings.Index(res.Out, "Error: ")
			if i < 0 {
				t.Fatalf("no \"Error: \" line in\n%s", res.Out)
			}
			errLine, _, _ := strings.Cut(res.Out[i:], "\n")
			for _, w := range tc.want {
				if !strings.Contains(errLine, w) {
					t.Errorf("error line %q does not name %q", errLine, w)
				}
			}
			if _, err := os.Stat(sock); err == nil {
				t.Errorf("control socket %s was created by a configuration that failed", sock)
			}
		})
	}
}

// TestValidate checks `validate`: it reports problems with the exit code
// and starts nothing.
func TestValidate(t *testing.T) {
	t.Parallel()
	dir := shortTempDir(t)
	sock := filepath.Join(dir, "ctl.sock")
	good := filepath.Join(dir, "good.yaml")
	goodBody := "---\n" + entity("node", "id", "x", "datadir", filepath.Join(dir, "data")) +
		entity("tcp-listener", "port", "\"12345\"", "bindaddr", "127.0.0.1") +
		entity("control-service", "filename", sock)
	if err := os.WriteFile(good, []byte(goodBody), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	badBody := "---\n" + "- node:\n    id: x\n    firewallrules:\n      - action: reject\n        fromnode: /bad(/\n" +
		entity("control-service", "filename", sock) + "- local-only\n"
	if err := os.WriteFile(bad, []byte(badBody), 0o600); err != nil {
		t.Fatal(err)
	}

	res := runCommand(t, dir, routerBin, "", "validate", "--config", good)
	if res.Code != 0 || !strings.Contains(res.Out, "valid") {
		t.Errorf("validate good config: exit %d\n%s", res.Code, res.Out)
	}
	res = runCommand(t, dir, routerBin, "", "validate", "--config", bad)
	if res.Code != 1 || !strings.Contains(res.Out, "Error: ") || !strings.Contains(res.Out, "firewallrules") {
		t.Errorf("validate bad firewall rule: exit %d, want 1 and an Error naming firewallrules\n%s", res.Code, res.Out)
	}
	res = runCommand(t, dir, routerBin, "", "validate", "--config", good, "--tcp-peer", "address=nope")
	if res.Code != 1 || !strings.Contains(res.Out, "nope") {
		t.Errorf("validate with a bad command-line entity: exit %d\n%s", res.Code, res.Out)
	}
	for _, p := range []string{sock, sock + ".lock", filepath.Join(dir, "data")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("validate created %s", p)
		}
	}
}
