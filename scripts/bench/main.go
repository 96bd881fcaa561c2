// Command bench measures receptor with real processes on 127.0.0.1 and
// prints every figure next to a baseline measured in the same run
// (scripts/bench/run.sh, `make bench`). Figures are ratios and
// percentiles; nothing here asserts timings.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
)

type options struct {
	binDir      string
	out         string
	only        map[string]bool
	streamBytes int64
	streamDur   time.Duration
	samples     int
	units       int
	unitsSeq    int
	bigBytes    int64
	pprofEnv    string
	upstreamBin string // upstream's receptor for the side-by-side column (upstream.go); "" = off
	repeat      int    // transfers per figure in the links section
	pingSamples int    // pings per figure in the links section
	cpuProfile  string
	streamProf  string
	logger      *slog.Logger
	// nodes section (nodes.go)
	nodeScenario, nodeRepeats int
}

func (o options) want(section string) bool { return len(o.only) == 0 || o.only[section] }

const sections = "converge,nodes,status,rss,stream,latency,work,links,units"

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "scale":
			os.Exit(scaleMain(os.Args[2:]))
		case "relay", "echo":
			os.Exit(relayMain(os.Args[2:]))
		}
	}
	var o options
	var only string
	var verbose bool
	flag.StringVar(&o.binDir, "bin", os.Getenv("RECEPTOR_BIN_DIR"), "directory with receptor, receptor-router, receptor-worker (default $RECEPTOR_BIN_DIR)")
	flag.StringVar(&o.out, "out", "", "also write the report as markdown to this file")
	flag.StringVar(&only, "only", "", "comma-separated sections to run (default all): "+sections)
	flag.Int64Var(&o.streamBytes, "stream-bytes", 256<<20, "bytes per stream transfer (each transfer also stops after -stream-time)")
	flag.DurationVar(&o.streamDur, "stream-time", 8*time.Second, "time limit of each stream transfer")
	flag.IntVar(&o.samples, "samples", 500, "samples per latency figure")
	flag.IntVar(&o.units, "units", 200, "work units submitted at once for the throughput figures")
	flag.IntVar(&o.unitsSeq, "units-seq", 50, "work units submitted one after another in the units section")
	flag.Int64Var(&o.bigBytes, "results-bytes", 100<<20, "output size of the results-streaming unit")
	flag.StringVar(&o.pprofEnv, "pprof-env", "", "passed to the nodes as RECEPTOR_PPROF (e.g. 127.0.0.1:0); empty: off")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the driver (the client side) here")
	flag.StringVar(&o.streamProf, "stream-profile", "", "write a CPU profile of the in-process 2-hop stream transfer here")
	flag.IntVar(&o.nodeScenario, "nodes-scenario", -1, "run only this scenario of the nodes section (0 line, 1 at once, 2 restart); -1: all")
	flag.IntVar(&o.nodeRepeats, "nodes-repeats", 3, "runs of each nodes scenario per binary")
	flag.StringVar(&o.upstreamBin, "upstream", upstreamBinFromEnv(), "upstream receptor binary run beside ours in the links and nodes sections (default $RECEPTOR_UPSTREAM_BIN; empty: ours only)")
	flag.IntVar(&o.repeat, "repeat", 3, "transfers per figure in the links section (median and range printed)")
	flag.IntVar(&o.pingSamples, "ping-samples", 300, "pings per figure in the links section")
	flag.BoolVar(&verbose, "v", false, "log progress")
	flag.Parse()
	lvl := slog.LevelWarn
	if verbose {
		lvl = slog.LevelDebug
	}
	o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	if only != "" {
		o.only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			if !strings.Contains(","+sections+",", ","+s+",") {
				fmt.Fprintf(os.Stderr, "bench: unknown section %q (have %s)\n", s, sections)
				os.Exit(2)
			}
			o.only[s] = true
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.binDir == "" {
		return fmt.Errorf("no binary directory: pass -bin or set RECEPTOR_BIN_DIR")
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "rbench-")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var env []string
	if o.pprofEnv != "" {
		env = append(env, "RECEPTOR_PPROF="+o.pprofEnv)
	}
	var rep report
	var ps ports
	started := time.Now()

	var idle *idleNodes
	if o.want("rss") {
		if idle, err = startIdle(o, &ps, dir, env); err != nil {
			rep.failed("rss", "idle nodes", err)
		}
	}
	if o.want("converge") {
		for _, k := range []int{50, 100} {
			cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
			el, err := convergence(cctx, k)
			ccancel()
			name := fmt.Sprintf("route convergence, %d nodes (in-process, default timers)", k)
			if err != nil {
				rep.failed("converge", name, err)
				continue
			}
			rep.add(row{Group: "converge", Name: name, Value: ms(el), Target: "≤ 1 s (100 nodes)",
				Verdict: verdict(k != 100 || el <= time.Second)})
		}
	}
	if o.want("nodes") {
		nodesSection(ctx, o, &ps, dir, &rep)
	}
	if o.want("status") {
		statusSection(ctx, o, &ps, dir, &rep)
	}
	if idle != nil {
		idle.measure(ctx, &rep)
	}
	if o.want("stream") || o.want("latency") || o.want("work") {
		if err := runMesh(ctx, o, &ps, dir, env, &rep); err != nil {
			rep.failed("mesh", "3-node mesh", err)
		}
	}

	if o.want("links") {
		linksSection(ctx, o, &ps, dir, env, &rep)
	}
	if o.want("units") {
		unitsSection(ctx, o, &ps, dir, env, &rep)
	}

	header := fmt.Sprintf("# receptor benchmarks\n\n%s, %s/%s, %d CPUs, load when done: %s; driver run took %s.\n",
		time.Now().Format(time.RFC3339), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), loadAvg(),
		time.Since(started).Round(time.Second))
	fmt.Println(strings.TrimPrefix(header, "# receptor benchmarks\n\n"))
	if err := rep.writeText(os.Stdout); err != nil {
		return err
	}
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return fmt.Errorf("report file: %w", err)
		}
		if err := rep.writeMarkdown(f, header); err != nil {
			_ = f.Close()
			return fmt.Errorf("write %s: %w", o.out, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", o.out, err)
		}
	}
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// idleNodes are a router with one listener and an all-in-one node, left
// alone to measure their resident memory.
type idleNodes struct {
	started time.Time
	procs   []*proc
	names   []string
}

