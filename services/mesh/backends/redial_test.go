package backends

import (
	"testing"
	"time"
)

// TestRedialQuickFirst: the first redials come quickly (100 ms growing by
// 1.5, ±50 %) before upstream's 5 s schedule takes over (docs/protocol.md §3.1),
// and reset starts over; a Quick of Initial or more is upstream's schedule.
func TestRedialQuickFirst(t *testing.T) {
	within := func(d, nominal time.Duration, jitter float64) bool {
		return float64(d) >= float64(nominal)*(1-jitter)-1 && float64(d) <= float64(nominal)*(1+jitter)+1
	}
	check := func(s *redialSchedule, want []time.Duration) {
		t.Helper()
		for i, w := range want {
			j := 0.1
			if w < 5*time.Second {
				j = quickJitter
			}
			if d := s.next(); !within(d, w, j) {
				t.Fatalf("wait %d = %v, want %v ±%v%%", i, d, w, j*100)
			}
		}
	}
	ms := time.Millisecond
	us := time.Microsecond
	quick := []time.Duration{100 * ms, 150 * ms, 225 * ms, 337500 * us, 506250 * us, 759375 * us,
		1139063 * us, 1708594 * us, 2562891 * us, 3844336 * us,
		5 * time.Second, 7500 * ms, 11250 * ms, 16875 * ms, 20 * time.Second, 20 * time.Second}
	s := Backoff{}.schedule()
	check(s, quick)
	s.reset()
	check(s, quick[:3])
	s.reset()
	check(s, quick)

	upstream := Backoff{Quick: 5 * time.Second}.schedule()
	check(upstream, quick[10:])
}
