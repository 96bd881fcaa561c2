package main

// `bench scale` simulates large meshes in this process: N mesh nodes
// (services/mesh, default timers) joined by in-process links, in a random
// topology or an AWX-like control/hop/execution layout. For each N it
// measures convergence after a start, after a link flap and after a node
// loss, the steady-state routing traffic per node, and the memory per
// node (docs/scale.md). Nothing here asserts a figure. SCALE_DEBUG=1
// prints each convergence poll (nodes still missing routes) on stderr.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/mesh/backends/memory"
	"github.com/receptor-mesh/receptor/services/mesh/routing"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

type scaleOptions struct {
	sizes    []int
	topos    []string
	degree   float64
	window   time.Duration
	timeout  time.Duration
	seed     uint64
	poll     time.Duration
	sample   int
	profile  string
	dilate   float64 // every mesh timer is this many times longer
	logLevel slog.Level
}

// scaleMain runs `bench scale [flags]` and returns the exit status.
func scaleMain(args []string) int {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	var o scaleOptions
	sizes := fs.String("n", "100,250,500,1000", "comma-separated mesh sizes")
	topos := fs.String("topo", "random,awx", "comma-separated topologies: random (connected, average degree -degree), awx (3 control, N/100 hop, the rest execution nodes on 1–2 hops)")
	fs.Float64Var(&o.degree, "degree", 4, "average links per node of the random topology")
	fs.DurationVar(&o.window, "window", 30*time.Second, "steady-state measuring window (figures are scaled to a minute)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "give up on a convergence after this long")
	fs.Uint64Var(&o.seed, "seed", 1, "topology seed")
	fs.DurationVar(&o.poll, "poll", 200*time.Millisecond, "convergence polling period")
	fs.IntVar(&o.sample, "sample", 64, "nodes whose whole routing tables are checked (all nodes' route counts are)")
	fs.StringVar(&o.profile, "cpuprofile", "", "write a CPU profile of the largest run here")
	fs.Float64Var(&o.dilate, "dilate", 1, "stretch every mesh timer (and the window) by this factor, for a machine too loaded to run the mesh in real time; traffic figures stay per undilated minute")
	verbose := fs.Bool("v", false, "log the nodes' warnings")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	o.logLevel = slog.LevelError + 4
	if *verbose {
		o.logLevel = slog.LevelWarn
	}
	for _, s := range strings.Split(*sizes, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || k < 10 {
			fmt.Fprintf(os.Stderr, "bench scale: bad size %q (≥ 10)\n", s)
			return 2
		}
		o.sizes = append(o.sizes, k)
	}
	for _, t := range strings.Split(*topos, ",") {
		if t != "random" && t != "awx" {
			fmt.Fprintf(os.Stderr, "bench scale: unknown topology %q\n", t)
			return 2
		}
		o.topos = append(o.topos, t)
	}
	fmt.Printf("# bench scale: %s, %d CPUs, GOMAXPROCS %d, timers ×%g, load at start %s\n\n",
		time.Now().Format(time.RFC3339), runtime.NumCPU(), runtime.GOMAXPROCS(0), o.dilate, loadAvg())
	fmt.Println("| topology | N | links | start conv. | flap down | flap up | node loss | routing KiB/node/min (mean / max) | msgs/node/min | CPU cores (steady) | heap+stacks KiB/node | goroutines/node | load |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	failed := false
	for _, topo := range o.topos {
		for i, k := range o.sizes {
			prof := ""
			if i == len(o.sizes)-1 {
				prof = o.profile
			}
			r, err := runScale(o, topo, k, prof)
			if err != nil {
				failed = true
				fmt.Fprintf(os.Stderr, "bench scale: %s N=%d: %v\n", topo, k, err)
			}
			fmt.Println(r.row())
		}
	}
	fmt.Printf("\nload at end %s\n", loadAvg())
	if failed {
		return 1
	}
	return 0
}

type scaleResult struct {
	topo                    string
	n, links                int
	start, flapDown, flapUp conv
	loss                    conv
	kibMean, kibMax         float64
	msgs                    float64
	cores                   float64
	kibNode, gorNode        float64
	load                    string
	notes                   []string
}

// conv is one convergence: wall time and the process's CPU time.
type conv struct{ wall, cpu time.Duration }

func (c conv) String() string {
	if c.wall == 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s CPU)", fmtDur(c.wall), fmtDur(c.cpu))
}

func fmtDur(d time.Duration) string {
	switch {
	case d < 0:
		return "no (timeout)"
	case d == 0:
		return "–"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

func (r scaleResult) row() string {
	return fmt.Sprintf("| %s | %d | %d | %s | %s | %s | %s | %.0f / %.0f | %.0f | %.2f | %.0f | %.1f | %s |",
		r.topo, r.n, r.links, r.start, r.flapDown, r.flapUp, r.loss,
		r.kibMean, r.kibMax, r.msgs, r.cores, r.kibNode, r.gorNode, r.load)
}

// simEdge is one link of the simulated topology.
type simEdge struct {
	a, b int
	cost float64
}

// buildTopology returns the edges of a topology of k nodes.
func buildTopology(topo string, k int, degree float64, rng *rand.Rand) []simEdge {
	seen := map[[2]int]bool{}
	var edges []simEdge
	add := func(a, b int) bool {
		if a == b {
			return false
		}
		key := [2]int{min(a, b), max(a, b)}
		if seen[key] {
			return false
		}
		seen[key] = true
		edges = append(edges, simEdge{a: a, b: b, cost: 1})
		return true
	}
	switch topo {
	case "random":
		// A random spanning tree keeps it connected; random chords bring
		// the average degree up.
		for i := 1; i < k; i++ {
			add(i, rng.IntN(i))
		}
		want := int(float64(k) * degree / 2)
		for len(edges) < want {
			add(rng.IntN(k), rng.IntN(k))
		}
	case "awx":
		// Nodes 0..2 control (a full mesh), then hops (each linked to
		// every control node), then execution nodes on one or two hops.
		controls := 3
		hops := max(2, k/100)
		for i := range controls {
			for j := i + 1; j < controls; j++ {
				add(i, j)
			}
		}
		for h := controls; h < controls+hops; h++ {
			for c := range controls {
				add(c, h)
			}
		}
		for e := controls + hops; e < k; e++ {
			h := controls + rng.IntN(hops)
			add(e, h)
			if rng.IntN(2) == 0 {
				add(e, controls+rng.IntN(hops))
			}
		}
	}
	return edges
}

func simName(i int) string { return fmt.Sprintf("n%05d", i) }

// traffic counts the bytes and messages delivered to each node by type.
type traffic struct {
	routeBytes, routeMsgs []atomic.Uint64
	otherBytes            atomic.Uint64
}

func (t *traffic) snapshot() (bytes, msgs []uint64) {
	bytes, msgs = make([]uint64, len(t.routeBytes)), make([]uint64, len(t.routeMsgs))
	for i := range t.routeBytes {
		bytes[i], msgs[i] = t.routeBytes[i].Load(), t.routeMsgs[i].Load()
	}
	return bytes, msgs
}

// countingSession counts what it sends to node `to`.
type countingSession struct {
	backends.Session
	t  *traffic
	to int
}

func (c *countingSession) Send(m []byte) error {
	err := c.Session.Send(m)
	if err == nil {
		if wire.Type(m[0]) == wire.TypeRoute {
			c.t.routeBytes[c.to].Add(uint64(len(m)))
			c.t.routeMsgs[c.to].Add(1)
		} else {
			c.t.otherBytes.Add(uint64(len(m)))
		}
	}
	return err
}

// simLink joins two nodes: while it is up and both nodes run, it keeps
// one memory pipe between them, handed to each node as a session of
// its backend end. Cutting it closes the pipe (a link flap).
type simLink struct {
	edge   simEdge
	t      *traffic
	dilate float64

	mu      sync.Mutex
	accept  [2]func(backends.Session)
	ctx     [2]context.Context
	started int
	up      bool
	cur     [2]backends.Session
	wake    chan struct{}
	done    chan struct{}
}

func newSimLink(e simEdge, t *traffic) *simLink {
	return &simLink{edge: e, t: t, up: true, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

type simEnd struct {
	l    *simLink
	side int
}

func (e simEnd) Kind() string { return "memory" }

func (e simEnd) Start(ctx context.Context, accept func(backends.Session)) (func(), error) {
	l := e.l
	l.mu.Lock()
	l.accept[e.side], l.ctx[e.side] = accept, ctx
	l.started++
	both := l.started == 2
	l.mu.Unlock()
	if both {
		go l.run()
	}
	return func() {
		<-ctx.Done()
		l.mu.Lock()
		both := l.started == 2
		l.mu.Unlock()
		if both {
			<-l.done
		}
	}, nil
}

func (l *simLink) set(up bool) {
	l.mu.Lock()
	l.up = up
	cur := l.cur
	l.mu.Unlock()
	if !up {
		for _, s := range cur {
			if s != nil {
				_ = s.Close()
			}
		}
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *simLink) run() {
	defer close(l.done)
	ctxA, ctxB := l.ctx[0], l.ctx[1]
	ctx, cancel := context.WithCancel(ctxA)
	defer cancel()
	stopB := context.AfterFunc(ctxB, cancel)
	defer stopB()
	for ctx.Err() == nil {
		l.mu.Lock()
		up := l.up
		l.mu.Unlock()
		if !up {
			select {
			case <-ctx.Done():
				return
			case <-l.wake:
			}
			continue
		}
		pa, pb := memory.Pipe(memory.DefaultQueueLen, simName(l.edge.b), simName(l.edge.a))
		sa := &countingSession{Session: pa, t: l.t, to: l.edge.b}
		sb := &countingSession{Session: pb, t: l.t, to: l.edge.a}
		l.mu.Lock()
		l.cur = [2]backends.Session{sa, sb}
		l.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { pa.Close() })
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); l.accept[0](sa); pa.Close() }()
		go func() { defer wg.Done(); l.accept[1](sb); pb.Close() }()
		wg.Wait()
		stop()
		l.mu.Lock()
		l.cur = [2]backends.Session{}
		l.mu.Unlock()
		// A session that ended on its own (idle timeout, reject) is
		// redialled after a second, as a dialer would.
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(l.dilate * float64(time.Second))):
		}
	}
}

// sim is one simulated mesh.
type sim struct {
	o     scaleOptions
	nodes []*mesh.Node // nil: lost
	edges []simEdge
	links []*simLink
	t     *traffic
	rng   *rand.Rand
}

func (s *sim) close() {
	var wg sync.WaitGroup
	for _, n := range s.nodes {
		if n == nil {
			continue
		}
		n.Abort(mesh.ErrClosed)
	}
	for _, n := range s.nodes {
		if n == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = n.Shutdown(ctx)
		}()
	}
	wg.Wait()
}

