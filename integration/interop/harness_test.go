package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
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
		skipTest(t, "RECEPTOR_UPSTREAM_BIN is not set (it names the upstream receptor binary these tests run beside ours)")
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
	proc *testkit.Process
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
		log: filepath.Join(dir, "node.log")}
	// Both implementations log this once backends and proxies are bound;
	// the control socket answers earlier.
	p.readyLog = "Initialization complete"
	full := append([]string{
		"--node", "id=" + id, "datadir=" + filepath.Join(dir, "data"),
		"--log-level", "level=debug",
		"--control-service", "filename=" + p.Sock,
	}, args...)
	proc, err := testkit.StartProcess(dir, p.log, bin, full...)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", id, err)
	}
	p.proc = proc
	t.Logf("node %s: pid %d: %s %s", id, p.proc.Pid(), filepath.Base(bin), strings.Join(full, " "))
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
func (p *procNode) Stop() { p.proc.Kill() }

// Exited reports whether the process has ended.
func (p *procNode) Exited() bool {
	exited, _ := p.proc.Exited()
	return exited
}

// Log returns the whole log so far.
func (p *procNode) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// LogTail returns the end of the log.
func (p *procNode) LogTail() string { return testkit.LogTail(p.log, logTailBytes) }

// waitReady waits until the control socket greets as p.ID and, with
// readyLog set, the log says the node is up.
func (p *procNode) waitReady() error {
	var wrongID error
	err := p.proc.WaitReady(startTimeout, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, "unix:"+p.Sock, nil)
		if err != nil {
			return err
		}
		id := c.NodeID()
		c.Close()
		if id != p.ID {
			wrongID = fmt.Errorf("node %s greets as %q", p.ID, id)
			return nil // no use waiting
		}
		// Upstream starts backends after the control service; dialing
		// before that costs a 5 s redial.
		if p.readyLog != "" && !strings.Contains(p.Log(), p.readyLog) {
			return fmt.Errorf("control socket answers; %q not logged yet", p.readyLog)
		}
		return nil
	})
	if err == nil {
		err = wrongID
	}
	if err != nil {
		return fmt.Errorf("node %s: %w; log:\n%s", p.ID, err, p.LogTail())
	}
	return nil
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
