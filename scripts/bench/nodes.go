package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
)

// The "nodes" section: route convergence of real processes over TCP
// links, ours (the all-in-one receptor) next to upstream's binary
// (-upstream, default $RECEPTOR_UPSTREAM_BIN) measured in the same run with the same loads:
//
//   - line: nodes 0…n-2 of a line run and agree; the last node starts and
//     the figure is the time from its start until every node routes to
//     every other.
//   - at once: all n nodes start back to back, dialers before the nodes
//     they dial (node n-1 first), so every first dial fails; the figure
//     runs from the last start until every node routes to every other.
//   - restart: a middle node of a converged line is stopped and started
//     again; the figure runs from the new start until it routes to both
//     nodes two hops away.
//
// Each scenario runs -nodes-repeats times per binary, alternating ours and
// upstream, and prints the median and the spread (min–max).

const nodesLine = 20

// lineNet is a line of nodes c00 — c01 — … where node i dials node i-1.
type lineNet struct {
	bin, dir string
	o        options
	ports    []int
	procs    []*proc
	socks    []string
	ids      []string
}

func newLineNet(o options, ps *ports, bin, dir string, n int) (*lineNet, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("line dir: %w", err)
	}
	l := &lineNet{bin: bin, dir: dir, o: o, procs: make([]*proc, n)}
	for i := range n {
		p, err := ps.next()
		if err != nil {
			return nil, err
		}
		l.ports = append(l.ports, p)
		l.ids = append(l.ids, fmt.Sprintf("c%02d", i))
		l.socks = append(l.socks, filepath.Join(dir, fmt.Sprintf("c%02d.sock", i)))
	}
	return l, nil
}

func (l *lineNet) start(i int) error {
	args := []string{"--node", "id=" + l.ids[i], "datadir=" + filepath.Join(l.dir, l.ids[i]+"data"),
		"--tcp-listener", "port=" + strconv.Itoa(l.ports[i]), "bindaddr=127.0.0.1",
		"--control-service", "service=control", "filename=" + l.socks[i]}
	if i > 0 {
		args = append(args, "--tcp-peer", "address=127.0.0.1:"+strconv.Itoa(l.ports[i-1]))
	}
	_ = os.Remove(l.socks[i])
	p, err := startProc(l.o.logger, l.bin, l.ids[i], l.dir, args, nil)
	if err != nil {
		return err
	}
	l.procs[i] = p
	return nil
}

func (l *lineNet) stopNode(i int) {
	if l.procs[i] != nil {
		l.procs[i].stop()
		l.procs[i] = nil
	}
}

func (l *lineNet) stop() {
	for i := range l.procs {
		l.stopNode(i)
	}
}

// routes is node i's routing table (destination → next hop), nil when the
// node does not answer yet.
func (l *lineNet) routes(ctx context.Context, i int) map[string]string {
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := client.Dial(cctx, l.socks[i], nil)
	if err != nil {
		return nil
	}
	defer c.Close()
	var st struct{ RoutingTable map[string]string }
	if err := c.CommandJSON(cctx, map[string]string{"command": "status"}, &st); err != nil {
		return nil
	}
	return st.RoutingTable
}

// knows reports whether node i routes to every node of want.
func (l *lineNet) knows(ctx context.Context, i int, want []int) bool {
	rt := l.routes(ctx, i)
	if rt == nil {
		return false
	}
	for _, j := range want {
		if j == i {
			continue
		}
		if _, ok := rt[l.ids[j]]; !ok {
			return false
		}
	}
	return true
}

// waitAll polls nodes 0…n-1 at once, each until it routes to all the
// others (routes only get added in these scenarios), and returns when the
// last of them did so: the polls run in parallel so that the figure is not
// the sum of n status round trips.
func (l *lineNet) waitAll(ctx context.Context, n int) (time.Time, error) {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	done := make([]time.Time, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done[i], errs[i] = l.waitFor(ctx, i, all)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return time.Time{}, err
	}
	last := done[0]
	for _, t := range done {
		if t.After(last) {
			last = t
		}
	}
	return last, nil
}

