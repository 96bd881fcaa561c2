// Package backoff is the one retry schedule of the services: an exponential
// delay with a cap and optional jitter, and a context-aware sleep. (gRPC's
// own reconnect schedule, grpc/backoff, is configured in grpcserve.)
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential schedule: the first wait is Initial, each
// following one Factor times the previous, capped at Max. Jitter, a
// fraction in [0, 1), spreads every wait uniformly over ±Jitter so that
// many retriers do not run in lockstep; zero means none.
type Policy struct {
	Initial time.Duration
	Max     time.Duration
	Factor  float64
	Jitter  float64
}

// Next is the delay that follows d: d×Factor, or Max when that exceeds
// Max (or overflows).
func (p Policy) Next(d time.Duration) time.Duration {
	n := time.Duration(float64(d) * p.Factor)
	if n > p.Max || n <= 0 {
		return p.Max
	}
	return n
}

// Jittered spreads d uniformly over [d×(1-Jitter), d×(1+Jitter)]; d itself
// when Jitter is zero.
func (p Policy) Jittered(d time.Duration) time.Duration {
	if p.Jitter == 0 {
		return d
	}
	f := 1 + p.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}

// Start returns a running schedule at its first delay.
func (p Policy) Start() *Backoff {
	return &Backoff{p: p, cur: p.Initial}
}

// Backoff is a running schedule; not safe for concurrent use.
type Backoff struct {
	p   Policy
	cur time.Duration
}

// Next returns the wait before the next attempt (jittered) and moves the
// schedule on.
func (b *Backoff) Next() time.Duration {
	d := b.p.Jittered(b.cur)
	b.cur = b.p.Next(b.cur)
	return d
}

// Reset goes back to the first delay (after a success).
func (b *Backoff) Reset() { b.cur = b.p.Initial }

// Sleep waits d; false if ctx ended first.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// AcceptRetry is the pause schedule of a listener whose Accept fails
// transiently (e.g. out of file descriptors): 5 ms doubling up to 1 s,
// instead of spinning.
var AcceptRetry = Policy{Initial: 5 * time.Millisecond, Max: time.Second, Factor: 2}