func startIdle(o options, ps *ports, dir string, env []string) (*idleNodes, error) {
	in := &idleNodes{started: time.Now()}
	for i, bin := range []string{"receptor-router", "receptor"} {
		port, err := ps.next()
		if err != nil {
			return nil, err
		}
		id := fmt.Sprintf("idle%d", i+1)
		args := []string{"--node", "id=" + id, "datadir=" + filepath.Join(dir, id+"data"),
			"--tcp-listener", fmt.Sprintf("port=%d", port), "bindaddr=127.0.0.1"}
		p, err := startProc(o.logger, filepath.Join(o.binDir, bin), id, dir, args, env)
		if err != nil {
			in.stop()
			return nil, err
		}
		in.procs = append(in.procs, p)
		in.names = append(in.names, bin)
	}
	return in, nil
}

// measure waits until 10 s after the start and reads each VmRSS.
func (in *idleNodes) measure(ctx context.Context, rep *report) {
	defer in.stop()
	select {
	case <-time.After(time.Until(in.started.Add(10 * time.Second))):
	case <-ctx.Done():
	}
	for i, p := range in.procs {
		name := "idle RSS after 10 s: " + in.names[i] + " (one tcp-listener)"
		if p.exited() {
			rep.failed("rss", name, fmt.Errorf("exited: %v: %s", p.err, p.logTail()))
			continue
		}
		kib, err := rssKiB(p.pid())
		if err != nil {
			rep.failed("rss", name, err)
			continue
		}
		rep.add(row{Group: "rss", Name: name, Value: fmt.Sprintf("%.1f MiB", float64(kib)/1024),
			Target: "≤ 16 MiB", Verdict: verdict(kib <= 16*1024)})
	}
}

func (in *idleNodes) stop() {
	for _, p := range in.procs {
		p.stop()
	}
	in.procs = nil
}

