package grpcserve

import (
	"context"
	"slices"
	"testing"
	"time"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
)

// BenchmarkUnaryOverUnix measures a GetStatus round trip over a Unix socket
// through the full interceptor chain, with p50/p99 latencies.
func BenchmarkUnaryOverUnix(b *testing.B) {
	client, _, _ := startUnix(b, Options{})
	ctx := context.Background()
	if _, err := client.GetStatus(ctx, &controlv1.GetStatusRequest{}); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := client.GetStatus(ctx, &controlv1.GetStatusRequest{}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*50/100].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
