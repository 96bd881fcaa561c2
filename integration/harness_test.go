package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// Harness helpers shared with the other binary suites (services/testkit).
var (
	freePort     = testkit.FreePort
	shortTempDir = testkit.ShortTempDir
	entity       = testkit.Entity
	yamlQuote    = testkit.YAMLQuote
)

// Failure bounds for eventually-style polling; never timing assertions.
const (
	startTimeout    = 30 * time.Second
	convergeTimeout = 30 * time.Second
	commandTimeout  = 20 * time.Second
	stopTimeout     = 10 * time.Second
	logTailBytes    = 24 << 10
	bindRetries     = 3
)

const routerBin = "receptor-router"

// binPath is the path of one of the project's binaries.
func binPath(name string) string { return filepath.Join(binDir, name) }

// Spec says how to run one node. Config and Args are called again when
// the node is restarted after a bind race, after its ports were forgotten.
type Spec struct {
	// Bin is the binary name in binDir (default receptor-router).
	Bin string
	// Config returns an upstream v1 YAML configuration, written to
	// <dir>/receptor.yaml and passed as `-c FILE`; nil for none.
	Config func(n *Node) string
	// Args returns command-line entities (after -c FILE, if any).
	Args func(n *Node) []string
	// NoReadyCheck skips waiting for the control socket (for nodes that
	// have none or are expected to fail).
	NoReadyCheck bool
}

// Node is one receptor process on loopback with its own directory, ports,
// control socket and log file.
type Node struct {
	t      *testing.T
	ID     string
	Dir    string
	Socket string // control socket path used by the standard configs
	Log    string // stdout and stderr of every run, appended

	spec  Spec
	ports map[string]int

	mu      sync.Mutex
	proc    *testkit.Process // the current or last run
	stopped bool             // Stop or Kill has been called for the current run
	readyAt time.Time        // when the last run answered its first status
}

// NewNode prepares a node; nothing runs until Start.
func NewNode(t *testing.T, id string) *Node {
	t.Helper()
	dir := shortTempDir(t)
	n := &Node{
		t: t, ID: id, Dir: dir,
		Socket: filepath.Join(dir, "ctl.sock"),
		Log:    filepath.Join(dir, "node.log"),
		ports:  map[string]int{},
	}
	t.Cleanup(func() {
		if n.running() {
			n.Stop()
		} else if crashed, err := n.exitedByItself(); crashed {
			t.Errorf("node %s exited without being stopped: %v", n.ID, err)
		}
		if t.Failed() {
			t.Logf("---- log of node %s (%s) ----\n%s", n.ID, n.Log, n.logTail())
		}
	})
	return n
}

// Port returns the node's port for name, allocating it on first use.
func (n *Node) Port(name string) int {
	if p, ok := n.ports[name]; ok {
		return p
	}
	p := freePort(n.t)
	n.ports[name] = p
	return p
}

// Addr is "127.0.0.1:<Port(name)>".
func (n *Node) Addr(name string) string { return fmt.Sprintf("127.0.0.1:%d", n.Port(name)) }

// ConfigPath is where Start writes the YAML configuration.
func (n *Node) ConfigPath() string { return filepath.Join(n.Dir, "receptor.yaml") }

// Start runs the node and waits until its control socket answers status.
// A start that fails because a port was taken meanwhile is retried with
// new ports.
func (n *Node) Start(spec Spec) {
	n.t.Helper()
	if spec.Bin == "" {
		spec.Bin = routerBin
	}
	n.spec = spec
	for attempt := 1; ; attempt++ {
		err := n.startOnce()
		if err == nil {
			return
		}
		if attempt < bindRetries && strings.Contains(n.logTail(), "address already in use") {
			n.t.Logf("node %s: port taken, retrying with new ports: %v", n.ID, err)
			n.ports = map[string]int{}
			continue
		}
		n.t.Fatalf("node %s did not start: %v\n---- log ----\n%s", n.ID, err, n.logTail())
	}
}

