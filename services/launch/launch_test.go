package launch

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/buildinfo"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Program whose Run records its calls.
type recorder struct {
	runs     int
	cfg      *config.Config
	reload   *config.Reloader
	runErr   error
	checkErr error
	// during, when set, runs inside Run with its context.
	during func(ctx context.Context) error
}

func (r *recorder) program(embedded []byte) Program {
	return Program{
		Name:     "receptor-test",
		Embedded: embedded,
		Check: func(cfg *config.Config, log *slog.Logger) error {
			if log == nil {
				return errors.New("Check got a nil logger")
			}
			return r.checkErr
		},
		Run: func(ctx context.Context, cfg *config.Config, log *slog.Logger, reload *config.Reloader) error {
			r.runs++
			r.cfg, r.reload = cfg, reload
			if r.during != nil {
				return r.during(ctx)
			}
			return r.runErr
		},
	}
}

// run calls Main with args and returns the exit code and stdout.
func (r *recorder) run(t *testing.T, embedded []byte, stdin string, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := r.program(embedded).Main(context.Background(), Env{
		Args: args, Environ: []string{"HOME=/nonexistent"}, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
	})
	if errOut.Len() > 0 {
		t.Logf("stderr: %s", errOut.String())
	}
	return code, out.String()
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "receptor.conf")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMainOneShots(t *testing.T) {
	good := writeConfig(t, "---\n- node:\n    id: foo\n- local-only:\n")
	bad := writeConfig(t, "---\n- node:\n    id: foo\n- no-such-entity:\n    x: 1\n")
	listener := writeConfig(t, "---\n- tcp-listener:\n    port: 4444\n")
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
		prefix   string
		exact    string
	}{
		{name: "help", args: []string{"--help"}, code: 0, prefix: "Usage: receptor-test ", contains: []string{"--tcp-listener", "--grpc-server"}},
		{name: "empty command line", args: nil, code: 0, prefix: "Usage: receptor-test "},
		{name: "bash completion", args: []string{"--bash-completion"}, code: 0, contains: []string{"receptor-test", "--tcp-listener"}},
		{name: "version", args: []string{"--version"}, code: 0, exact: buildinfo.Get().Version + "\n"},
		{name: "validate good", args: []string{"validate", "-c", good}, code: 0, prefix: "configuration is valid\n", contains: []string{good}},
		{name: "validate bad", args: []string{"validate", "-c", bad}, code: 1, prefix: "Error: ", contains: []string{"no-such-entity"}},
		{name: "validate FILE", args: []string{"validate", good}, code: 0, prefix: "configuration is valid\n", contains: []string{good}},
		{name: "validate FILE FILE and entities", args: []string{"validate", good, listener, "--log-level", "debug"}, code: 0, prefix: "configuration is valid\n", contains: []string{good + ", " + listener, "log-level: debug\n", "tcp-listener: 1\n"}},
		{name: "help lists validate", args: []string{"--help"}, code: 0, prefix: "Usage: ", contains: []string{"receptor-test validate [<file>...]"}},
		{name: "bad config", args: []string{"-c", bad}, code: 1, prefix: "Error: ", contains: []string{"no-such-entity"}},
		{name: "missing file", args: []string{"-c", filepath.Join(t.TempDir(), "nope.conf")}, code: 1, prefix: "Error: "},
		{name: "bad entity param", args: []string{"--node", "id=a", "--tcp-listener", "port=notanumber"}, code: 1, prefix: "Error: "},
		{name: "bad log level", args: []string{"--node", "id=a", "--local-only", "--log-level", "loud"}, code: 1, prefix: "Error: "},
		{name: "cert-init missing params", args: []string{"--cert-init", "commonname=x"}, code: 1, prefix: "Error: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recorder
			code, out := r.run(t, nil, "", tt.args...)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d; output:\n%s", code, tt.code, out)
			}
			if r.runs != 0 {
				t.Errorf("Run was called %d times", r.runs)
			}
			if tt.exact != "" && out != tt.exact {
				t.Errorf("output = %q, want %q", out, tt.exact)
			}
			if !strings.HasPrefix(out, tt.prefix) {
				t.Errorf("output = %q, want prefix %q", out, tt.prefix)
			}
			for _, s := range tt.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			if tt.code != 0 && strings.Count(out, "Error: ") != 1 {
				t.Errorf("want exactly one error line:\n%s", out)
			}
		})
	}
}

