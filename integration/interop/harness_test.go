package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// Failure bounds for eventually-style polling (never timing assertions).
const (
	startTimeout    = 20 * time.Second
	convergeTimeout = 20 * time.Second
	adTimeout       = 80 * time.Second // upstream advertises every 60 s
	commandTimeout  = 15 * time.Second
	logTailBytes    = 16 << 10
)

// upstreamBin is the upstream receptor executable, or "".
func upstreamBin() string { return os.Getenv("RECEPTOR_UPSTREAM_BIN") }

func requireUpstream(t *testing.T) string {
	t.Helper()
	bin := upstreamBin()
	if bin == "" {
		t.Skip("RECEPTOR_UPSTREAM_BIN is not set")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("RECEPTOR_UPSTREAM_BIN: %v", err)
	}
	return bin
}

// Ports for child processes are picked below Linux's ephemeral range
// (32768+), so outgoing connections of concurrent tests cannot take them
// between the check and the child's bind; startListening retries the rest.
const (
	portLow  = 20000
	portHigh = 32000
)

// freeTCPPort returns a port that was free on 127.0.0.1 a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := portLow + rand.IntN(portHigh-portLow)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatal("no free tcp port found")
	return 0
}

// freeUDPPort returns a UDP port that was free on 127.0.0.1 a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := portLow + rand.IntN(portHigh-portLow)
		c, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no free udp port found")
	return 0
}

// procNode is a receptor process (upstream's, or our binary with the same
// command line) with a control service on a Unix socket.
type procNode struct {
	t    *testing.T
	ID   string
	Sock string
	dir  string
	log  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // Wait's result, valid after done
	// readyLog, when set, must appear in the log before the node counts as
	// started.
	readyLog string
}

// startProc starts bin as node id with the given extra entities and waits
// until its control socket answers. The process is killed in t.Cleanup.
func startProc(t *testing.T, bin, id string, args ...string) *procNode {
	t.Helper()
	p, err := launch(t, bin, id, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startListening is startProc for a node with listeners on picked ports:
// args picks fresh ports on each call, and a start that fails because a port
// was taken meanwhile is retried.
func startListening(t *testing.T, bin, id string, args func() []string) *procNode {
	t.Helper()
	var err error
	for range 3 {
		var p *procNode
		if p, err = launch(t, bin, id, args()...); err == nil {
			return p
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		t.Logf("node %s: port taken, retrying with new ports", id)
	}
	t.Fatal(err)
	return nil
}

// launch starts the process; an error means it did not become ready.
func launch(t *testing.T, bin, id string, args ...string) (*procNode, error) {
	t.Helper()
	dir := t.TempDir()
	p := &procNode{t: t, ID: id, dir: dir, Sock: filepath.Join(dir, "ctl.sock"),
		log: filepath.Join(dir, "node.log"), done: make(chan struct{})}
	// Both implementations log this once backends and proxies are bound;
	// the control socket answers earlier.
	p.readyLog = "Initialization complete"
	full := append([]string{
		"--node", "id=" + id, "datadir=" + filepath.Join(dir, "data"),
		"--log-level", "level=debug",
		"--control-service", "filename=" + p.Sock,
	}, args...)
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, fmt.Errorf("node %s log file: %w", id, err)
	}
	p.cmd = exec.Command(bin, full...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Dir = dir
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s as node %s: %w", bin, id, err)
	}
	t.Logf("node %s: pid %d: %s %s", id, p.cmd.Process.Pid, filepath.Base(bin), strings.Join(full, " "))
	// The waiter is owned by this procNode; Stop (in Cleanup) ends it.
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() || os.Getenv("INTEROP_LOG") != "" {
			t.Logf("---- log of node %s (%s), tail ----\n%s", id, filepath.Base(bin), p.LogTail())
		}
	})
	if err := p.waitReady(); err != nil {
		return nil, err
	}
	return p, nil
}

// Stop kills the process (if running) and waits for it.
func (p *procNode) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Exited reports whether the process has ended.
func (p *procNode) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns the whole log so far.
func (p *procNode) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// LogTail returns the end of the log.
func (p *procNode) LogTail() string {
	s := p.Log()
	if len(s) > logTailBytes {
		s = "…" + s[len(s)-logTailBytes:]
	}
	return s
}

