package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"

	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/router"
	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/work/command"
)

// Test helpers shared by every package (services/testkit).
var (
	freePort = testkit.FreePort
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

// logBuffer collects log output for assertions (and echoes it with -v).
type logBuffer struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if testing.Verbose() {
		l.t.Log(strings.TrimSpace(string(p)))
	}
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog(t testing.TB) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{t: t}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

func parse(t testing.TB, args ...string) *config.Config {
	t.Helper()
	cfg, err := config.ParseArgs(args, nil)
	if err != nil {
		t.Fatalf("ParseArgs(%q): %v", args, err)
	}
	return cfg
}

// service runs fn until the returned stop is called (or the test ends)
// and checks that it returned without error.
func service(t testing.TB, name string, fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("%s: %v", name, err)
				}
			case <-time.After(bound):
				t.Errorf("%s did not stop", name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*bound)
	t.Cleanup(cancel)
	return ctx
}

// submitAndRead submits work through a control socket and returns the
// unit's output once it succeeded.
func submitAndRead(t *testing.T, ctlSock, node, workType, input string) string {
	t.Helper()
	ctx := testCtx(t)
	// The router may be starting: wait for its control socket.
	dial := func() *client.Conn {
		var c *client.Conn
		testkit.Eventually(t, bound, "control socket", func() (err error) {
			c, err = client.Dial(ctx, ctlSock, nil)
			return err
		})
		return c
	}
	c := dial()
	// The work agent may be starting too: wait until the router reaches it.
	testkit.Eventually(t, bound, "work agent", func() error {
		_, err := c.Command(ctx, "work list")
		return err
	})
	res, err := c.SubmitWork(ctx, map[string]string{"node": node, "worktype": workType}, strings.NewReader(input))
	c.Close()
	if err != nil {
		t.Fatalf("work submit %s %s: %v", node, workType, err)
	}
	c = dial()
	defer c.Close()
	testkit.Eventually(t, bound, "unit "+res.UnitID+" succeeds", func() error {
		var ws struct {
			StateName string
			Detail    string
		}
		if err := c.CommandJSON(ctx, map[string]string{"command": "work", "subcommand": "status", "unitid": res.UnitID}, &ws); err != nil {
			return err
		}
		if ws.StateName != "Succeeded" {
			return fmt.Errorf("state %s (%s)", ws.StateName, ws.Detail)
		}
		return nil
	})
	rc := dial()
	defer rc.Close()
	r, err := rc.Results(ctx, res.UnitID, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestRunFromConfig runs receptor-worker against a receptor-router, both
// from their configurations over unix sockets, plus a second node b (a
// router with an in-process work agent) for remote work through the
// router's MeshService. The router restarts while the worker runs.
func TestRunFromConfig(t *testing.T) {
	dir := shortDir(t)
	ctlSock := filepath.Join(dir, "ctl.sock")
	routerAPI := filepath.Join(dir, "router.sock")
	workerAPI := filepath.Join(dir, "worker.sock")
	port := freePort(t)
	routerCfg := parse(t,
		"--node", "id=a", "datadir="+filepath.Join(dir, "router"),
		"--tcp-listener", "port="+strconv.Itoa(port), "bindaddr=127.0.0.1",
		"--control-service", "filename="+ctlSock,
		"--grpc-server", "filename="+routerAPI,
		"--work-agent", "address=unix://"+workerAPI,
	)
	workerCfg := parse(t,
		"--node", "id=a", "datadir="+filepath.Join(dir, "worker"),
		"--router", "address=unix://"+routerAPI,
		"--grpc-server", "filename="+workerAPI,
		"--work-command", "worktype=cat", "command=cat",
	)
	routerLog, _ := newLog(t)
	workerLog, workerLogs := newLog(t)

	// The worker starts first: it waits for the router.
	service(t, "worker", func(ctx context.Context) error { return RunFromConfig(ctx, workerCfg, workerLog, nil) })
	stopRouter := service(t, "router", func(ctx context.Context) error {
		return router.RunFromConfig(ctx, routerCfg, routerLog.With("run", 1), nil)
	})
	startNodeB(t, dir, port)

	if out := submitAndRead(t, ctlSock, "localhost", "cat", "local work\n"); out != "local work\n" {
		t.Errorf("local work output = %q", out)
	}
	// Remote work: the worker dials b's control service through the
	// router's MeshService.
	if out := submitAndRead(t, ctlSock, "b", "cat", "remote work\n"); out != "remote work\n" {
		t.Errorf("remote work output = %q", out)
	}

	// Restart the router; the worker keeps running and both directions
	// reconnect: router → worker (local work) and worker → router (remote).
	stopRouter()
	service(t, "router", func(ctx context.Context) error {
		return router.RunFromConfig(ctx, routerCfg, routerLog.With("run", 2), nil)
	})
	if out := submitAndRead(t, ctlSock, "a", "cat", "after restart\n"); out != "after restart\n" {
		t.Errorf("local work output after restart = %q", out)
	}
	if out := submitAndRead(t, ctlSock, "b", "cat", "remote after restart\n"); out != "remote after restart\n" {
		t.Errorf("remote work output after restart = %q", out)
	}
	if strings.Contains(workerLogs.String(), "node ID differs") {
		t.Errorf("node ID mismatch logged for equal IDs:\n%s", workerLogs)
	}
}

// startNodeB runs node b: a router peered with port whose work agent runs
// in-process, as the all-in-one binary wires it.
func startNodeB(t *testing.T, dir string, port int) {
	t.Helper()
	cfg := parse(t,
		"--node", "id=b", "datadir="+filepath.Join(dir, "b"),
		"--tcp-peer", "address=127.0.0.1:"+strconv.Itoa(port), "redial=true",
		"--control-service", "service=control",
		"--work-command", "worktype=cat", "command=cat",
	)
	log, _ := newLog(t)
	agent, err := NewAgent(cfg, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	pipe := grpcserve.NewInProcess()
	conn, err := pipe.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	r, err := router.New(cfg, router.Options{Logger: log.With("node", "b"), Work: workv1.NewWorkServiceClient(conn)})
	if err != nil {
		t.Fatal(err)
	}
	srv := grpcserve.New(grpcserve.Options{Logger: log})
	Register(srv, agent, nil)
	service(t, "node b", func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return grpcserve.Serve(ctx, srv, pipe.Listener()) })
		g.Go(func() error { return r.Run(ctx) })
		return g.Wait()
	})
}