func TestMainRun(t *testing.T) {
	path := writeConfig(t, "---\n- node:\n    id: fromfile\n- local-only:\n")

	t.Run("config file with reload", func(t *testing.T) {
		var r recorder
		code, out := r.run(t, nil, "", "-c", path)
		if code != 0 || r.runs != 1 || r.cfg.Node.ID != "fromfile" {
			t.Fatalf("exit %d, runs %d, cfg %+v; output:\n%s", code, r.runs, r.cfg, out)
		}
		if r.reload == nil || r.reload.Load == nil || r.reload.Requests == nil {
			t.Fatal("no reloader for a -c start")
		}
		if err := os.WriteFile(path, []byte("---\n- node:\n    id: changed\n- local-only:\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := r.reload.Load()
		if err != nil || cfg.Node.ID != "changed" {
			t.Errorf("reload = %+v, %v", cfg, err)
		}
	})

	// Every source is read again: the command line's entities and each of
	// two files (reload used to need exactly one file and drop the rest).
	t.Run("command line and two files", func(t *testing.T) {
		second := writeConfig(t, "---\n- tcp-listener:\n    port: 4444\n")
		var r recorder
		code, out := r.run(t, nil, "", "-c", path, "--tcp-peer", "address=127.0.0.1:1", "-c", second)
		if code != 0 {
			t.Fatalf("exit %d; output:\n%s", code, out)
		}
		if err := os.WriteFile(second, []byte("---\n- tcp-listener:\n    port: 5555\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := r.reload.Load()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Node.ID != "changed" && cfg.Node.ID != "fromfile" || len(cfg.TCPPeers) != 1 || cfg.TCPPeers[0].Address != "127.0.0.1:1" ||
			len(cfg.TCPListeners) != 1 || cfg.TCPListeners[0].Port != 5555 {
			t.Errorf("reloaded: node %q peers %+v listeners %+v", cfg.Node.ID, cfg.TCPPeers, cfg.TCPListeners)
		}
	})

	t.Run("command line reloads too", func(t *testing.T) {
		var r recorder
		code, _ := r.run(t, nil, "", "--node", "id=cli", "--local-only")
		if code != 0 || r.runs != 1 || r.cfg.Node.ID != "cli" || r.reload == nil {
			t.Fatalf("exit %d, runs %d, reload set %v", code, r.runs, r.reload != nil)
		}
		cfg, err := r.reload.Load()
		if err != nil || cfg.Node.ID != "cli" || !cfg.LocalOnly {
			t.Errorf("reload = %+v, %v", cfg, err)
		}
	})

	// SIGHUP is a reload request, not the end of the process.
	t.Run("SIGHUP requests a reload", func(t *testing.T) {
		var r recorder
		r.during = func(ctx context.Context) error {
			if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
				return err
			}
			select {
			case <-r.reload.Requests:
				return nil
			case <-time.After(10 * time.Second):
				return errors.New("no reload request after SIGHUP")
			}
		}
		if code, out := r.run(t, nil, "", "--node", "id=cli", "--local-only"); code != 0 {
			t.Errorf("exit %d; output:\n%s", code, out)
		}
	})

	// --config-v2 files are watched: a change of contents is a request.
	t.Run("config-v2 file change requests a reload", func(t *testing.T) {
		v2 := writeConfig(t, "node:\n  id: v2\nlocal-only: {}\n")
		var r recorder
		r.during = func(ctx context.Context) error {
			if err := os.WriteFile(v2, []byte("node:\n  id: v2\nlocal-only: {}\ntcp-listeners:\n  - port: 4444\n"), 0o600); err != nil {
				return err
			}
			select {
			case <-r.reload.Requests:
			case <-time.After(10 * time.Second):
				return errors.New("no reload request after the file changed")
			}
			cfg, err := r.reload.Load()
			if err != nil {
				return err
			}
			if len(cfg.TCPListeners) != 1 {
				return fmt.Errorf("reloaded v2 config has %d tcp-listeners", len(cfg.TCPListeners))
			}
			return nil
		}
		if code, out := r.run(t, nil, "", "--config-v2", "--config", v2); code != 0 {
			t.Errorf("exit %d; output:\n%s", code, out)
		}
	})

	t.Run("check fails", func(t *testing.T) {
		r := recorder{checkErr: errors.New("tls-server x: no such file")}
		code, out := r.run(t, nil, "", "--node", "id=cli", "--local-only")
		if code != 1 || r.runs != 0 || !strings.Contains(out, "Error: tls-server x: no such file\n") {
			t.Errorf("exit %d, runs %d, output:\n%s", code, r.runs, out)
		}
		// validate runs the check too.
		code, out = r.run(t, nil, "", "validate", "--node", "id=cli", "--local-only")
		if code != 1 || !strings.Contains(out, "Error: tls-server x") {
			t.Errorf("validate: exit %d, output:\n%s", code, out)
		}
	})

	t.Run("run fails", func(t *testing.T) {
		r := recorder{runErr: errors.New("listen tcp :1: permission denied")}
		code, out := r.run(t, nil, "", "--node", "id=cli", "--local-only")
		if code != 1 || !strings.HasSuffix(out, "Error: listen tcp :1: permission denied\n") {
			t.Errorf("exit %d, output:\n%s", code, out)
		}
	})

	t.Run("SIGTERM stops Run", func(t *testing.T) {
		r := recorder{during: func(ctx context.Context) error {
			// Main listens for the signal before it calls Run.
			if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Second):
				return errors.New("context not cancelled by SIGTERM")
			}
		}}
		code, out := r.run(t, nil, "", "--node", "id=cli", "--local-only")
		if code != 0 {
			t.Errorf("exit %d, output:\n%s", code, out)
		}
	})
}

func TestEmbeddedConfig(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "embedded", "data")
	embedded := []byte("---\n- node:\n    id: embedded\n    datadir: " + dataDir + "\n- local-only:\n")
	var r recorder
	code, out := r.run(t, embedded, "", "--embedded-config")
	if code != 0 || r.runs != 1 || r.cfg.Node.ID != "embedded" {
		t.Fatalf("exit %d, runs %d; output:\n%s", code, r.runs, out)
	}
	if st, err := os.Stat(dataDir); err != nil || !st.IsDir() {
		t.Errorf("data directory not created: %v", err)
	}
	// Without an embedded configuration the flag is an ordinary (unknown)
	// entity.
	var r2 recorder
	if code, out := r2.run(t, nil, "", "--embedded-config"); code != 1 || !strings.HasPrefix(out, "Error: ") || r2.runs != 0 {
		t.Errorf("--embedded-config without one: exit %d, output %q", code, out)
	}
}

