package testkit

import (
	"testing"
	"time"
)

// The polling interval starts at firstInterval and grows by half each round
// up to maxInterval: quick conditions are seen at once, slow ones are not
// hammered.
const (
	firstInterval = 5 * time.Millisecond
	maxInterval   = 100 * time.Millisecond
)

// Eventually calls cond until it returns nil, sleeping a short, growing
// interval between calls. When timeout passes first, the test fails with
// what and cond's last error. timeout is a failure bound, never a timing
// assertion. cond's error should say what is not yet true ("state running,
// want succeeded"), so that the failure explains itself.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	var last error
	if poll(timeout, func() bool { last = cond(); return last == nil }) {
		return
	}
	tb.Fatalf("%s: not reached within %v: %v", what, timeout, last)
}

// Poll calls cond until it returns true (Poll returns true) or timeout
// passes (false), with Eventually's intervals. It never fails a test, so it
// can be used from goroutines or where the caller reports.
func Poll(timeout time.Duration, cond func() bool) bool {
	return poll(timeout, cond)
}

func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	interval := firstInterval
	for {
		if cond() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(min(interval, time.Until(deadline)+time.Millisecond))
		interval = min(interval*3/2, maxInterval)
	}
}