// runMesh starts the 3-node line and runs the stream, latency and work
// sections on it.
func runMesh(ctx context.Context, o options, ps *ports, dir string, env []string, rep *report) error {
	s, err := newSink()
	if err != nil {
		return err
	}
	defer s.close()
	big := filepath.Join(dir, "bigout.txt")
	if err := writeBigFile(big, o.bigBytes); err != nil {
		return err
	}
	sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
	m, err := startMesh3(sctx, ps, mesh3Config{binDir: o.binDir, dir: dir, sinkAddr: s.addr(), bigFile: big, env: env, logger: o.logger})
	scancel()
	if err != nil {
		return err
	}
	defer m.stop()
	if o.want("stream") {
		streamSection(ctx, o, m, s, rep)
	}
	if o.want("latency") {
		latencySection(ctx, o, m, rep)
	}
	if o.want("work") {
		workSection(ctx, o, m, rep)
	}
	return nil
}

func streamSection(ctx context.Context, o options, m *mesh3, s *sink, rep *report) {
	tctx, cancel := context.WithTimeout(ctx, 3*o.streamDur+60*time.Second)
	defer cancel()
	rawN, rawT, err := tcpTransfer(tctx, s, s.addr(), o.streamBytes, o.streamDur)
	if err != nil {
		rep.failed("stream", "raw loopback TCP", err)
		return
	}
	raw := rate(rawN, rawT)
	rep.add(row{Group: "stream", Name: "raw loopback TCP client → sink", Value: mibps(rawN, rawT)})
	paths := []struct{ name, addr string }{
		{"tcp-server → 1 hop → tcp-client → sink", m.tcpServer1Hop},
		{"tcp-server → 2 hops → tcp-client → sink", m.tcpServer2Hops},
	}
	var twoHops float64
	for _, p := range paths {
		n, el, err := tcpTransfer(tctx, s, p.addr, o.streamBytes, o.streamDur)
		if err != nil {
			rep.failed("stream", p.name, err)
			continue
		}
		r := rate(n, el)
		if p.addr == m.tcpServer2Hops {
			twoHops = r
		}
		rep.add(row{Group: "stream", Name: p.name, Value: mibps(n, el), Baseline: mibps(rawN, rawT),
			Ratio: pct(r / raw), Target: "≥ 5 % of raw", Verdict: verdict(r >= 0.05*raw)})
	}
	// gRPC Dial through node1's MeshService to node3's sink service.
	name := "gRPC MeshService.Dial → 2 hops → tcp-client → sink"
	s.drain()
	start := time.Now()
	c, err := m.mesh1.DialConn(tctx, "node3", "sink", dialOptions())
	if err != nil {
		rep.failed("stream", name, err)
		return
	}
	defer c.Close()
	n, el, err := transfer(tctx, s, c, start, o.streamBytes, o.streamDur)
	if err != nil {
		rep.failed("stream", name, err)
		return
	}
	r := rate(n, el)
	base, ratio := "", ""
	ok := false
	if twoHops > 0 {
		base, ratio = fmt.Sprintf("%.1f MiB/s (tcp-server, 2 hops)", twoHops/(1<<20)), pct(r/twoHops)
		ok = r >= 0.7*twoHops
	}
	rep.add(row{Group: "stream", Name: name, Value: mibps(n, el), Baseline: base, Ratio: ratio,
		Target: "≥ 70 % of the in-process stream", Verdict: verdict(ok)})
	name = "one process: 3 mesh nodes, TCP backends, tcp-server → 2 hops → tcp-client"
	n, el, err = inprocStream(tctx, o, s, o.streamProf)
	if err != nil {
		rep.failed("stream", name, err)
		return
	}
	rep.add(row{Group: "stream", Name: name, Value: mibps(n, el), Baseline: mibps(rawN, rawT), Ratio: pct(rate(n, el) / raw)})
}

