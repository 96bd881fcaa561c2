package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/internal/workapi"
	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/work"
	"github.com/receptor-mesh/receptor/services/work/command"
	"github.com/receptor-mesh/receptor/services/work/signing"
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

// bound is the failure bound of every wait in these tests.
const bound = 20 * time.Second

func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*bound)
	t.Cleanup(cancel)
	return ctx
}

// testLogger writes to the test log only when -v is set, so failures keep
// their context without flooding normal runs.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// node is one running router of a test mesh.
type node struct {
	id      string
	r       *Router
	dir     string
	port    int    // its tcp-listener port, 0 for none
	ctlSock string // control-service unix socket
	apiSock string // grpc-server unix socket
	conn    *grpc.ClientConn
	mesh    meshv1.MeshServiceClient
	control controlv1.ControlServiceClient
	stop    func() error
}

// nodeSpec describes a router to start.
type nodeSpec struct {
	id     string
	listen bool  // add a tcp-listener on a free port
	peers  []int // tcp-peer ports on 127.0.0.1
	extra  []string
	opts   Options
}

// startNode builds a router from a command line, runs it until the test
// ends, and connects a gRPC client to its grpc-server unix socket.
func startNode(t testing.TB, spec nodeSpec) *node {
	t.Helper()
	n := &node{id: spec.id, dir: shortDir(t)}
	n.ctlSock = filepath.Join(n.dir, "ctl.sock")
	n.apiSock = filepath.Join(n.dir, "api.sock")
	args := []string{
		"--node", "id=" + spec.id, "datadir=" + filepath.Join(n.dir, "data"),
		"--control-service", "filename=" + n.ctlSock,
		"--grpc-server", "filename=" + n.apiSock,
	}
	if spec.listen {
		n.port = freePort(t)
		args = append(args, "--tcp-listener", "port="+strconv.Itoa(n.port), "bindaddr=127.0.0.1")
	}
	for _, p := range spec.peers {
		args = append(args, "--tcp-peer", "address=127.0.0.1:"+strconv.Itoa(p), "redial=true")
	}
	if !spec.listen && len(spec.peers) == 0 {
		args = append(args, "--local-only")
	}
	args = append(args, spec.extra...)
	cfg, err := config.ParseArgs(args, nil)
	if err != nil {
		t.Fatalf("ParseArgs(%q): %v", args, err)
	}
	opts := spec.opts
	if opts.Logger == nil {
		opts.Logger = testLogger(t).With("node", spec.id)
	}
	n.r, err = New(cfg, opts)
	if err != nil {
		t.Fatalf("New(%s): %v", spec.id, err)
	}
	n.stop = runRouter(t, n.r)
	connect(t, n)
	waitControlSocket(t, n)
	return n
}

// waitControlSocket waits until n's control socket greets: the router opens
// its control services after every other face.
func waitControlSocket(t testing.TB, n *node) {
	t.Helper()
	ctx := testCtx(t)
	testkit.Eventually(t, bound, fmt.Sprintf("node %s: control socket %s answering", n.id, n.ctlSock), func() error {
		c, err := client.Dial(ctx, n.ctlSock, nil)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// connect dials n's grpc-server unix socket and waits until it answers.
func connect(t testing.TB, n *node) {
	t.Helper()
	conn, err := grpcserve.Dial("unix://"+n.apiSock, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	n.conn = conn
	n.mesh = meshv1.NewMeshServiceClient(conn)
	n.control = controlv1.NewControlServiceClient(conn)
	ctx := testCtx(t)
	if _, err := n.mesh.GetVersion(ctx, &meshv1.GetVersionRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("node %s does not answer on %s: %v", n.id, n.apiSock, err)
	}
}

// runRouter runs r until the returned stop is called (or the test ends)
// and reports Run's result.
func runRouter(t testing.TB, r *Router) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(bound):
				runErr = errors.New("Run did not return after cancel")
			}
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return stop
}

// line starts a line a - b - c of routers and waits until a routes to c.
func line(t testing.TB) (a, b, c *node) {
	t.Helper()
	a = startNode(t, nodeSpec{id: "a", listen: true})
	b = startNode(t, nodeSpec{id: "b", listen: true, peers: []int{a.port}})
	c = startNode(t, nodeSpec{id: "c", peers: []int{b.port}})
	waitRoutes(t, a, "b", "c")
	waitRoutes(t, c, "a", "b")
	return a, b, c
}

// waitRoutes waits until n has a route to each of ids.
func waitRoutes(t testing.TB, n *node, ids ...string) {
	t.Helper()
	ctx := testCtx(t)
	testkit.Eventually(t, bound, "routes of "+n.id, func() error {
		resp, err := n.mesh.GetStatus(ctx, &meshv1.GetStatusRequest{})
		if err != nil {
			return err
		}
		for _, id := range ids {
			if _, ok := resp.GetStatus().GetRoutingTable()[id]; !ok {
				return fmt.Errorf("no route to %s in %v", id, resp.GetStatus().GetRoutingTable())
			}
		}
		return nil
	})
}

// workTypes are the work types of the agents in these tests.
var testWorkTypes = []command.Config{
	{WorkType: "cat", Command: "cat"},
	{WorkType: "echo", Command: "echo", AllowRuntimeParams: true},
	{WorkType: "sleep", Command: "sleep", AllowRuntimeParams: true},
	{WorkType: "secure", Command: "cat", VerifySignature: true},
}

// workAgent is a real work agent served by workapi on an in-process gRPC
// listener, as the all-in-one binary wires it.
type workAgent struct {
	agent  *work.Agent
	client workv1.WorkServiceClient
}

// startWorkAgent runs a work agent for nodeID until the test ends.
// publicKey, when set, verifies signed work.
func startWorkAgent(t testing.TB, nodeID, publicKey string) *workAgent {
	t.Helper()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	var types []work.WorkType
	for _, c := range testWorkTypes {
		ct, err := command.New(c, command.Options{RunnerOutput: devnull, CancelGrace: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, work.CommandType(ct))
	}
	var verifier *signing.Verifier
	if publicKey != "" {
		if verifier, err = signing.NewVerifier(publicKey, 0); err != nil {
			t.Fatal(err)
		}
	}
	agent, err := work.New(work.Options{
		NodeID: nodeID, DataDir: t.TempDir(), WorkTypes: types, Verifier: verifier, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	pipe := grpcserve.NewInProcess()
	srv := grpcserve.New(grpcserve.Options{Logger: testLogger(t)})
	workv1.RegisterWorkServiceServer(srv, workapi.New(agent, "9.9.9", nil))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- grpcserve.Serve(ctx, srv, pipe.Listener()) }()
	conn, err := pipe.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serving work agent: %v", err)
		}
		agent.Close()
	})
	return &workAgent{agent: agent, client: workv1.NewWorkServiceClient(conn)}
}
