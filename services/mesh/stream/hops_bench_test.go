//go:build unix

package stream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// BenchmarkStream2HopsTCP is the stream benchmark of scripts/bench in one
// process: p1 → p2 → p3 over real TCP backends with default node options.
// Besides MB/s it reports the CPU time of the whole process per GiB (the
// figure that matters on a loaded machine) and QUIC's lost packets, which
// come from drops at mesh queues.
func BenchmarkStream2HopsTCP(b *testing.B) { benchStream2Hops(b, "tcp") }

// BenchmarkStream2Hops is BenchmarkStream2HopsTCP over each link kind, to
// compare the backends' cost per byte and their drops (lost-pkts; drops
// is the mesh's count of data messages dropped at full queues, on all
// three nodes).
func BenchmarkStream2Hops(b *testing.B) {
	for _, kind := range []string{"tcp", "ws", "udp"} {
		b.Run(kind, func(b *testing.B) { benchStream2Hops(b, kind) })
	}
}

// linkPair returns a listener on a free loopback port and a dialer to it.
func linkPair(b *testing.B, kind string, log *slog.Logger) (listen, dial backends.Backend) {
	b.Helper()
	switch kind {
	case "ws":
		ln, err := backends.NewWebsocketListener(backends.WebsocketListenerOptions{Address: "127.0.0.1:0", Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		return ln, lazyBackend{kind: "ws-peer", make: func() (backends.Backend, error) {
			return backends.NewWebsocketDialer(backends.WebsocketDialerOptions{URL: "ws://" + ln.Addr().String() + "/", Redial: true, Logger: log})
		}}
	case "udp":
		ln, err := backends.NewUDPListener(backends.UDPListenerOptions{Address: "127.0.0.1:0", Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		return ln, lazyBackend{kind: "udp-peer", make: func() (backends.Backend, error) {
			return backends.NewUDPDialer(backends.UDPDialerOptions{Address: ln.Addr().String(), Redial: true, Logger: log})
		}}
	default:
		ln, err := backends.NewTCPListener(backends.TCPListenerOptions{Address: "127.0.0.1:0", Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		return ln, lazyBackend{kind: "tcp-peer", make: func() (backends.Backend, error) {
			return backends.NewTCPDialer(backends.TCPDialerOptions{Address: ln.Addr().String(), Redial: true, Logger: log})
		}}
	}
}

// lazyBackend makes its backend at Start, when the listener it dials has
// been started and knows its port.
type lazyBackend struct {
	kind string
	make func() (backends.Backend, error)
}

func (l lazyBackend) Kind() string { return l.kind }

func (l lazyBackend) Start(ctx context.Context, accept func(backends.Session)) (func(), error) {
	be, err := l.make()
	if err != nil {
		return nil, err
	}
	return be.Start(ctx, accept)
}

// benchLine3 starts p1 —kind— p2 —kind— p3 with default options and
// waits for the routes both ways.
func benchLine3(b *testing.B, kind string) []*mesh.Node {
	b.Helper()
	quiet := slog.New(slog.DiscardHandler)
	nodes := make([]*mesh.Node, 3)
	for i, id := range []string{"p1", "p2", "p3"} {
		n, err := mesh.New(mesh.Options{NodeID: id, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		nodes[i] = n
		b.Cleanup(func() { _ = n.Close() })
	}
	for i := range 2 {
		ln, d := linkPair(b, kind, quiet)
		if err := nodes[i].AddBackend(ln, mesh.BackendOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := nodes[i+1].AddBackend(d, mesh.BackendOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	testkit.Eventually(b, failAfter, "routes", func() error {
		if nodes[0].Status().RoutingTable["p3"] != "" && nodes[2].Status().RoutingTable["p1"] != "" {
			return nil
		}
		return errors.New("want nodes[0].Status().RoutingTable[\"p3\"] != \"\" && nodes[2].Status().RoutingTable[\"p1\"] != \"\"")
	})
	return nodes
}

// BenchmarkPing2Hops is the mesh ping p1 → p3 → p1 over each link kind:
// the time between a message's arrival at a node and its forwarding, four
// times, plus the two ends. It reports the median and p99 RTT.
func BenchmarkPing2Hops(b *testing.B) {
	for _, kind := range []string{"tcp", "ws", "udp"} {
		b.Run(kind, func(b *testing.B) {
			nodes := benchLine3(b, kind)
			ctx := testCtx(b)
			for range 20 { // warm up
				if _, err := nodes[0].Ping(ctx, "p3"); err != nil {
					b.Fatal(err)
				}
			}
			var rtts []time.Duration
			for b.Loop() {
				res, err := nodes[0].Ping(ctx, "p3")
				if err != nil {
					b.Fatal(err)
				}
				rtts = append(rtts, res.RTT)
			}
			slices.Sort(rtts)
			b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "median-µs")
			b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
		})
	}
}

func benchStream2Hops(b *testing.B, kind string) {
	quiet := slog.New(slog.DiscardHandler)
	nodes := benchLine3(b, kind)
	l, err := Listen(testCtx(b), nodes[2], "sink", ListenOptions{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	sink := make(chan error, 1)
	go func() {
		c, err := l.AcceptContext(testCtx(b))
		if err != nil {
			sink <- err
			return
		}
		defer c.Close()
		_, err = io.CopyBuffer(io.Discard, c, make([]byte, 64<<10))
		sink <- err
	}()
	c, err := DialConn(testCtx(b), nodes[0], "p3", "sink", DialOptions{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, benchChunk)
	b.SetBytes(benchChunk)
	cpu0 := processCPU()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if err := <-sink; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	gib := float64(b.N) * benchChunk / (1 << 30)
	b.ReportMetric((processCPU()-cpu0).Seconds()/gib, "cpu-s/GiB")
	b.ReportMetric(float64(c.qc.ConnectionStats().PacketsLost), "lost-pkts")
	var drops uint64
	for _, n := range nodes {
		for _, d := range n.Counters().Dropped {
			drops += d
		}
	}
	for _, n := range nodes {
		for _, l := range n.Links() {
			drops += l.Drops
		}
	}
	b.ReportMetric(float64(drops), "drops")
	_ = c.Close()
	waitEnded(b, c)
}

// processCPU is the user+system time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
