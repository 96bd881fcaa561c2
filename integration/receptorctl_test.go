package integration

// The Go receptorctl (cmd/receptorctl) against real nodes: every verb in
// every output format over the control socket and over gRPC, the exit code
// of each failure class, TLS and mTLS, resuming results across a node
// restart, and (when the Python receptorctl is installed) the same commands
// through both clients with their default outputs compared.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v2"

	"github.com/receptor-mesh/receptor/services/testkit"
)

const ctlBin = "receptorctl"

// ctlResult is one receptorctl run.
type ctlResult struct {
	Out, Err string
	Code     int
}

func (r ctlResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Out, r.Err)
}

// runCtl runs a receptorctl binary (path) with stdin and args.
func runCtl(t *testing.T, path, stdin string, args ...string) ctlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var cmd *exec.Cmd
	if path == "python" {
		cmd = exec.CommandContext(ctx, pythonBin(), append([]string{"-m", "receptorctl"}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Env = append(os.Environ(), "RECEPTORCTL_SOCKET=", "RECEPTORCTL_GRPC=", "RECEPTORCTL_CONFIG=", "RECEPTORCTL_TLSCLIENT=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ctx.Err() == nil:
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v\n%s%s", path, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return ctlResult{Out: out.String(), Err: errb.String(), Code: code}
}

// ctl runs our receptorctl.
func ctl(t *testing.T, stdin string, args ...string) ctlResult {
	t.Helper()
	return runCtl(t, binPath(ctlBin), stdin, args...)
}

// ctlNode starts an all-in-one node with a control socket, a gRPC unix
// socket and work types cat, fail (prints "oops", exits 3) and sleep.
func ctlNode(t *testing.T, extra ...func(n *Node) string) *Node {
	n := NewNode(t, "ctlnode")
	items := append([]func(n *Node) string{
		func(n *Node) string { return entity("grpc-server", "filename", filepath.Join(n.Dir, "grpc.sock")) },
		workStatic(workCommandEntity("cat", "cat", "", false)),
		workStatic(workCommandEntity("fail", "sh", "-c 'echo oops; exit 3'", false)),
		workStatic(workCommandEntity("sleep", "sleep", "", true)),
		workStatic("- local-only\n"),
	}, extra...)
	n.Start(workAllInOneSpec(items...))
	return n
}

// backends are the two ways of reaching n.
func ctlBackends(n *Node) map[string][]string {
	return map[string][]string{
		"socket": {"--socket", n.Socket},
		"grpc":   {"--grpc", "unix://" + filepath.Join(n.Dir, "grpc.sock")},
	}
}

// checkFormat checks that out is well-formed in format: JSON (one value, or
// one per line when stream), YAML, or non-empty text.
func checkFormat(t *testing.T, what, format, out string, stream bool) []map[string]any {
	t.Helper()
	var items []map[string]any
	switch format {
	case "json":
		if stream {
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Errorf("%s: line %q is not a JSON object: %v", what, line, err)
				}
				items = append(items, m)
			}
			return items
		}
		var v any
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("%s: output is not JSON: %v\n%s", what, err, out)
		}
		if m, ok := v.(map[string]any); ok {
			items = append(items, m)
		}
	case "yaml":
		var v any
		if err := yaml.Unmarshal([]byte(strings.TrimPrefix(out, "---\n")), &v); err != nil && !stream {
			t.Errorf("%s: output is not YAML: %v\n%s", what, err, out)
		}
		if strings.TrimSpace(out) == "" {
			t.Errorf("%s: empty YAML output", what)
		}
	default:
		if strings.TrimSpace(out) == "" {
			t.Errorf("%s: empty output", what)
		}
	}
	return items
}