// TestCertCommands builds a CA, a node certificate request and a signed
// certificate from the command line, as upstream's cert-* entities do.
func TestCertCommands(t *testing.T) {
	dir := t.TempDir()
	f := func(name string) string { return filepath.Join(dir, name) }
	steps := []struct {
		name  string
		stdin string
		args  []string
		code  int
	}{
		{"cert-init", "", []string{"--cert-init", "commonname=Test CA", "bits=2048", "outcert=" + f("ca.crt"), "outkey=" + f("ca.key")}, 0},
		{"cert-makereq", "", []string{"--cert-makereq", "bits=2048", "commonname=node1", "nodeid=node1", "dnsname=node1.example",
			"outreq=" + f("node1.csr"), "outkey=" + f("node1.key")}, 0},
		{"cert-signreq declined", "no\n", []string{"--cert-signreq", "req=" + f("node1.csr"), "cacert=" + f("ca.crt"), "cakey=" + f("ca.key"),
			"outcert=" + f("declined.crt")}, 1},
		{"cert-signreq confirmed", "yes\n", []string{"--cert-signreq", "req=" + f("node1.csr"), "cacert=" + f("ca.crt"), "cakey=" + f("ca.key"),
			"outcert=" + f("node1.crt")}, 0},
		{"cert-signreq verify", "", []string{"--cert-signreq", "req=" + f("node1.csr"), "cacert=" + f("ca.crt"), "cakey=" + f("ca.key"),
			"outcert=" + f("node1b.crt"), "verify=true"}, 0},
	}
	for _, s := range steps {
		var r recorder
		code, out := r.run(t, nil, s.stdin, s.args...)
		if code != s.code || r.runs != 0 {
			t.Fatalf("%s: exit %d (want %d), runs %d; output:\n%s", s.name, code, s.code, r.runs, out)
		}
		if s.stdin != "" && !strings.Contains(out, "Receptor Node ID: node1") {
			t.Errorf("%s: prompt lacks the node ID:\n%s", s.name, out)
		}
	}
	if _, err := os.Stat(f("declined.crt")); err == nil {
		t.Error("a declined request was signed")
	}
	ca := readCert(t, f("ca.crt"))
	for _, name := range []string{"node1.crt", "node1b.crt"} {
		cert := readCert(t, f(name))
		if err := cert.CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s not signed by the CA: %v", name, err)
		}
		ids, err := tlsconf.NodeIDsFromCert(cert)
		if err != nil || len(ids) != 1 || ids[0] != "node1" {
			t.Errorf("%s node IDs = %v, %v", name, ids, err)
		}
		if len(cert.DNSNames) != 1 || cert.DNSNames[0] != "node1.example" {
			t.Errorf("%s DNS names = %v", name, cert.DNSNames)
		}
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
