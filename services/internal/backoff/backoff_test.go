package backoff

import (
	"context"
	"testing"
	"time"
)

func TestSchedule(t *testing.T) {
	b := Policy{Initial: time.Second, Max: 4 * time.Second, Factor: 1.5}.Start()
	want := []time.Duration{time.Second, 1500 * time.Millisecond, 2250 * time.Millisecond, 3375 * time.Millisecond, 4 * time.Second, 4 * time.Second}
	for i, w := range want {
		if d := b.Next(); d != w {
			t.Fatalf("delay %d = %v, want %v", i, d, w)
		}
	}
	b.Reset()
	if d := b.Next(); d != time.Second {
		t.Fatalf("after Reset = %v, want 1s", d)
	}
}

func TestNextOverflowIsMax(t *testing.T) {
	p := Policy{Initial: time.Second, Max: time.Hour, Factor: 2}
	if d := p.Next(time.Duration(1 << 62)); d != time.Hour {
		t.Fatalf("Next of a huge delay = %v, want the cap", d)
	}
}

func TestJitterStaysInBounds(t *testing.T) {
	p := Policy{Jitter: 0.1}
	lo, hi := 4500*time.Millisecond, 5500*time.Millisecond
	seenLow, seenHigh := false, false
	for range 2000 {
		d := p.Jittered(5 * time.Second)
		if d < lo || d > hi {
			t.Fatalf("jittered 5s = %v, outside [%v, %v]", d, lo, hi)
		}
		seenLow = seenLow || d < 4900*time.Millisecond
		seenHigh = seenHigh || d > 5100*time.Millisecond
	}
	if !seenLow || !seenHigh {
		t.Fatalf("jitter does not spread both ways (low %v, high %v)", seenLow, seenHigh)
	}
	if d := (Policy{}).Jittered(time.Second); d != time.Second {
		t.Fatalf("zero jitter changed the delay: %v", d)
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep ended early without a cancel")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep did not end with its context")
	}
}