// TestReceptorctlVerbs runs every verb in every output format over the
// control socket and over gRPC.
func TestReceptorctlVerbs(t *testing.T) {
	t.Parallel()
	n := ctlNode(t)
	for name, be := range ctlBackends(n) {
		for _, format := range []string{"", "json", "yaml", "table"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				args := append([]string{}, be...)
				if format != "" {
					args = append(args, "-o", format)
				}
				run := func(stdin string, verb ...string) ctlResult {
					t.Helper()
					r := ctl(t, stdin, append(append([]string{}, args...), verb...)...)
					if r.Code != 0 {
						t.Fatalf("%s: %s", strings.Join(verb, " "), r)
					}
					return r
				}
				want := func(verb, out string, texts ...string) {
					t.Helper()
					for _, s := range texts {
						if !strings.Contains(out, s) {
							t.Errorf("%s -o %q: output lacks %q:\n%s", verb, format, s, out)
						}
					}
				}
				text := format == "" || format == "table"

				st := run("", "status")
				checkFormat(t, "status", format, st.Out, false)
				want("status", st.Out, "ctlnode")
				if text {
					want("status", st.Out, "Node ID: ctlnode", "Work Types", "cat, fail, sleep")
				}
				p := run("", "ping", "ctlnode", "--count", "2", "--delay", "0")
				checkFormat(t, "ping", format, p.Out, true)
				if text {
					want("ping", p.Out, "Reply from ctlnode in ")
				}
				tr := run("", "traceroute", "ctlnode")
				checkFormat(t, "traceroute", format, tr.Out, true)
				want("traceroute", tr.Out, "ctlnode")
				v := run("", "version")
				checkFormat(t, "version", format, v.Out, false)
				want("version", v.Out, "receptorctl", "receptor")
				rl := run("", "reload")
				checkFormat(t, "reload", format, rl.Out, false)
				if text {
					want("reload", rl.Out, "Reload successful")
				}

				sub := run("", "work", "submit", "cat", "-l", "hello "+name+format)
				checkFormat(t, "submit", format, sub.Out, false)
				m := regexp.MustCompile(`(?:Unit ID: |"unitid": "|unitid: )([A-Za-z0-9]+)`).FindStringSubmatch(sub.Out)
				if m == nil {
					t.Fatalf("submit: no unit ID in %q", sub.Out)
				}
				id := m[1]
				workWaitState(t, n.Socket, n.ID, id, 2)
				res := run("", "work", "results", id)
				checkFormat(t, "results", format, res.Out, true)
				want("results", res.Out, "hello "+name+format)
				ls := run("", "work", "list", "--state", "succeeded")
				checkFormat(t, "work list", format, ls.Out, false)
				want("work list", ls.Out, id)
				if format == "table" {
					want("work list", ls.Out, "UNIT ID", "Succeeded")
				}
				if q := run("", "work", "list", "-q", "--state", "Failed"); strings.Contains(q.Out, id) {
					t.Errorf("work list --state Failed lists the succeeded unit %s:\n%s", id, q.Out)
				}
				c := run("", "work", "cancel", id)
				checkFormat(t, "cancel", format, c.Out, true)
				want("cancel", c.Out, id, "cancelled")
				r := run("", "work", "release", id)
				checkFormat(t, "release", format, r.Out, true)
				want("release", r.Out, id, "released")

				f := run("", "work", "submit", "cat", "-n", "-f", "--rm")
				checkFormat(t, "submit -f", format, f.Out, true)

				// connect: to the node's own control service, whose
				// greeting comes back; stdin's end half-closes.
				cn := run("status\n", "connect", "ctlnode", "control")
				want("connect", cn.Out, "Receptor Control, node ctlnode", `"NodeID":"ctlnode"`)
			})
		}
	}
}