func (p *procNode) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	for {
		if p.Exited() {
			return fmt.Errorf("node %s exited during startup (%v); log:\n%s", p.ID, p.err, p.LogTail())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := client.Dial(ctx, "unix:"+p.Sock, nil)
		cancel()
		if err == nil {
			id := c.NodeID()
			c.Close()
			if id != p.ID {
				return fmt.Errorf("node %s greets as %q", p.ID, id)
			}
			// Upstream starts backends after the control service; dialing
			// before that costs a 5 s redial.
			if p.readyLog == "" || strings.Contains(p.Log(), p.readyLog) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s control socket not ready within %v: %v; log:\n%s", p.ID, startTimeout, err, p.LogTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Dial opens a control session; the caller closes it.
func (p *procNode) Dial(ctx context.Context) (*client.Conn, error) {
	c, err := client.Dial(ctx, "unix:"+p.Sock, nil)
	if err != nil {
		return nil, fmt.Errorf("control socket of %s: %w", p.ID, err)
	}
	return c, nil
}

// Command runs one control command on a fresh session and decodes its reply.
func (p *procNode) Command(cmd string, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	c, err := p.Dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	raw, err := c.Command(ctx, cmd)
	if err != nil {
		return fmt.Errorf("%s: %q: %w", p.ID, cmd, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s: %q: decoding %s: %w", p.ID, cmd, raw, err)
	}
	return nil
}

// ctlStatus is the part of the control "status" reply the tests read.
type ctlStatus struct {
	NodeID      string
	Connections []struct {
		NodeID string
		Cost   float64
	}
	RoutingTable         map[string]string
	KnownConnectionCosts map[string]map[string]float64
	Advertisements       []ctlAd
}

type ctlAd struct {
	NodeID       string
	Service      string
	Time         time.Time
	ConnType     int
	Tags         map[string]string
	WorkCommands []struct {
		WorkType string
		Secure   bool
	}
}

// Status is the node's control "status", or a zero value and the error.
func (p *procNode) Status() (ctlStatus, error) {
	var s ctlStatus
	err := p.Command(`{"command":"status"}`, &s)
	return s, err
}

// ConnCost returns the cost of the node's direct connection to peer.
func (s ctlStatus) ConnCost(peer string) (float64, bool) {
	for _, c := range s.Connections {
		if c.NodeID == peer {
			return c.Cost, true
		}
	}
	return 0, false
}

// Ad returns the advertisement of node:service.
func (s ctlStatus) Ad(node, service string) (ctlAd, bool) {
	for _, a := range s.Advertisements {
		if a.NodeID == node && a.Service == service {
			return a, true
		}
	}
	return ctlAd{}, false
}

type ctlPing struct {
	From    string
	Success bool
	Time    int64
	Error   string
}

// Ping runs the control "ping" command.
func (p *procNode) Ping(target string) (ctlPing, error) {
	var r ctlPing
	err := p.Command("ping "+target, &r)
	return r, err
}

type ctlHop struct {
	From  string
	Time  int64
	Error string
}

// Traceroute runs the control "traceroute" command; hops in order.
func (p *procNode) Traceroute(target string) ([]ctlHop, error) {
	var r map[string]ctlHop
	if err := p.Command("traceroute "+target, &r); err != nil {
		return nil, err
	}
	hops := make([]ctlHop, len(r))
	for k, v := range r {
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(r) {
			return nil, fmt.Errorf("traceroute %s on %s: bad hop key %q in %v", target, p.ID, k, r)
		}
		hops[i] = v
	}
	return hops, nil
}

// waitConnected waits until p's status lists peer as a connection of cost.
func (p *procNode) waitConnected(peer string, cost float64) {
	p.t.Helper()
	testkit.Eventually(p.t, convergeTimeout, fmt.Sprintf("%s lists connection to %s with cost %v", p.ID, peer, cost), func() error {
		s, err := p.Status()
		if err != nil {
			return err
		}
		c, ok := s.ConnCost(peer)
		if ok && c == cost {
			return nil
		}
		return fmt.Errorf("connections %+v", s.Connections)
	})
}

// waitRoute waits until p routes to dest via next.
func (p *procNode) waitRoute(dest, next string) {
	p.t.Helper()
	testkit.Eventually(p.t, convergeTimeout, fmt.Sprintf("%s routes to %s via %s", p.ID, dest, next), func() error {
		s, err := p.Status()
		if err != nil {
			return err
		}
		if s.RoutingTable[dest] == next {
			return nil
		}
		return fmt.Errorf("routing table %v", s.RoutingTable)
	})
}

// logBuffer collects a node's slog output for printing when a test fails; it
// keeps at most max bytes (the newest).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.buf.Len() > b.max {
		b.buf.Next(b.buf.Len() - b.max)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
