package mesh

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// benchConverge builds a ring with chords of k nodes, links them all,
// and measures the time from the last link until every routing table is
// complete and cheapest.
func benchConverge(b *testing.B, k int) {
	for b.Loop() {
		b.StopTimer()
		m := newTestMesh(b)
		m.mod = func(o *Options) {
			o.RouteRequestDelay = time.Millisecond
			o.RouteUpdateInterval = 5 * time.Second
		}
		ids := names("n", k)
		for _, id := range ids {
			m.add(id)
		}
		b.StartTimer()
		for i := range k {
			m.link(ids[i], ids[(i+1)%k], 1)
			if i%5 == 0 {
				m.link(ids[i], ids[(i+k/2)%k], 2)
			}
		}
		m.waitConverged()
		b.StopTimer()
		m.closeAll()
		m.nodes = map[string]*Node{}
		b.StartTimer()
	}
}

func BenchmarkConverge50(b *testing.B)  { benchConverge(b, 50) }
func BenchmarkConverge100(b *testing.B) { benchConverge(b, 100) }

func BenchmarkDatagramRTT2Hops(b *testing.B) {
	m := newTestMesh(b)
	for _, id := range []string{"a", "b", "c"} {
		m.add(id)
	}
	m.link("a", "b", 1)
	m.link("b", "c", 1)
	m.waitConverged()
	srv, err := m.nodes["c"].ListenPacket("echo")
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for ctx.Err() == nil {
			k, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = srv.WriteTo(buf[:k], from)
		}
	}()
	defer func() { srv.Close(); <-done }()
	cli, err := m.nodes["a"].ListenPacket("")
	if err != nil {
		b.Fatal(err)
	}
	defer cli.Close()
	payload := make([]byte, 1200)
	buf := make([]byte, 2048)
	to := Addr{Node: "c", Service: "echo"}
	for b.Loop() {
		if _, err := cli.WriteTo(payload, to); err != nil {
			b.Fatal(err)
		}
		_ = cli.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := cli.ReadFrom(buf); err != nil {
			b.Fatal(fmt.Errorf("echo: %w", err))
		}
	}
}