// TestReceptorctlBulkRelease: work release --failed releases the failed
// units only, and --state selects any state.
func TestReceptorctlBulkRelease(t *testing.T) {
	t.Parallel()
	n := ctlNode(t)
	sock := []string{"--socket", n.Socket}
	ok := ctl(t, "", append(sock, "work", "submit", "cat", "-n", "-f")...)
	bad := ctl(t, "", append(sock, "work", "submit", "fail", "-n", "-f")...)
	if ok.Code != 0 || bad.Code != 1 || !strings.Contains(bad.Err, "Remote unit failed: exit status 3") {
		t.Fatalf("submit -f: cat %s\nfail %s", ok, bad)
	}
	failed := ctl(t, "", append(sock, "-o", "json", "work", "list", "--state", "Failed")...)
	var units map[string]map[string]any
	if err := json.Unmarshal([]byte(failed.Out), &units); err != nil || len(units) != 1 {
		t.Fatalf("work list --state Failed: %v %s", err, failed)
	}
	rel := ctl(t, "", append(sock, "work", "release", "--failed")...)
	if rel.Code != 0 || strings.Count(rel.Out, "released") != 1 {
		t.Fatalf("work release --failed: %s", rel)
	}
	left := ctl(t, "", append(sock, "-o", "json", "work", "list")...)
	units = nil
	if err := json.Unmarshal([]byte(left.Out), &units); err != nil || len(units) != 1 {
		t.Fatalf("after release --failed: %v %s", err, left)
	}
	for _, u := range units {
		if u["StateName"] != "Succeeded" {
			t.Errorf("left unit %v, want the succeeded one", u)
		}
	}
	if r := ctl(t, "", append(sock, "work", "release", "--state", "Succeeded", "--succeeded")...); r.Code != 0 || !strings.Contains(r.Out, "released") {
		t.Errorf("work release --succeeded: %s", r)
	}
	if r := ctl(t, "", append(sock, "work", "release", "--all", "someid")...); r.Code != 64 {
		t.Errorf("release --all with IDs: %s, want exit 64", r)
	}
}

