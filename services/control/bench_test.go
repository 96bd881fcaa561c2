package control

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
)

// BenchmarkStatusRoundTrip measures one JSON status request and its reply
// on an open Unix-socket session, and reports p50/p99 latency.
func BenchmarkStatusRoundTrip(b *testing.B) {
	ops := newFakeOps()
	// A short directory: b.TempDir paths can exceed sockaddr_un's limit.
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "c.sock")
	ln, err := ListenUnix(path, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- NewServer(ops, Options{Logger: slog.New(slog.DiscardHandler)}).Serve(ctx, ln, OriginUnix)
	}()
	defer func() { cancel(); <-done }()

	c, err := client.Dial(ctx, path, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	lat := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		if _, err := c.Command(ctx, "status"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
		b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Nanoseconds()), "p99-ns")
	}
}
