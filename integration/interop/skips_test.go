package interop

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// skips counts the tests (and subtests) skipped, per reason, so that a run
// says how much of the suite it did not run: `make integration` prints the
// summary TestMain writes to $RECEPTOR_INTEROP_SUMMARY.
var skips struct {
	sync.Mutex
	byReason map[string]int
}

// skipTest records reason and skips t.
func skipTest(t *testing.T, reason string) {
	t.Helper()
	skips.Lock()
	if skips.byReason == nil {
		skips.byReason = map[string]int{}
	}
	skips.byReason[reason]++
	skips.Unlock()
	t.Skip(reason)
}

// skipSummary is one line per reason, or a line saying nothing was skipped.
func skipSummary() string {
	skips.Lock()
	defer skips.Unlock()
	if len(skips.byReason) == 0 {
		return fmt.Sprintf("interop: no test skipped (upstream binary %s)\n", upstreamBin())
	}
	reasons := make([]string, 0, len(skips.byReason))
	for r := range skips.byReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	var b strings.Builder
	for _, r := range reasons {
		fmt.Fprintf(&b, "interop: %d tests skipped: %s\n", skips.byReason[r], r)
	}
	if upstreamBin() == "" {
		b.WriteString("interop: to run them: RECEPTOR_UPSTREAM_BIN=/path/to/upstream/receptor make integration (README: Testing)\n")
	}
	return b.String()
}

// writeSkipSummary prints the summary (seen with -v) and writes it to
// $RECEPTOR_INTEROP_SUMMARY when set.
func writeSkipSummary() {
	s := skipSummary()
	fmt.Print(s)
	if path := os.Getenv("RECEPTOR_INTEROP_SUMMARY"); path != "" {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "interop: writing the skip summary:", err)
		}
	}
}
