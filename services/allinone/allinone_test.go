package allinone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/work/command"
)

// Test helpers shared by every package (services/testkit).
var (
	shortDir = testkit.ShortTempDir
)

func TestMain(m *testing.M) {
	// Command work units re-execute this test binary as their runner.
	if command.IsRunnerInvocation(os.Args[1:]) {
		os.Exit(command.RunnerMain(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

const bound = 20 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestRunLocalOnly runs router and work agent in one process from a
// local-only configuration and uses work through the control socket.
func TestRunLocalOnly(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "ctl.sock")
	cfg, err := config.ParseArgs([]string{
		"--node", "id=solo", "datadir=" + filepath.Join(dir, "data"), "--local-only",
		"--control-service", "filename=" + sock,
		"--work-command", "worktype=cat", "command=cat",
		"--work-command", "worktype=echo", "command=echo", "allowruntimeparams=true",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Check(cfg, quiet()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, quiet(), nil) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(bound):
			t.Error("Run did not return after cancel")
		}
	}()

	tctx, tcancel := context.WithTimeout(context.Background(), 3*bound)
	defer tcancel()
	dial := func() *client.Conn {
		t.Helper()
		var c *client.Conn
		testkit.Eventually(t, bound, "control socket", func() (err error) {
			c, err = client.Dial(tctx, sock, nil)
			return err
		})
		t.Cleanup(func() { c.Close() })
		return c
	}
	// The work agent's types reach the control advertisement.
	c := dial()
	testkit.Eventually(t, bound, "work commands advertised", func() error {
		var st struct {
			NodeID         string
			Advertisements []struct {
				Service      string
				WorkCommands []struct{ WorkType string }
			}
		}
		if err := c.CommandJSON(tctx, map[string]string{"command": "status"}, &st); err != nil {
			return err
		}
		if st.NodeID != "solo" {
			return fmt.Errorf("node %q", st.NodeID)
		}
		for _, ad := range st.Advertisements {
			if ad.Service == "control" && len(ad.WorkCommands) == 2 && ad.WorkCommands[0].WorkType == "cat" {
				return nil
			}
		}
		return fmt.Errorf("advertisements %+v", st.Advertisements)
	})

	res, err := dial().SubmitWork(tctx, map[string]string{"node": "localhost", "worktype": "cat"}, strings.NewReader("all in one\n"))
	if err != nil || res.Result != "Job Started" {
		t.Fatalf("work submit = %+v, %v", res, err)
	}
	c = dial()
	testkit.Eventually(t, bound, "unit succeeds", func() error {
		var ws struct{ StateName string }
		if err := c.CommandJSON(tctx, map[string]string{"command": "work", "subcommand": "status", "unitid": res.UnitID}, &ws); err != nil {
			return err
		}
		if ws.StateName != "Succeeded" {
			return fmt.Errorf("state %s", ws.StateName)
		}
		return nil
	})
	r, err := dial().Results(tctx, res.UnitID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := io.ReadAll(r); err != nil || string(out) != "all in one\n" {
		t.Errorf("results = %q, %v", out, err)
	}

	res, err = dial().SubmitWork(tctx, map[string]string{"node": "solo", "worktype": "echo", "params": "a b"}, nil)
	if err != nil {
		t.Fatalf("echo submit: %v", err)
	}
	r, err = dial().Results(tctx, res.UnitID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := io.ReadAll(r); err != nil || string(out) != "a b\n" {
		t.Errorf("echo results = %q, %v", out, err)
	}
	var list map[string]any
	if err := dial().CommandJSON(tctx, map[string]string{"command": "work", "subcommand": "list"}, &list); err != nil || len(list) != 2 {
		t.Errorf("work list = %v, %v", list, err)
	}
}

// TestRunErrors checks start-up failures.
func TestRunErrors(t *testing.T) {
	dir := shortDir(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no backends", []string{"--node", "id=x", "datadir=" + dir}, "no backends configured"},
		// A bind error names the entity that failed.
		{"busy gateway port", []string{"--node", "id=x", "datadir=" + dir, "--local-only", "--http-gateway", "tcplisten=" + busy.Addr().String(),
			"tokenfile=" + filepath.Join(dir, "token")}, "http-gateway: tcplisten \"" + busy.Addr().String() + "\": listen tcp"},
		{"busy listener port", []string{"--node", "id=x", "datadir=" + dir, "--tcp-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)},
			"tcp-listener " + strconv.Itoa(busy.Addr().(*net.TCPAddr).Port) + ": start tcp-listener backend"},
		{"ip-router", []string{"--node", "id=x", "datadir=" + dir, "--local-only", "--ip-router", "networkname=n", "localnet=10.0.0.0/30"}, "ip-router: not implemented by this build"},
		{"work-python", []string{"--node", "id=x", "datadir=" + dir, "--local-only", "--work-python", "worktype=p", "plugin=x", "function=f"},
			"work-python p: [DEPRECATION WARNING] 'work-python' option is not currently being used"},
		{"busy socket", []string{"--node", "id=x", "datadir=" + dir, "--local-only",
			"--control-service", "filename=" + filepath.Join(dir, "busy.sock"),
			"--control-service", "service=c2", "filename=" + filepath.Join(dir, "busy.sock")}, "control-service"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.ParseArgs(tt.args, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			err = Run(ctx, cfg, quiet(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Run = %v, want an error about %q", err, tt.want)
			}
			// A nil logger means slog.Default().
			if err := Run(ctx, cfg, nil, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run with a nil logger = %v, want an error about %q", err, tt.want)
			}
		})
	}
}

// runNode runs an all-in-one node from args until the test ends.
func runNode(t *testing.T, args ...string) {
	t.Helper()
	cfg, err := config.ParseArgs(args, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, quiet(), nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run %v: %v", args, err)
			}
		case <-time.After(bound):
			t.Error("Run did not return after cancel")
		}
	})
}

// TestRemoteWork submits work on node a for node b: a's work agent reaches
// b's control service through a's router over the in-process gRPC wiring.
func TestRemoteWork(t *testing.T) {
	dir := shortDir(t)
	sockA := filepath.Join(dir, "a.sock")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	runNode(t, "--node", "id=a", "datadir="+filepath.Join(dir, "a"),
		"--tcp-listener", "port="+port, "bindaddr=127.0.0.1",
		"--control-service", "filename="+sockA)
	runNode(t, "--node", "id=b", "datadir="+filepath.Join(dir, "b"),
		"--tcp-peer", "address=127.0.0.1:"+port, "redial=true",
		"--control-service", "service=control",
		"--work-command", "worktype=cat", "command=cat")

	ctx, cancel := context.WithTimeout(context.Background(), 3*bound)
	defer cancel()
	dial := func() *client.Conn {
		t.Helper()
		var c *client.Conn
		testkit.Eventually(t, bound, "control socket of a", func() (err error) {
			c, err = client.Dial(ctx, sockA, nil)
			return err
		})
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Wait until b's control service (with its work type) is known at a.
	c := dial()
	testkit.Eventually(t, bound, "b's control ad at a", func() error {
		var st struct {
			Advertisements []struct {
				NodeID, Service string
				WorkCommands    []struct{ WorkType string }
			}
		}
		if err := c.CommandJSON(ctx, map[string]string{"command": "status"}, &st); err != nil {
			return err
		}
		for _, ad := range st.Advertisements {
			if ad.NodeID == "b" && ad.Service == "control" && len(ad.WorkCommands) == 1 {
				return nil
			}
		}
		return fmt.Errorf("advertisements %+v", st.Advertisements)
	})
	res, err := dial().SubmitWork(ctx, map[string]string{"node": "b", "worktype": "cat"}, strings.NewReader("remote via a\n"))
	if err != nil {
		t.Fatalf("remote work submit: %v", err)
	}
	c = dial()
	testkit.Eventually(t, bound, "remote unit succeeds", func() error {
		var ws struct{ StateName, Detail string }
		if err := c.CommandJSON(ctx, map[string]string{"command": "work", "subcommand": "status", "unitid": res.UnitID}, &ws); err != nil {
			return err
		}
		if ws.StateName != "Succeeded" {
			return fmt.Errorf("state %s (%s)", ws.StateName, ws.Detail)
		}
		return nil
	})
	r, err := dial().Results(ctx, res.UnitID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := io.ReadAll(r); err != nil || string(out) != "remote via a\n" {
		t.Errorf("remote results = %q, %v", out, err)
	}
}