// truth is the live topology and every node's expected table.
func (s *sim) truth() routing.Topology {
	topo := routing.Topology{}
	for i, n := range s.nodes {
		if n != nil {
			topo[simName(i)] = map[string]float64{}
		}
	}
	for i, e := range s.edges {
		if s.nodes[e.a] == nil || s.nodes[e.b] == nil {
			continue
		}
		l := s.links[i]
		l.mu.Lock()
		up := l.up
		l.mu.Unlock()
		if !up {
			continue
		}
		topo[simName(e.a)][simName(e.b)] = e.cost
		topo[simName(e.b)][simName(e.a)] = e.cost
	}
	return topo
}

// components returns each live node's expected route count (its
// connected component's size minus one).
func components(topo routing.Topology) map[string]int {
	comp := map[string]int{}
	sizes := []int{}
	for start := range topo {
		if _, ok := comp[start]; ok {
			continue
		}
		id := len(sizes)
		sizes = append(sizes, 0)
		stack := []string{start}
		comp[start] = id
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			sizes[id]++
			for nb := range topo[x] {
				if _, ok := comp[nb]; !ok {
					comp[nb] = id
					stack = append(stack, nb)
				}
			}
		}
	}
	out := make(map[string]int, len(comp))
	for node, id := range comp {
		out[node] = sizes[id] - 1
	}
	return out
}