// TestReceptorctlExitCodes: each failure class has its code.
func TestReceptorctlExitCodes(t *testing.T) {
	t.Parallel()
	n := ctlNode(t, func(n *Node) string {
		return entity("control-service", "service", "plain", "tcplisten", n.Addr("ctl"))
	})
	sock := []string{"--socket", n.Socket}
	grpcAddr := []string{"--grpc", "unix://" + filepath.Join(n.Dir, "grpc.sock")}
	sleeper := ctl(t, "", append(sock, "-o", "json", "work", "submit", "sleep", "-n", "30")...)
	var sub map[string]string
	if err := json.Unmarshal([]byte(sleeper.Out), &sub); err != nil || sub["unitid"] == "" {
		t.Fatalf("submit sleep: %v %s", err, sleeper)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string // in stderr
	}{
		{"usage: unknown flag", append(sock, "status", "--bogus"), 64, "unknown flag"},
		{"usage: no payload", append(sock, "work", "submit", "cat"), 64, "Must provide one of --payload"},
		{"usage: no address", []string{"status"}, 64, "--socket"},
		{"usage: bad output", append(sock, "-o", "xml", "status"), 64, "output format"},
		{"usage: node rejects ttl", append(sock, "work", "submit", "cat", "-n", "--ttl", "5s"), 64, "ttl option"},
		{"not found: results", append(sock, "work", "results", "nosuch"), 66, "unknown work unit nosuch"},
		{"not found: cancel", append(sock, "work", "cancel", "nosuch"), 66, "unknown work unit nosuch"},
		{"not found: work type", append(sock, "work", "submit", "nosuch", "-n"), 66, "unknown work type"},
		{"not found: grpc release", append(grpcAddr, "work", "release", "nosuch"), 66, "unknown work unit nosuch"},
		{"unreachable: socket", []string{"--socket", filepath.Join(n.Dir, "none.sock"), "status"}, 69, "Socket path does not exist"},
		{"unreachable: tcp", []string{"--socket", "tcp://127.0.0.1:1", "status"}, 69, "connection refused"},
		{"unreachable: grpc", []string{"--grpc", "unix://" + filepath.Join(n.Dir, "none.sock"), "--timeout", "2s", "status"}, 69, ""},
		{"timeout: results of a running unit", append(sock, "--timeout", "1s", "work", "results", sub["unitid"]), 75, ""},
		{"refused: anonymous tcp", []string{"--socket", "tcp://" + n.Addr("ctl"), "status"}, 77, "authentication required"},
		{"ping failed", append(sock, "ping", "nosuch", "--count", "1"), 2, "no route to node"},
		{"unit failed", append(sock, "work", "submit", "fail", "-n", "-f"), 1, "Remote unit failed"},
	} {
		r := ctl(t, "", tc.args...)
		if r.Code != tc.code || !strings.Contains(r.Err, tc.err) {
			t.Errorf("%s: %s\nwant exit %d and %q on stderr", tc.name, r, tc.code, tc.err)
		}
		// Machine-readable errors: one JSON object with the same code.
		j := ctl(t, "", append([]string{"-o", "json"}, tc.args...)...)
		if j.Code != tc.code {
			t.Errorf("%s -o json: exit %d, want %d", tc.name, j.Code, tc.code)
		}
	}
	j := ctl(t, "", append(sock, "-o", "json", "work", "results", "nosuch")...)
	var e map[string]any
	lines := strings.Split(strings.TrimSpace(j.Err), "\n") // after any version warning
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &e); err != nil || e["class"] != "not_found" || e["exit_code"] != float64(66) {
		t.Errorf("-o json error: %v %s", err, j)
	}

	// reload: a changed non-reloadable entity is ERRORCODE 3, exit 3.
	cfg, err := os.ReadFile(n.ConfigPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigPath(), append(cfg, workCommandEntity("more", "cat", "", false)...), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := ctl(t, "", append(sock, "reload")...); r.Code != 3 || !strings.Contains(r.Err, "ERRORCODE 3") {
		t.Errorf("reload after a work-command change: %s, want exit 3", r)
	}
	if err := os.WriteFile(n.ConfigPath(), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestReceptorctlTLS: a TLS control service through --rootcas/--cert/--key
// and through --config/--tls-client; the gRPC API over TCP with mTLS, where
// a reader's certificate may read but not submit (exit 77).
func TestReceptorctlTLS(t *testing.T) {
	t.Parallel()
	ca := newCA(t)
	nc := ca.issue(t, "ctlnode")
	reader := ca.issue(t, "dashboard")
	n := ctlNode(t, func(n *Node) string {
		return strings.Join(append(ca.tlsItems(nc),
			entity("control-service", "service", "tlsctl", "tcplisten", n.Addr("tls"), "tcptls", "srv"),
			entity("grpc-server", "tcplisten", n.Addr("grpc"), "tls", "srv"),
			entity("access", "role", "admin", "principals", "[cert:ctlnode]"),
			entity("access", "role", "reader", "principals", "[cert:dashboard]")), "")
	})
	flags := []string{"--rootcas", ca.Cert, "--cert", nc.Cert, "--key", nc.Key}
	tlsSock := append([]string{"--socket", "tls://localhost:" + fmt.Sprint(n.Port("tls"))}, flags...)
	if r := ctl(t, "", append(tlsSock, "status")...); r.Code != 0 || !strings.Contains(r.Out, "Node ID: ctlnode") {
		t.Errorf("status over TLS: %s", r)
	}
	viaConfig := []string{"--socket", "tls://localhost:" + fmt.Sprint(n.Port("tls")), "--config", n.ConfigPath(), "--tls-client", "cli"}
	if r := ctl(t, "", append(viaConfig, "-o", "json", "work", "submit", "cat", "-l", "x", "-f")...); r.Code != 0 || !strings.Contains(r.Out, `"data":"x\n"`) {
		t.Errorf("submit -f over TLS with --config: %s", r)
	}
	if r := ctl(t, "", append(viaConfig, "--cert", nc.Cert, "status")...); r.Code != 64 {
		t.Errorf("--config with --cert: %s, want exit 64", r)
	}
	grpcTCP := append([]string{"--grpc", n.Addr("grpc")}, flags...)
	if r := ctl(t, "", append(grpcTCP, "ping", "ctlnode", "--count", "1")...); r.Code != 0 {
		t.Errorf("ping over gRPC mTLS: %s", r)
	}
	asReader := []string{"--grpc", n.Addr("grpc"), "--rootcas", ca.Cert, "--cert", reader.Cert, "--key", reader.Key}
	if r := ctl(t, "", append(asReader, "work", "list")...); r.Code != 0 {
		t.Errorf("reader work list over gRPC: %s", r)
	}
	if r := ctl(t, "", append(asReader, "work", "submit", "cat", "-l", "x")...); r.Code != 77 || !strings.Contains(r.Err, "permission denied") {
		t.Errorf("reader submit over gRPC: %s, want exit 77", r)
	}
	if r := ctl(t, "", "--grpc", n.Addr("grpc"), "--timeout", "3s", "status"); r.Code == 0 {
		t.Errorf("gRPC TCP without a client certificate: %s, want a failure", r)
	}
}

// TestReceptorctlResultsResume: the node restarts while work results
// streams a unit's output; the client reconnects and resumes from the last
// byte, so the output arrives complete and exactly once.
func TestReceptorctlResultsResume(t *testing.T) {
	t.Parallel()
	n := ctlNode(t, workStatic(workCommandEntity("lines", "sh", "-c 'for i in $(seq 1 30); do echo line $i; sleep 0.1; done'", false)))
	sub := ctl(t, "", "--socket", n.Socket, "-o", "json", "work", "submit", "lines", "-n")
	var s map[string]string
	if err := json.Unmarshal([]byte(sub.Out), &s); err != nil {
		t.Fatalf("submit: %v %s", err, sub)
	}
	outPath := filepath.Join(n.Dir, "results.out")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var errb bytes.Buffer
	cmd := exec.Command(binPath(ctlBin), "--socket", n.Socket, "work", "results", s["unitid"], "--resume-for", "60s")
	cmd.Stdout, cmd.Stderr = out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	testkit.Eventually(t, convergeTimeout, "the first lines of the results", func() error {
		if size := workFileSize(outPath); size <= 20 {
			return fmt.Errorf("%d bytes so far", size)
		}
		return nil
	})
	n.Kill()
	n.Restart()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("work results: %v\n%s", err, errb.String())
		}
	case <-time.After(convergeTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("work results did not end\n%s", errb.String())
	}
	got, _ := os.ReadFile(outPath)
	var want strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if string(got) != want.String() {
		t.Errorf("resumed results:\n%s\nwant lines 1..30 once each; stderr: %s", got, errb.String())
	}
}

// TestReceptorctlCompletion: completion scripts for the three shells.
func TestReceptorctlCompletion(t *testing.T) {
	t.Parallel()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := ctl(t, "", "completion", sh)
		if r.Code != 0 || !strings.Contains(r.Out, "receptorctl") || len(r.Out) < 500 {
			t.Errorf("completion %s: exit %d, %d bytes", sh, r.Code, len(r.Out))
		}
	}
	if r := ctl(t, "", "completion", "tcsh"); r.Code != 64 {
		t.Errorf("completion tcsh: %s, want exit 64", r)
	}
	// Dynamic completion of verbs and --state values.
	r := ctl(t, "", "__complete", "work", "list", "--state", "")
	if !strings.Contains(r.Out, "Failed") {
		t.Errorf("__complete --state: %s", r)
	}
}