func (l *lineNet) waitFor(ctx context.Context, i int, want []int) (time.Time, error) {
	for {
		if l.knows(ctx, i, want) {
			return time.Now(), nil
		}
		if p := l.procs[i]; p != nil && p.exited() {
			return time.Time{}, fmt.Errorf("node %s exited: %v; log:\n%s", p.id, p.err, p.logTail())
		}
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s never routed to %v: %w", l.ids[i], want, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

type nodeScenario struct {
	name string
	run  func(ctx context.Context, o options, ps *ports, bin, dir string) (time.Duration, error)
}

var nodeScenarios = []nodeScenario{
	{"20-node line, all routes after the last node is up (answers status)", lineLast},
	{"20 nodes started at once (dialers first), all routes after the last start", startAtOnce},
	{"20-node line, restarted middle node routes 2 hops away", restartMiddle},
}

func lineLast(ctx context.Context, o options, ps *ports, bin, dir string) (time.Duration, error) {
	l, err := newLineNet(o, ps, bin, dir, nodesLine)
	if err != nil {
		return 0, err
	}
	defer l.stop()
	for i := range nodesLine - 1 {
		if err := l.start(i); err != nil {
			return 0, err
		}
	}
	if _, err := l.waitAll(ctx, nodesLine-1); err != nil {
		return 0, fmt.Errorf("first %d nodes: %w", nodesLine-1, err)
	}
	last := nodesLine - 1
	if err := l.start(last); err != nil {
		return 0, err
	}
	// "Up": its control service answers (the process has started and
	// read its configuration; its backends start at the same time).
	for l.routes(ctx, last) == nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	t0 := time.Now()
	t1, err := l.waitAll(ctx, nodesLine)
	return t1.Sub(t0), err
}

func startAtOnce(ctx context.Context, o options, ps *ports, bin, dir string) (time.Duration, error) {
	l, err := newLineNet(o, ps, bin, dir, nodesLine)
	if err != nil {
		return 0, err
	}
	defer l.stop()
	for i := nodesLine - 1; i >= 0; i-- {
		if err := l.start(i); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	up := l.waitUp(ctx)
	t1, err := l.waitAll(ctx, nodesLine)
	o.logger.Debug("nodes at once", "all up after", up.Sub(t0), "routes after", t1.Sub(t0))
	return t1.Sub(t0), err
}

// waitUp returns when every node's control service answered once.
func (l *lineNet) waitUp(ctx context.Context) time.Time {
	var wg sync.WaitGroup
	for i := range l.procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l.routes(ctx, i) == nil && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}()
	}
	wg.Wait()
	return time.Now()
}

func restartMiddle(ctx context.Context, o options, ps *ports, bin, dir string) (time.Duration, error) {
	l, err := newLineNet(o, ps, bin, dir, nodesLine)
	if err != nil {
		return 0, err
	}
	defer l.stop()
	for i := range nodesLine {
		if err := l.start(i); err != nil {
			return 0, err
		}
	}
	if _, err := l.waitAll(ctx, nodesLine); err != nil {
		return 0, err
	}
	m := nodesLine / 2
	l.stopNode(m)
	t0 := time.Now()
	if err := l.start(m); err != nil {
		return 0, err
	}
	t1, err := l.waitFor(ctx, m, []int{m - 2, m + 2})
	return t1.Sub(t0), err
}

// nodesSection runs every scenario for ours and, when set, upstream's binary.
func nodesSection(ctx context.Context, o options, ps *ports, dir string, rep *report) {
	upstream := o.upstreamBin
	bins := []struct{ name, path string }{{"ours", filepath.Join(o.binDir, "receptor")}}
	if upstream != "" {
		bins = append(bins, struct{ name, path string }{"upstream", upstream})
	}
	for si, sc := range nodeScenarios {
		if o.nodeScenario >= 0 && o.nodeScenario != si {
			continue
		}
		got := make([][]time.Duration, len(bins))
		var errs []error
		for r := range o.nodeRepeats {
			for bi, b := range bins {
				sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
				d, err := sc.run(sctx, o, ps, b.path, filepath.Join(dir, fmt.Sprintf("nodes%d-%s-%d", si, b.name, r)))
				cancel()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s run %d: %w", b.name, r, err))
					continue
				}
				o.logger.Debug("nodes", "scenario", sc.name, "bin", b.name, "took", d)
				got[bi] = append(got[bi], d)
			}
		}
		if err := errors.Join(errs...); err != nil {
			rep.failed("nodes", sc.name, err)
		}
		if len(got[0]) == 0 {
			continue
		}
		x := row{Group: "nodes", Name: sc.name, Value: durSpread(got[0])}
		if len(bins) > 1 && len(got[1]) > 0 {
			x.Baseline = "upstream " + durSpread(got[1])
			x.Ratio = fmt.Sprintf("%.2f× upstream's time", float64(median(got[0]))/float64(median(got[1])))
		}
		switch si {
		case 0:
			x.Target, x.Verdict = "≤ 100 ms", verdict(median(got[0]) <= 100*time.Millisecond)
		default:
			x.Target, x.Verdict = "≤ 1 s", verdict(median(got[0]) <= time.Second)
		}
		rep.add(x)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// durSpread is "median (min–max, n runs)".
func durSpread(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%s (%s–%s, %d runs)", ms(median(s)), ms(s[0]), ms(s[len(s)-1]), len(s))
}