// waitConverged polls until every live node has as many routes as its
// component has other nodes, and the sampled nodes' tables (plus the
// nodes in extra) equal the ones computed from the true topology. It
// returns the time from `since` and the CPU time from cpu0; the wall
// time is -1 on timeout.
func (s *sim) waitConverged(since time.Time, cpu0 time.Duration, extra []int) conv {
	topo := s.truth()
	counts := components(topo)
	sample := map[int]bool{}
	for _, i := range extra {
		if s.nodes[i] != nil {
			sample[i] = true
		}
	}
	for len(sample) < min(s.o.sample+len(extra), len(counts)) {
		if i := s.rng.IntN(len(s.nodes)); s.nodes[i] != nil {
			sample[i] = true
		}
	}
	want := map[int]routing.Table{}
	for i := range sample {
		want[i], _ = routing.Compute(simName(i), topo)
	}
	if os.Getenv("SCALE_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "expected tables after %v\n", time.Since(since))
	}
	deadline := since.Add(s.o.timeout)
	for time.Now().Before(deadline) {
		if s.converged(counts, want) {
			return conv{time.Since(since), cpuTime() - cpu0}
		}
		time.Sleep(s.o.poll)
	}
	return conv{-1, cpuTime() - cpu0}
}

func (s *sim) converged(counts map[string]int, want map[int]routing.Table) bool {
	if os.Getenv("SCALE_DEBUG") != "" {
		bad, short := 0, 0
		for i, n := range s.nodes {
			if n != nil {
				if c := n.Counters().Routes; c != counts[simName(i)] {
					bad++
					if c < counts[simName(i)] {
						short += counts[simName(i)] - c
					}
				}
			}
		}
		badT := 0
		for i, tbl := range want {
			if !maps.Equal(s.nodes[i].Routes(), tbl) {
				badT++
			}
		}
		fmt.Fprintf(os.Stderr, "%s count-mismatch %d (missing %d) table-mismatch %d/%d\n", time.Now().Format("15:04:05.000"), bad, short, badT, len(want))
	}
	for i, tbl := range want {
		if !maps.Equal(s.nodes[i].Routes(), tbl) {
			return false
		}
	}
	for i, n := range s.nodes {
		if n != nil && n.Counters().Routes != counts[simName(i)] {
			return false
		}
	}
	return true
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapAndStacks() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}

