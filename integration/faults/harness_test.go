package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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

// Failure bounds for polling; never timing assertions.
const (
	startTimeout    = 30 * time.Second
	convergeTimeout = 45 * time.Second
	commandTimeout  = 20 * time.Second
	stopTimeout     = 15 * time.Second
	unitTimeout     = 2 * time.Minute
	logTailBytes    = 16 << 10
)

// full reports whether the whole campaign runs (FAULTS=full, make
// test-faults); otherwise the short version runs (make test).
func full() bool { return os.Getenv("FAULTS") == "full" }

// proc is one receptor process (any of the binaries) with its own
// directory, configuration, ports and log. Several procs may share a node
// ID (the router and worker of a split node).
type proc struct {
	t    *testing.T
	name string // for messages: "a", "s/router"
	id   string // node ID
	bin  string // binary name in binDir
	dir  string
	log  string
	sock string // control socket (routers and all-in-one nodes)
	// config returns the v1 YAML configuration; env is added to the
	// environment (RECEPTOR_PPROF); ready says when a (re)start is done.
	config func(p *proc) string
	env    []string
	ready  func(p *proc) error

	ports map[string]int

	mu      sync.Mutex
	cur     *testkit.Process
	readyAt time.Time
}

// newProc prepares a process; nothing runs until start. dir may be shared
// with another proc (the split node's sockets and datadir); "" makes one.
func newProc(t *testing.T, name, id, bin, dir string) *proc {
	t.Helper()
	if dir == "" {
		dir = shortTempDir(t)
	}
	base := strings.ReplaceAll(name, "/", "-")
	p := &proc{
		t: t, name: name, id: id, bin: bin, dir: dir,
		log:   filepath.Join(dir, base+".log"),
		sock:  filepath.Join(dir, base+".sock"),
		ports: map[string]int{},
	}
	p.ready = func(p *proc) error { return p.statusOK() }
	t.Cleanup(func() {
		p.stopClean()
		if t.Failed() {
			t.Logf("---- log of %s (%s) ----\n%s", p.name, p.log, testkit.LogTail(p.log, logTailBytes))
		}
	})
	return p
}

// port returns the proc's port for name, allocated on first use.
func (p *proc) port(name string) int {
	if n, ok := p.ports[name]; ok {
		return n
	}
	n := freePort(p.t)
	p.ports[name] = n
	return n
}

func (p *proc) addr(name string) string { return fmt.Sprintf("127.0.0.1:%d", p.port(name)) }

// datadir is the data directory every configuration of this suite uses.
func (p *proc) datadir() string { return filepath.Join(p.dir, "data") }

// start runs the process and waits until ready answers.
func (p *proc) start() {
	p.t.Helper()
	if err := p.startOnce(); err != nil {
		p.t.Fatalf("%s did not start: %v\n---- log ----\n%s", p.name, err, testkit.LogTail(p.log, logTailBytes))
	}
}

func (p *proc) startOnce() error {
	cfg := filepath.Join(p.dir, strings.ReplaceAll(p.name, "/", "-")+".yaml")
	if err := os.WriteFile(cfg, []byte(p.config(p)), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	bin, args := filepath.Join(binDir, p.bin), []string{"-c", cfg}
	if len(p.env) > 0 {
		// env(1) execs the binary in the same process: the PID stays ours.
		envBin, err := exec.LookPath("env")
		if err != nil {
			return err
		}
		args = append(append(append([]string(nil), p.env...), bin), args...)
		bin = envBin
	}
	if err := testkit.AppendLog(p.log, fmt.Sprintf("==== start %s %s\n", bin, strings.Join(args, " "))); err != nil {
		return err
	}
	cur, err := testkit.StartProcess(p.dir, p.log, bin, args...)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.cur = cur
	p.mu.Unlock()
	if err := cur.WaitReady(startTimeout, func() error { return p.ready(p) }); err != nil {
		cur.Kill()
		return err
	}
	p.mu.Lock()
	p.readyAt = time.Now()
	p.mu.Unlock()
	return nil
}

// pid is the PID of the current run.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cur.Pid()
}

// kill ends the current run with sig: SIGKILL is a crash; SIGTERM is a
// clean shutdown, which must exit with status 0 within stopTimeout.
func (p *proc) kill(sig syscall.Signal) {
	p.t.Helper()
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	_ = testkit.AppendLog(p.log, fmt.Sprintf("==== fault: %v\n", sig))
	if sig == syscall.SIGKILL {
		cur.Kill()
		return
	}
	start := time.Now()
	if err := cur.Stop(stopTimeout); err != nil {
		p.t.Errorf("%s after SIGTERM: %v (%v)", p.name, err, time.Since(start).Round(time.Millisecond))
	}
}

// restart starts the process again with the same configuration and ports,
// in a later second than the last start: a routing epoch is the start time
// in whole seconds plus a random part (docs/protocol.md §2.3), and peers
// ignore a smaller epoch (§6.2), as a real restart would never produce.
func (p *proc) restart() {
	p.t.Helper()
	p.mu.Lock()
	prev := p.readyAt
	p.mu.Unlock()
	if wait := time.Until(prev.Truncate(time.Second).Add(time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	p.start()
}

// stopClean stops a running process with SIGTERM at the end of a test and
// reports an unclean exit.
func (p *proc) stopClean() {
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	if cur == nil {
		return
	}
	if exited, _ := cur.Exited(); exited {
		return
	}
	if err := cur.Stop(stopTimeout); err != nil {
		p.t.Errorf("%s did not exit cleanly after SIGTERM at the end: %v", p.name, err)
	}
}

// dial opens a control session on the proc's socket.
func (p *proc) dial(ctx context.Context) (*client.Conn, error) {
	return client.Dial(ctx, "unix:"+p.sock, nil)
}

// command runs one control command on a fresh session.
func (p *proc) command(cmd string) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	c, err := p.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Command(ctx, cmd)
}

func (p *proc) statusOK() error {
	_, err := p.command("status")
	return err
}

// status is the part of the control `status` reply the suite reads.
type status struct {
	RoutingTable   map[string]string
	Advertisements []struct {
		NodeID  string
		Service string
	}
}

// hasControlOf reports whether p knows a route to node and node's
// "control" service: remote work dials that service.
func (p *proc) hasControlOf(node string) error {
	raw, err := p.command("status")
	if err != nil {
		return err
	}
	var s status
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if _, ok := s.RoutingTable[node]; !ok {
		return fmt.Errorf("%s: no route to %s (%v)", p.name, node, s.RoutingTable)
	}
	for _, ad := range s.Advertisements {
		if ad.NodeID == node && ad.Service == "control" {
			return nil
		}
	}
	return fmt.Errorf("%s: no control advertisement of %s", p.name, node)
}

// fdCount is the number of open file descriptors of pid.
func fdCount(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}

// rssKiB is the resident set size of pid in KiB.
func rssKiB(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int
			_, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib)
			return kib, err
		}
	}
	return 0, errors.New("no VmRSS")
}
