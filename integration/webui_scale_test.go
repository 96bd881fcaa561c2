package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/backends/memory"
	"github.com/receptor-mesh/receptor/services/router"
)

// scaleMesh is a router serving the web view plus 99 library mesh nodes in
// this process, linked over an in-memory network: a ring, one link from the
// ring to the router, and 20 chords that the test can take down and up.
type scaleMesh struct {
	base, token string
	net         *memory.Network
	nodes       []*mesh.Node

	mu     sync.Mutex
	chords []*chord
}

// chord is one link that flaps: a dialer backend on node from toward to.
type chord struct {
	from   *mesh.Node
	to     string
	cancel context.CancelFunc
	wait   func()
}

func (c *chord) up(ctx context.Context, net *memory.Network) error {
	cctx, cancel := context.WithCancel(ctx)
	wait, err := c.from.AddBackendContext(cctx, net.Dialer(c.to, memory.DialerOptions{}), mesh.BackendOptions{Cost: 2})
	if err != nil {
		cancel()
		return err
	}
	c.cancel, c.wait = cancel, wait
	return nil
}

func (c *chord) down() {
	if c.cancel != nil {
		c.cancel()
		c.wait()
		c.cancel = nil
	}
}

func startScaleMesh(t testing.TB, size int) *scaleMesh {
	t.Helper()
	dir := shortTempDir(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	tokenFile := filepath.Join(dir, "gateway.token")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg, err := config.ParseArgs([]string{
		"--node", "id=ui", "datadir=" + filepath.Join(dir, "data"),
		"--control-service", "service=control", "filename=" + filepath.Join(dir, "ctl.sock"),
		"--http-gateway", "tcplisten=" + addr, "tokenfile=" + tokenFile,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(cfg, router.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	m := &scaleMesh{base: "http://" + addr, net: memory.NewNetwork(1024)}
	t.Cleanup(func() {
		m.mu.Lock()
		for _, c := range m.chords {
			c.down()
		}
		m.mu.Unlock()
		for _, n := range m.nodes {
			_ = n.Close()
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("router: %v", err)
		}
	})
	if _, err := r.Node().AddBackendContext(ctx, m.net.Listener("ui"), mesh.BackendOptions{Cost: 1}); err != nil {
		t.Fatal(err)
	}
	name := func(i int) string { return fmt.Sprintf("m%02d", i) }
	for i := 1; i < size; i++ {
		n, err := mesh.New(mesh.Options{NodeID: name(i), Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		m.nodes = append(m.nodes, n)
		if err := n.AddBackend(m.net.Listener(name(i)), mesh.BackendOptions{Cost: 1}); err != nil {
			t.Fatal(err)
		}
		// Chords cost 2; both ends of a session must agree on its cost.
		if err := n.AddBackend(m.net.Listener(name(i)+"-chord"), mesh.BackendOptions{Cost: 2}); err != nil {
			t.Fatal(err)
		}
		to := "ui"
		if i > 1 {
			to = name(i - 1)
		}
		if err := n.AddBackend(m.net.Dialer(to, memory.DialerOptions{}), mesh.BackendOptions{Cost: 1}); err != nil {
			t.Fatal(err)
		}
	}
	// Close the ring, and 20 chords across it.
	if err := m.nodes[0].AddBackend(m.net.Dialer(name(size-1), memory.DialerOptions{}), mesh.BackendOptions{Cost: 1}); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 20; k++ {
		i := 1 + k*(size-1)/20
		j := (i+size/3-1)%(size-1) + 1
		c := &chord{from: m.nodes[i-1], to: name(j) + "-chord"}
		if err := c.up(ctx, m.net); err != nil {
			t.Fatal(err)
		}
		m.chords = append(m.chords, c)
	}
	waitFile(t, tokenFile)
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	m.token = strings.TrimSpace(string(b))
	return m
}

// links counts the links the router knows (each end lists the other).
func (m *scaleMesh) links() int {
	n := 0
	for _, node := range m.nodes {
		n += len(node.Status().Connections)
	}
	return (n + 1) / 2 // + the router's link to m01, listed once here
}

// routes is the size of the router's routing table, 0 when it does not
// answer (a loaded machine may take a while).
func (m *scaleMesh) routes() int {
	req, err := http.NewRequest("GET", m.base+"/v1/status", nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+m.token)
	resp, err := workHTTPClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var st struct {
		RoutingTable map[string]string `json:"routingTable"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return 0
	}
	return len(st.RoutingTable)
}

func waitFile(t testing.TB, path string) {
	t.Helper()
	for i := 0; i < 300; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s was not created", path)
}

// BenchmarkWebUI100Nodes measures the web view on a 100-node mesh: the
// time from the start of page load to all 100 nodes drawn, then, while 20
// links flap every second for 15 s, how late the page's animation frames
// and timers run. It is one measurement (run it with -benchtime 1x: make
// bench-webui); it asserts only correctness (all nodes appear, a click
// still shows a node's details). The figures are reported as benchmark
// metrics and written to figures.txt beside the screenshots.
func BenchmarkWebUI100Nodes(bm *testing.B) {
	t := bm
	const size = 100
	b := newBrowser(t, 1280, 800)
	m := startScaleMesh(t, size)

	// Wait for the mesh to converge (every node reachable, the chords up)
	// before the page loads, so that what is measured is the page.
	deadline := time.Now().Add(120 * time.Second)
	for routes := 0; routes < size-1 || m.links() < size+20; routes = m.routes() {
		if time.Now().After(deadline) {
			t.Fatalf("mesh did not converge: %d routes", routes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	bm.ResetTimer()

	// Sign in, then load the page again: the token stays in the tab, so
	// the second load measures the page from its start to the drawn mesh.
	b.signIn(m.base, m.token)
	b.navigate(m.base + "/ui/")
	b.waitFor("100 nodes drawn", fmt.Sprintf(`Number(document.body.dataset.nodes) >= %d`, size), 60*time.Second)
	rendered := eval[float64](b, fmt.Sprintf(`window.receptorView.draws.find(d => d[1] >= %d)[0]`, size))
	b.shot("100-nodes")
	t.Logf("draws [ms, nodes, links]: %v", eval[[][]float64](b, `window.receptorView.draws.slice(0, 20)`))

	// Measure the page while 20 links flap: frame gaps and timer lateness.
	eval[bool](b, `(() => {
		const p = window.probe = {frames: [], late: [], long: []};
		let last = performance.now();
		const frame = (t) => { p.frames.push(t - last); last = t; if (!p.stop) requestAnimationFrame(frame); };
		requestAnimationFrame(frame);
		const tick = () => { const due = performance.now() + 50; setTimeout(() => { p.late.push(performance.now() - due); if (!p.stop) tick(); }, 50); };
		tick();
		try { new PerformanceObserver((l) => { for (const e of l.getEntries()) p.long.push(e.duration); }).observe({type: 'longtask'}); } catch {}
		return true;
	})()`)
	ctx, cancel := context.WithCancel(context.Background())
	flaps := 0
	end := time.Now().Add(15 * time.Second)
	for time.Now().Before(end) {
		m.mu.Lock()
		for _, c := range m.chords {
			if c.cancel != nil {
				c.down()
			} else if err := c.up(ctx, m.net); err != nil {
				t.Fatal(err)
			}
			flaps++
		}
		m.mu.Unlock()
		time.Sleep(time.Second)
	}
	type probe struct {
		Frames, Late, Long []float64
	}
	p := eval[probe](b, `(() => { window.probe.stop = true; return {Frames: window.probe.frames, Late: window.probe.late, Long: window.probe.long}; })()`)
	b.shot("after-flapping")

	// Still responsive: a click on a node shows its details.
	b.do("select a node", chromedp.Click(chromedp.CSS(`#graph .node[data-id="m50"]`)))
	b.waitFor("details of m50", `document.getElementById('details-title').textContent === 'm50'`, 10*time.Second)
	b.shot("node-details")
	m.mu.Lock()
	for _, c := range m.chords {
		c.down()
	}
	m.mu.Unlock()
	cancel()

	figures := fmt.Sprintf("nodes %d, links flapped %d times in 15 s\n"+
		"first draw of all %d nodes: %.0f ms after the start of page load\n"+
		"animation frame gap: p50 %.1f ms, p95 %.1f ms, max %.1f ms (%d frames)\n"+
		"50 ms timer lateness: p50 %.1f ms, p95 %.1f ms, max %.1f ms (%d timers)\n"+
		"long tasks (> 50 ms): %d, longest %.0f ms\n",
		size, flaps, size, rendered,
		pct(p.Frames, 50), pct(p.Frames, 95), pct(p.Frames, 100), len(p.Frames),
		pct(p.Late, 50), pct(p.Late, 95), pct(p.Late, 100), len(p.Late),
		len(p.Long), pct(p.Long, 100))
	t.Log("\n" + figures)
	bm.ReportMetric(rendered, "ms-to-draw")
	bm.ReportMetric(pct(p.Frames, 95), "ms-frame-p95")
	bm.ReportMetric(pct(p.Frames, 100), "ms-frame-max")
	bm.ReportMetric(pct(p.Late, 95), "ms-timer-late-p95")
	bm.ReportMetric(float64(len(p.Long)), "long-tasks")
	if err := os.WriteFile(filepath.Join(t.ArtifactDir(), "figures.txt"), []byte(figures), 0o644); err != nil {
		t.Error(err)
	}
}

// pct is the q-th percentile of xs (q=100: the maximum); 0 for none.
func pct(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(q / 100 * float64(len(s)-1))
	return s[i]
}