// meshOptions are the default timers stretched by o.dilate.
func (o scaleOptions) meshOptions(id string, log *slog.Logger) mesh.Options {
	d := func(v time.Duration) time.Duration { return time.Duration(float64(v) * o.dilate) }
	return mesh.Options{NodeID: id, Logger: log,
		MaxIdleTimeout: d(mesh.DefaultMaxIdleTimeout), RouteUpdateInterval: d(mesh.DefaultRouteUpdateInterval),
		RouteRequestDelay: d(mesh.DefaultRouteRequestDelay), AdInterval: d(mesh.DefaultAdInterval),
		AdRequestDelay: d(mesh.DefaultAdRequestDelay), InitialConnectPeriod: d(mesh.DefaultInitialConnectPeriod),
		PingTimeout: d(mesh.DefaultPingTimeout)}
}

func runScale(o scaleOptions, topo string, k int, profile string) (scaleResult, error) {
	res := scaleResult{topo: topo, n: k}
	rng := rand.New(rand.NewPCG(o.seed, uint64(k)))
	s := &sim{o: o, edges: buildTopology(topo, k, o.degree, rng), rng: rng,
		t: &traffic{routeBytes: make([]atomic.Uint64, k), routeMsgs: make([]atomic.Uint64, k)}}
	res.links = len(s.edges)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel}))
	if o.logLevel > slog.LevelError {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
		defer pprof.StopCPUProfile()
	}
	base := heapAndStacks()
	baseG := runtime.NumGoroutine()
	defer s.close()
	s.nodes = make([]*mesh.Node, k)
	for i := range k {
		n, err := mesh.New(o.meshOptions(simName(i), log))
		if err != nil {
			return res, err
		}
		s.nodes[i] = n
	}
	for _, e := range s.edges {
		l := newSimLink(e, s.t)
		l.dilate = o.dilate
		s.links = append(s.links, l)
	}
	// Start: every link at once.
	start, cpu0 := time.Now(), cpuTime()
	for _, l := range s.links {
		if err := s.nodes[l.edge.a].AddBackend(simEnd{l, 0}, mesh.BackendOptions{Cost: l.edge.cost}); err != nil {
			return res, err
		}
		if err := s.nodes[l.edge.b].AddBackend(simEnd{l, 1}, mesh.BackendOptions{Cost: l.edge.cost}); err != nil {
			return res, err
		}
	}
	if os.Getenv("SCALE_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "links added in %v\n", time.Since(start))
	}
	if res.start = s.waitConverged(start, cpu0, nil); res.start.wall < 0 {
		return res, errors.New("no convergence after the start")
	}
	// Memory, once the routing state is complete.
	res.kibNode = float64(heapAndStacks()-base) / 1024 / float64(k)
	res.gorNode = float64(runtime.NumGoroutine()-baseG) / float64(k)

	// Steady state: let the start's floods drain (a routing interval),
	// then count what arrives in the window.
	time.Sleep(time.Duration(o.dilate * float64(mesh.DefaultRouteUpdateInterval)))
	b0, m0 := s.t.snapshot()
	c0, w0 := cpuTime(), time.Now()
	time.Sleep(time.Duration(o.dilate * float64(o.window)))
	b1, m1 := s.t.snapshot()
	el := time.Since(w0)
	res.cores = float64(cpuTime()-c0) / float64(el) * o.dilate
	perMin := float64(time.Minute) * o.dilate / float64(el)
	var sumB, sumM, maxB float64
	for i := range b1 {
		b := float64(b1[i]-b0[i]) * perMin / 1024
		sumB += b
		sumM += float64(m1[i]-m0[i]) * perMin
		maxB = max(maxB, b)
	}
	res.kibMean, res.kibMax, res.msgs = sumB/float64(k), maxB, sumM/float64(k)

	// Link flap: cut a link whose ends keep another path where there is
	// one (an execution node's second hop link in awx), wait, restore.
	li := s.pickFlap()
	l := s.links[li]
	ends := s.neighbourhood(l.edge.a, l.edge.b)
	t0, cpu0 := time.Now(), cpuTime()
	l.set(false)
	if res.flapDown = s.waitConverged(t0, cpu0, ends); res.flapDown.wall < 0 {
		return res, errors.New("no convergence after a link went down")
	}
	t0, cpu0 = time.Now(), cpuTime()
	l.set(true)
	if res.flapUp = s.waitConverged(t0, cpu0, ends); res.flapUp.wall < 0 {
		return res, errors.New("no convergence after a link came back")
	}
	// Node loss: a hop node in awx (its single-homed execution nodes are
	// cut off), a random non-control node otherwise.
	victim := 3 + s.rng.IntN(max(2, k/100))
	if topo == "random" {
		victim = s.rng.IntN(k)
	}
	ends = s.neighbourhood(victim)
	t0, cpu0 = time.Now(), cpuTime()
	n := s.nodes[victim]
	s.nodes[victim] = nil
	n.Abort(mesh.ErrClosed)
	go func() { _ = n.Shutdown(context.Background()) }()
	if res.loss = s.waitConverged(t0, cpu0, ends); res.loss.wall < 0 {
		return res, errors.New("no convergence after a node loss")
	}
	res.load = loadAvg()
	return res, nil
}

// pickFlap returns a link to cut: in awx, an execution node's link when
// that node has two hops; otherwise a random link.
func (s *sim) pickFlap() int {
	deg := map[int]int{}
	for _, e := range s.edges {
		deg[e.a]++
		deg[e.b]++
	}
	for range 1000 {
		i := s.rng.IntN(len(s.edges))
		if e := s.edges[i]; deg[e.a] > 1 && deg[e.b] > 1 {
			return i
		}
	}
	return s.rng.IntN(len(s.edges))
}

// neighbourhood returns the given nodes and their direct neighbours (the
// nodes whose tables a change there alters first).
func (s *sim) neighbourhood(nodes ...int) []int {
	in := map[int]bool{}
	for _, x := range nodes {
		in[x] = true
	}
	out := append([]int(nil), nodes...)
	for _, e := range s.edges {
		for _, x := range nodes {
			var other int
			switch x {
			case e.a:
				other = e.b
			case e.b:
				other = e.a
			default:
				continue
			}
			if !in[other] && len(out) < 64+len(nodes) {
				in[other] = true
				out = append(out, other)
			}
		}
	}
	return out
}
