package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// slowcat is the work command of the matrix: it copies the unit's stdin to
// stdout in pieces with pauses, so the output is large, deterministic (the
// stdin) and produced over seconds.
func slowcat(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "testdata", "work", "slowcat.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// workTypes are the work-command entities of an executor: slowcat (64 KiB
// pieces, 0.1 s apart) and cat.
func workTypes(t *testing.T) string {
	return entity("work-command", "worktype", "slowcat", "command", slowcat(t), "params", yamlQuote("65536 0.1")) +
		entity("work-command", "worktype", "cat", "command", "cat")
}

// nodeConfig is an all-in-one node's configuration: node, logging, a
// control service on p.sock, and items.
func nodeConfig(p *proc, items ...string) string {
	var b strings.Builder
	b.WriteString("---\n")
	b.WriteString(entity("node", "id", p.id, "datadir", p.datadir()))
	b.WriteString(entity("log-level", "level", "info"))
	b.WriteString(entity("control-service", "service", "control", "filename", p.sock))
	for _, it := range items {
		b.WriteString(it)
	}
	return b.String()
}

// line is the 3-node line a - b - c of all-in-one `receptor` processes: b
// listens, a and c dial it; c (and a, for local units) run work.
type line struct {
	a, b, c *proc
}

// lineOptions adds entities to the nodes of a line.
type lineOptions struct {
	a, b, c func(p *proc) []string
	env     bool // serve pprof on every node (RECEPTOR_PPROF)
}

func startLine(t *testing.T, o lineOptions) *line {
	t.Helper()
	l := &line{
		a: newProc(t, "a", "a", "receptor", ""),
		b: newProc(t, "b", "b", "receptor", ""),
		c: newProc(t, "c", "c", "receptor", ""),
	}
	peer := func() string { return entity("tcp-peer", "address", l.b.addr("mesh")) }
	extra := func(f func(*proc) []string, p *proc) []string {
		if f == nil {
			return nil
		}
		return f(p)
	}
	l.b.config = func(p *proc) string {
		return nodeConfig(p, append([]string{entity("tcp-listener", "port", fmt.Sprint(p.port("mesh")), "bindaddr", "127.0.0.1")}, extra(o.b, p)...)...)
	}
	l.a.config = func(p *proc) string {
		return nodeConfig(p, append([]string{peer(), workTypes(t)}, extra(o.a, p)...)...)
	}
	l.c.config = func(p *proc) string {
		return nodeConfig(p, append([]string{peer(), workTypes(t)}, extra(o.c, p)...)...)
	}
	for _, p := range []*proc{l.b, l.a, l.c} {
		if o.env {
			p.env = []string{"RECEPTOR_PPROF=" + p.addr("pprof")}
		}
		p.start()
	}
	l.waitHealthy(t)
	return l
}

// waitHealthy waits until a can submit to c: a route and c's control
// service advertisement.
func (l *line) waitHealthy(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, convergeTimeout, "a knows c's control service", func() error { return l.a.hasControlOf("c") })
}

// split is one node "s" run as receptor-router and receptor-worker, wired
// as deploy/router.yaml and deploy/worker.yaml wire them: unix sockets
// between them (the router's gRPC socket, the worker's WorkService
// socket), the same node ID and datadir. No mesh backend: units are local.
type split struct {
	router, worker *proc
}

func startSplit(t *testing.T) *split {
	t.Helper()
	dir := shortTempDir(t)
	s := &split{
		router: newProc(t, "s/router", "s", "receptor-router", dir),
		worker: newProc(t, "s/worker", "s", "receptor-worker", dir),
	}
	routerSock, workerSock := filepath.Join(dir, "router.sock"), filepath.Join(dir, "worker.sock")
	s.router.config = func(p *proc) string {
		return nodeConfig(p, entity("local-only"),
			entity("grpc-server", "filename", routerSock, "permissions", "0600"),
			entity("work-agent", "address", "unix://"+workerSock))
	}
	s.worker.config = func(p *proc) string {
		var b strings.Builder
		b.WriteString("---\n")
		b.WriteString(entity("node", "id", p.id, "datadir", p.datadir()))
		b.WriteString(entity("log-level", "level", "info"))
		b.WriteString(entity("router", "address", "unix://"+routerSock))
		b.WriteString(entity("grpc-server", "filename", workerSock, "permissions", "0600"))
		b.WriteString(workTypes(t))
		return b.String()
	}
	// The worker is ready when the router reaches it: `work list` answers
	// JSON instead of "ERROR: work agent unavailable".
	s.worker.ready = func(*proc) error { return s.workOK() }
	for _, p := range []*proc{s.router, s.worker} {
		p.env = []string{"RECEPTOR_PPROF=" + p.addr("pprof")}
	}
	s.router.start()
	s.worker.start()
	return s
}

func (s *split) workOK() error {
	_, err := s.router.command("work list")
	return err
}

// waitHealthy waits until the router reaches its worker.
func (s *split) waitHealthy(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, convergeTimeout, "router reaches its worker", func() error {
		if exited, err := s.worker.cur.Exited(); exited {
			return errors.Join(errors.New("receptor-worker exited"), err)
		}
		return s.workOK()
	})
}
