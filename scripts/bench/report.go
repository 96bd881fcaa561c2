package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one figure of the report, shown next to its baseline measured in
// the same run (empty when the figure has no baseline) and its target.
type row struct {
	Group    string
	Name     string
	Value    string
	Baseline string
	Ratio    string // figure relative to the baseline
	// Upstream is upstream's figure from the same run and VsUpstream how
	// many times better ours is (upstream.go); empty without upstream.
	Upstream   string
	VsUpstream string
	Target     string
	Verdict    string // "ok", "MISS" or "" (no target)
}

// report collects rows in order.
type report struct {
	rows []row
}

func (r *report) add(x row) { r.rows = append(r.rows, x) }

// failed records a measurement that could not be taken, so the table
// still shows it.
func (r *report) failed(group, name string, err error) {
	r.add(row{Group: group, Name: name, Value: "error: " + oneLine(err.Error()), Verdict: "MISS"})
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return s
}

// verdict is "ok" when ok holds, else "MISS".
func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

// writeText prints the table aligned for a terminal.
func (r *report) writeText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "group\tfigure\tvalue\tupstream (same run)\tvs upstream\tbaseline (same run)\tratio\ttarget\t")
	for _, x := range r.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s %s\t\n", x.Group, x.Name, x.Value, x.Upstream, x.VsUpstream,
			x.Baseline, x.Ratio, x.Target, x.Verdict)
	}
	return tw.Flush()
}

// writeMarkdown writes the table as a markdown document.
func (r *report) writeMarkdown(w io.Writer, header string) error {
	var b strings.Builder
	b.WriteString(header)
	b.WriteString("\n| group | figure | value | upstream (same run) | vs upstream | baseline (same run) | ratio | target | |\n" +
		"|---|---|---|---|---|---|---|---|---|\n")
	esc := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	for _, x := range r.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			esc(x.Group), esc(x.Name), esc(x.Value), esc(x.Upstream), esc(x.VsUpstream), esc(x.Baseline), esc(x.Ratio),
			esc(x.Target), x.Verdict)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// percentile returns the p-th percentile (0 < p ≤ 100, nearest rank) of
// samples; zero for none. samples is not modified.
func percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// mibps formats a byte rate in MiB/s.
func mibps(bytes int64, d time.Duration) string {
	return fmt.Sprintf("%.1f MiB/s", rate(bytes, d)/(1<<20))
}

// rate is bytes per second; zero when d is not positive.
func rate(bytes int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(bytes) / d.Seconds()
}

// ms formats a duration in milliseconds with enough precision for
// sub-millisecond figures.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond))
}

// pct formats a ratio as a percentage.
func pct(x float64) string { return fmt.Sprintf("%.1f %%", 100*x) }