// Restart starts the node again with the same configuration and ports.
func (n *Node) Restart() {
	n.t.Helper()
	// A node's routing epoch is its start time in whole seconds plus a
	// random part (docs/protocol.md §2.3), and peers ignore updates from a smaller
	// epoch (docs/protocol.md §6.2). A restart in the same second has a smaller epoch half
	// of the time, so start the new process in a later second, as a real
	// restart would be.
	n.mu.Lock()
	prev := n.readyAt
	n.mu.Unlock()
	if wait := time.Until(prev.Truncate(time.Second).Add(time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	if err := n.startOnce(); err != nil {
		n.t.Fatalf("node %s did not restart: %v\n---- log ----\n%s", n.ID, err, n.logTail())
	}
}

func (n *Node) startOnce() error {
	var args []string
	if n.spec.Config != nil {
		if err := os.WriteFile(n.ConfigPath(), []byte(n.spec.Config(n)), 0o600); err != nil {
			return fmt.Errorf("write config: %w", err)
		}
		args = append(args, "-c", n.ConfigPath())
	}
	if n.spec.Args != nil {
		args = append(args, n.spec.Args(n)...)
	}
	if err := testkit.AppendLog(n.Log, fmt.Sprintf("==== start %s %s\n", n.spec.Bin, strings.Join(args, " "))); err != nil {
		return err
	}
	proc, err := testkit.StartProcess(n.Dir, n.Log, binPath(n.spec.Bin), args...)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.proc, n.stopped = proc, false
	n.mu.Unlock()
	if n.spec.NoReadyCheck {
		return nil
	}
	if err := proc.WaitReady(startTimeout, func() error { _, _, err := n.status(); return err }); err != nil {
		proc.Kill()
		return fmt.Errorf("control socket: %w", err)
	}
	n.mu.Lock()
	n.readyAt = time.Now()
	n.mu.Unlock()
	return nil
}

func (n *Node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return false
	}
	exited, _ := n.proc.Exited()
	return !exited
}

// Stop sends SIGTERM and requires a clean exit (status 0) within
// stopTimeout; clean shutdown is a feature.
func (n *Node) Stop() {
	n.t.Helper()
	n.mu.Lock()
	proc := n.proc
	n.stopped = true
	n.mu.Unlock()
	if proc == nil {
		return
	}
	if err := proc.Stop(stopTimeout); errors.Is(err, testkit.ErrStopTimeout) {
		n.t.Errorf("node %s %v", n.ID, err)
	} else if err != nil {
		n.t.Errorf("node %s did not exit cleanly after SIGTERM: %v", n.ID, err)
	}
}

// Kill ends the node with SIGKILL (a crash) and waits for it.
func (n *Node) Kill() {
	n.mu.Lock()
	proc := n.proc
	n.stopped = true
	n.mu.Unlock()
	if proc != nil {
		proc.Kill()
	}
}

// exitedByItself reports whether the last run ended without Stop, Kill
// or a signal from the test (a crash, or an unexpected clean exit).
func (n *Node) exitedByItself() (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil || n.stopped {
		return false, nil
	}
	return n.proc.Exited()
}

// Exited reports whether the process has ended, and its Wait error.
func (n *Node) Exited() (bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return false, nil
	}
	return n.proc.Exited()
}

// logTail is the end of the node's log.
func (n *Node) logTail() string { return testkit.LogTail(n.Log, logTailBytes) }

// LogContains reports whether the node's log contains s.
func (n *Node) LogContains(s string) bool {
	b, _ := os.ReadFile(n.Log)
	return bytes.Contains(b, []byte(s))
}

// Status is the decoded reply of the control `status` command.
type Status struct {
	NodeID               string
	Version              string
	SystemCPUCount       int
	SystemMemoryMiB      int
	Connections          []Connection
	KnownConnectionCosts map[string]map[string]float64
	RoutingTable         map[string]string
	Advertisements       []Advertisement
}

// Connection is one entry of Status.Connections.
type Connection struct {
	NodeID string
	Cost   float64
}

// Advertisement is one entry of Status.Advertisements.
type Advertisement struct {
	NodeID   string
	Service  string
	Time     time.Time
	ConnType int
	Tags     map[string]string
}

// ConnectedTo reports whether the node has a direct connection to id.
func (s Status) ConnectedTo(id string) bool {
	for _, c := range s.Connections {
		if c.NodeID == id {
			return true
		}
	}
	return false
}

func (s Status) String() string {
	b, _ := json.Marshal(struct {
		Connections          []Connection
		KnownConnectionCosts map[string]map[string]float64
		RoutingTable         map[string]string
	}{s.Connections, s.KnownConnectionCosts, s.RoutingTable})
	return string(b)
}

// Dial opens a control session on the node's socket.
func (n *Node) Dial(ctx context.Context) (*client.Conn, error) {
	return client.Dial(ctx, "unix:"+n.Socket, nil)
}

func (n *Node) status() (Status, json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	c, err := n.Dial(ctx)
	if err != nil {
		return Status{}, nil, err
	}
	defer c.Close()
	raw, err := c.Command(ctx, "status")
	if err != nil {
		return Status{}, nil, fmt.Errorf("status on %s: %w", n.ID, err)
	}
	var s Status
	if err := json.Unmarshal(raw, &s); err != nil {
		return Status{}, raw, fmt.Errorf("decode status of %s: %w", n.ID, err)
	}
	return s, raw, nil
}

// Status runs the control `status` command.
func (n *Node) Status() Status {
	n.t.Helper()
	s, _, err := n.status()
	if err != nil {
		n.t.Fatalf("%v", err)
	}
	return s
}

