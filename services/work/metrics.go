package work

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// workCounters count the agent's events (Submit).
type workCounters struct {
	submittedOK, submittedErr atomic.Uint64
}

var (
	descUnits = prometheus.NewDesc("receptor_work_units",
		"Work units held by the agent, by state and work type (\"remote\" for units running on another node).",
		[]string{"state", "work_type"}, nil)
	descSubmitted = prometheus.NewDesc("receptor_work_submissions_total",
		"Work submissions to this agent, by outcome (created or refused).", []string{"outcome"}, nil)
)

// Collector returns a Prometheus collector of the agent's units (read from
// their status files when scraped) and submissions. Register it once.
func (a *Agent) Collector() prometheus.Collector { return workCollector{a} }

type workCollector struct{ a *Agent }

func (c workCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUnits
	ch <- descSubmitted
}

func (c workCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ state, workType string }
	counts := map[key]int{}
	c.a.mu.Lock()
	entries := make([]*entry, 0, len(c.a.units))
	for _, e := range c.a.units {
		entries = append(entries, e)
	}
	c.a.mu.Unlock()
	for _, e := range entries {
		st, err := e.status()
		if err != nil {
			continue
		}
		counts[key{st.State.Name(), st.WorkType}]++
	}
	// Every state of every configured type is reported, zeros included,
	// so that an alert on a state sees the series before the first unit.
	for _, t := range c.a.opts.WorkTypes {
		for _, s := range []unit.State{unit.Pending, unit.Running, unit.Succeeded, unit.Failed, unit.Canceled} {
			if _, ok := counts[key{s.Name(), t.Name()}]; !ok {
				counts[key{s.Name(), t.Name()}] = 0
			}
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descUnits, prometheus.GaugeValue, float64(n), k.state, k.workType)
	}
	ch <- prometheus.MustNewConstMetric(descSubmitted, prometheus.CounterValue, float64(c.a.counts.submittedOK.Load()), "created")
	ch <- prometheus.MustNewConstMetric(descSubmitted, prometheus.CounterValue, float64(c.a.counts.submittedErr.Load()), "refused")
}