// pythonBin is a Python that has the receptorctl package ("" when none
// does): python3 on PATH, else the system's.
var pythonBin = sync.OnceValue(func() string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import receptorctl").Run() == nil {
			return p
		}
	}
	return ""
})

// TestReceptorctlCompatPython runs the same commands through the Python
// receptorctl and ours against one node and compares their standard
// output (times, unit IDs and versions masked) and whether they succeed.
func TestReceptorctlCompatPython(t *testing.T) {
	t.Parallel()
	if pythonBin() == "" {
		t.Skip("the Python receptorctl is not installed (neither python3 nor /usr/bin/python3 can import receptorctl): nothing to compare with")
	}
	n := ctlNode(t)
	sock := []string{"--socket", n.Socket}
	mask := func(s string) string {
		for _, re := range []struct{ re, repl string }{
			{`\d+(\.\d+)?(ns|µs|ms|s)\b`, "<dur>"},
			{`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?Z?`, "<time>"},
			{`receptorctl  .*`, "receptorctl  <v>"},
			{`"Time": \d+`, `"Time": <n>`},
			{`\([A-Za-z0-9]{8}, (released|cancelled)\)`, "(<id>, $1)"},
		} {
			s = regexp.MustCompile(re.re).ReplaceAllString(s, re.repl)
		}
		return s
	}
	compare := func(name string, args []string) {
		t.Helper()
		py := runCtl(t, "python", "", append(sock, args...)...)
		gr := ctl(t, "", append(sock, args...)...)
		po, go_ := mask(py.Out), mask(gr.Out)
		if po != go_ || (py.Code == 0) != (gr.Code == 0) {
			t.Errorf("%s: outputs differ\n--- python (exit %d):\n%s\n--- go (exit %d):\n%s\n--- stderr python:\n%s--- stderr go:\n%s",
				name, py.Code, po, gr.Code, go_, py.Err, gr.Err)
		}
	}
	compare("status", []string{"status"})
	compare("status --json", []string{"status", "--json"})
	compare("ping", []string{"ping", "ctlnode", "--count", "2", "--delay", "0.1"})
	compare("ping unknown", []string{"ping", "nosuch", "--count", "1"})
	compare("traceroute", []string{"traceroute", "ctlnode"})
	compare("version", []string{"version"})
	compare("reload", []string{"reload"})
	compare("cancel unknown", []string{"work", "cancel", "nosuch"})
	compare("results unknown", []string{"work", "results", "nosuch"})
	compare("submit -f failing", []string{"work", "submit", "fail", "-n", "-f"})

	// Units: each client submits, then both list, fetch and release them.
	ids := map[string]string{}
	for _, who := range []string{"python", "go"} {
		path := binPath(ctlBin)
		if who == "python" {
			path = "python"
		}
		r := runCtl(t, path, "", append(sock, "work", "submit", "cat", "-l", "compat")...)
		m := regexp.MustCompile(`Result: Job Started\nUnit ID: ([A-Za-z0-9]+)\n`).FindStringSubmatch(r.Out)
		if m == nil {
			t.Fatalf("%s submit: %s", who, r)
		}
		ids[who] = m[1]
		workWaitState(t, n.Socket, n.ID, m[1], 2)
	}
	compare("work list", []string{"work", "list"})
	compare("work list -q", []string{"work", "list", "-q"})
	compare("work list --unit_id", []string{"work", "list", "--unit_id", ids["python"]})
	compare("results", []string{"work", "results", ids["go"]})
	compare("submit -f --rm", []string{"work", "submit", "cat", "-l", "x", "-f", "--rm"})
	pyRel := runCtl(t, "python", "", append(sock, "work", "release", ids["go"])...)
	goRel := ctl(t, "", append(sock, "work", "release", ids["python"])...)
	if mask(strings.ReplaceAll(pyRel.Out, ids["go"], "<id>")) != mask(strings.ReplaceAll(goRel.Out, ids["python"], "<id>")) || pyRel.Code != goRel.Code {
		t.Errorf("release: python %s\ngo %s", pyRel, goRel)
	}
}