// WaitStatus polls status until cond holds.
func (n *Node) WaitStatus(what string, cond func(Status) bool) Status {
	n.t.Helper()
	var last Status
	var lastErr error
	ok := testkit.Poll(convergeTimeout, func() bool {
		s, _, err := n.status()
		if err != nil {
			lastErr = err
			return false
		}
		last, lastErr = s, nil
		return cond(s)
	})
	if !ok {
		n.t.Fatalf("node %s: %s not reached within %v; last status %v, last error %v",
			n.ID, what, convergeTimeout, last, lastErr)
	}
	return last
}

// WaitRoutes waits until the node's routing table has exactly want.
func (n *Node) WaitRoutes(want map[string]string) Status {
	n.t.Helper()
	return n.WaitStatus(fmt.Sprintf("routing table %v", want), func(s Status) bool {
		return equalMaps(s.RoutingTable, want)
	})
}

// WaitKnownNodes waits until KnownConnectionCosts has exactly the nodes
// ids (the readiness probe of receptorctl's own test suite).
func (n *Node) WaitKnownNodes(ids ...string) Status {
	n.t.Helper()
	want := append([]string(nil), ids...)
	sort.Strings(want)
	return n.WaitStatus(fmt.Sprintf("known nodes %v", want), func(s Status) bool {
		got := make([]string, 0, len(s.KnownConnectionCosts))
		for k := range s.KnownConnectionCosts {
			got = append(got, k)
		}
		sort.Strings(got)
		return strings.Join(got, ",") == strings.Join(want, ",")
	})
}

// Command sends one line on a fresh control session and returns the
// reply line as sent by the node (without "\n").
func (n *Node) Command(line string) string {
	n.t.Helper()
	rc := n.Raw()
	defer rc.Close()
	rc.Send(line + "\n")
	return rc.Line()
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// RawConn is a control session spoken byte by byte, as receptorctl does.
type RawConn struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// Raw connects to the node's control socket and consumes the greeting,
// checking it byte for byte.
func (n *Node) Raw() *RawConn {
	n.t.Helper()
	rc := n.RawNoGreeting()
	if got, want := rc.Line(), "Receptor Control, node "+n.ID; got != want {
		n.t.Fatalf("greeting: got %q, want %q", got, want)
	}
	return rc
}

// RawNoGreeting connects without reading anything.
func (n *Node) RawNoGreeting() *RawConn {
	n.t.Helper()
	c, err := net.DialTimeout("unix", n.Socket, commandTimeout)
	if err != nil {
		n.t.Fatalf("dial control socket of %s: %v", n.ID, err)
	}
	return &RawConn{t: n.t, conn: c, br: bufio.NewReader(c)}
}

// Send writes s as is.
func (r *RawConn) Send(s string) {
	r.t.Helper()
	_ = r.conn.SetWriteDeadline(time.Now().Add(commandTimeout))
	if _, err := r.conn.Write([]byte(s)); err != nil {
		r.t.Fatalf("write %q: %v", truncate(s), err)
	}
}

// Line reads one line and returns it without its "\n"; it fails the test
// when the line does not end in "\n".
func (r *RawConn) Line() string {
	r.t.Helper()
	line, err := r.ReadLine()
	if err != nil {
		r.t.Fatalf("read reply line: %v (partial %q)", err, truncate(line))
	}
	return line
}

// ReadLine reads one line, returning what came before an error too.
func (r *RawConn) ReadLine() (string, error) {
	_ = r.conn.SetReadDeadline(time.Now().Add(commandTimeout))
	line, err := r.br.ReadString('\n')
	if err != nil {
		return line, err
	}
	return strings.TrimSuffix(line, "\n"), nil
}

// ExpectEOF requires that the node closes the session with no more bytes.
func (r *RawConn) ExpectEOF() {
	r.t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(commandTimeout))
	rest, err := r.br.ReadString('\n')
	if !errors.Is(err, io.EOF) || rest != "" {
		r.t.Fatalf("want EOF, got %q, %v", truncate(rest), err)
	}
}

// CloseWrite half-closes the session.
func (r *RawConn) CloseWrite() {
	r.t.Helper()
	if err := r.conn.(*net.UnixConn).CloseWrite(); err != nil {
		r.t.Fatalf("half-close: %v", err)
	}
}

// Close closes the session.
func (r *RawConn) Close() { _ = r.conn.Close() }

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// Result is the outcome of a one-shot command.
type Result struct {
	Out  string // stdout and stderr, interleaved
	Code int
}

// runCommand runs a binary to completion (one-shot commands: --help,
// cert-*, validate, bad configurations) and returns its output and exit
// code; it fails the test when the process cannot run or hangs.
func runCommand(t *testing.T, dir, bin string, stdin string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath(bin), args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ctx.Err() == nil:
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out.String())
	}
	return Result{Out: out.String(), Code: code}
}