func latencySection(ctx context.Context, o options, m *mesh3, rep *report) {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// Warm up: the first pings pay for route lookups and connection setup.
	_, _, _ = pingSamples(lctx, m.mesh1, "node3", 10)
	_, localCall, err := pingSamples(lctx, m.mesh1, "localhost", o.samples)
	if err != nil {
		rep.failed("latency", "ping localhost", err)
		return
	}
	meshRTT, callRTT, err := pingSamples(lctx, m.mesh1, "node3", o.samples)
	if err != nil {
		rep.failed("latency", "ping 2 hops", err)
		return
	}
	rep.add(row{Group: "latency", Name: "ping 2 hops: RTT measured by the router, median",
		Value: ms(percentile(meshRTT, 50)), Target: "≤ 0.3 ms", Verdict: verdict(percentile(meshRTT, 50) <= 300*time.Microsecond)})
	rep.add(row{Group: "latency", Name: "ping 2 hops: RTT measured by the router, p99", Value: ms(percentile(meshRTT, 99))})
	rep.add(row{Group: "latency", Name: "ping 2 hops via gRPC Ping (client view), median / p99",
		Value:    ms(percentile(callRTT, 50)) + " / " + ms(percentile(callRTT, 99)),
		Baseline: ms(percentile(localCall, 50)) + " / " + ms(percentile(localCall, 99)) + " (gRPC Ping localhost)"})
	st, err := statusSamples(lctx, m.mesh1, o.samples)
	if err != nil {
		rep.failed("latency", "GetStatus", err)
	} else {
		rep.add(row{Group: "latency", Name: "gRPC GetStatus over unix socket, p50 / p99",
			Value:  ms(percentile(st, 50)) + " / " + ms(percentile(st, 99)),
			Target: "p99 < 1 ms", Verdict: verdict(percentile(st, 99) < time.Millisecond)})
	}
	cs, err := ctlStatusSamples(lctx, m.ctl1, o.samples)
	if err != nil {
		rep.failed("latency", "control socket status", err)
	} else {
		rep.add(row{Group: "latency", Name: "receptorctl socket `status`, p50 / p99",
			Value:  ms(percentile(cs, 50)) + " / " + ms(percentile(cs, 99)),
			Target: "p99 < 1 ms", Verdict: verdict(percentile(cs, 99) < time.Millisecond)})
	}
}

func workSection(ctx context.Context, o options, m *mesh3, rep *report) {
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cc := controlv1.NewControlServiceClient(m.grpc1)
	targets := []struct {
		where, node string
		latTarget   time.Duration
		rateTarget  float64
	}{
		{"local", "node1", 50 * time.Millisecond, 300},
		{"2 hops", "node3", 150 * time.Millisecond, 100},
	}
	for _, t := range targets {
		name := "echo unit submit → results end, " + t.where + ", median / p99"
		lat, err := unitLatencies(wctx, cc, t.node, 20)
		if err != nil {
			rep.failed("work", name, err)
			continue
		}
		med := percentile(lat, 50)
		rep.add(row{Group: "work", Name: name, Value: ms(med) + " / " + ms(percentile(lat, 99)),
			Target: "≤ " + ms(t.latTarget), Verdict: verdict(med <= t.latTarget)})
	}
	for _, t := range targets {
		name := fmt.Sprintf("%d echo units at once, %s", o.units, t.where)
		el, err := unitBurst(wctx, cc, t.node, o.units)
		if err != nil {
			rep.failed("work", name, err)
			continue
		}
		r := float64(o.units) / el.Seconds()
		rep.add(row{Group: "work", Name: name, Value: fmt.Sprintf("%.0f units/s (%s)", r, el.Round(time.Millisecond)),
			Target: fmt.Sprintf("≥ %.0f units/s", t.rateTarget), Verdict: verdict(r >= t.rateTarget)})
	}
	diskN, diskT, err := readFileTime(m.bigFile)
	if err != nil {
		rep.failed("work", "read results file from disk", err)
		return
	}
	for _, t := range targets {
		name := fmt.Sprintf("results streaming of %d MiB, %s (submit → last byte)", m.bigSize>>20, t.where)
		n, el, err := runUnit(wctx, cc, "bigout", t.node, nil)
		if err == nil && n != m.bigSize {
			err = fmt.Errorf("got %d bytes, want %d", n, m.bigSize)
		}
		if err != nil {
			rep.failed("work", name, err)
			continue
		}
		rep.add(row{Group: "work", Name: name, Value: mibps(n, el), Baseline: mibps(diskN, diskT) + " (file read)",
			Ratio: pct(rate(n, el) / rate(diskN, diskT))})
	}
}