// TestNodeIDMismatch checks that a worker configured with another node ID
// than its router's says so in its log.
func TestNodeIDMismatch(t *testing.T) {
	dir := shortDir(t)
	routerAPI := filepath.Join(dir, "router.sock")
	routerCfg := parse(t, "--node", "id=a", "datadir="+filepath.Join(dir, "router"), "--local-only",
		"--grpc-server", "filename="+routerAPI)
	workerCfg := parse(t, "--node", "id=x", "datadir="+filepath.Join(dir, "worker"),
		"--router", "address=unix://"+routerAPI, "--grpc-server", "filename="+filepath.Join(dir, "worker.sock"))
	routerLog, _ := newLog(t)
	workerLog, logs := newLog(t)
	service(t, "router", func(ctx context.Context) error { return router.RunFromConfig(ctx, routerCfg, routerLog, nil) })
	service(t, "worker", func(ctx context.Context) error { return RunFromConfig(ctx, workerCfg, workerLog, nil) })
	testkit.Eventually(t, bound, "mismatch logged", func() error {
		s := logs.String()
		if strings.Contains(s, "node ID differs") && strings.Contains(s, "router=a") && strings.Contains(s, "worker=x") {
			return nil
		}
		return errors.New("not yet")
	})
}

// TestRunFromConfigErrors checks the configuration errors of the worker.
func TestRunFromConfigErrors(t *testing.T) {
	dir := shortDir(t)
	log, _ := newLog(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no router", []string{"--node", "id=a", "--grpc-server", "filename=" + filepath.Join(dir, "w.sock")}, "needs a router entity"},
		{"no grpc-server", []string{"--node", "id=a", "datadir=" + dir, "--router", "address=unix://" + filepath.Join(dir, "r.sock")}, "needs a grpc-server entity"},
		{"missing key", []string{"--node", "id=a", "datadir=" + dir, "--router", "address=unix://" + filepath.Join(dir, "r.sock"),
			"--grpc-server", "filename=" + filepath.Join(dir, "w.sock"), "--work-verification", "publickey=" + filepath.Join(dir, "nokey.pem")}, "does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			err := RunFromConfig(ctx, parse(t, tt.args...), log, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("RunFromConfig = %v, want an error containing %q", err, tt.want)
			}
			// A nil logger means slog.Default().
			err = RunFromConfig(ctx, parse(t, tt.args...), nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("RunFromConfig = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
