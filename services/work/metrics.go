package work

import (
	"errors"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receptor-mesh/receptor/services/work/signing"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// workCounters count the agent's events; the collector reads them when
// scraped.
type workCounters struct {
	submittedOK, submittedErr atomic.Uint64
	// remote status polls answered / failed (remote_pool.go)
	pollsOK, pollsErr atomic.Uint64
	// remote results streams and status polls tried again after a failure
	reconnectResults, reconnectStatus atomic.Uint64
}

// workMetrics are the agent's figures that need the client library's own
// types (histograms, and counters by work type, outcome or reason). Their
// labels are bounded: the configured work types plus "remote" and
// "unknown" (a unit on disk of a type no longer configured), unit states,
// and signing.Reasons.
type workMetrics struct {
	completed    *prometheus.CounterVec   // work_type, outcome
	toRunning    *prometheus.HistogramVec // work_type
	runDuration  *prometheus.HistogramVec // work_type
	resultsBytes *prometheus.CounterVec   // work_type
	sigFailures  *prometheus.CounterVec   // reason
	clockSkew    *prometheus.HistogramVec // reason
}

// unitBuckets span a quick command (10 ms) to a long job (6 h).
var unitBuckets = []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600}

// skewBuckets span a small clock difference (1 s) to a day.
var skewBuckets = []float64{1, 5, 30, 60, 300, 900, 3600, 21600, 86400}

// outcomes are the final states a unit is counted in when it ends.
var outcomes = []unit.State{unit.Succeeded, unit.Failed, unit.Canceled}

func newWorkMetrics(types []WorkType) *workMetrics {
	m := &workMetrics{
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "receptor_work_units_completed_total",
			Help: "Work units that reached a final state (Succeeded, Failed or Canceled) while the agent followed them, by work type and outcome."},
			[]string{"work_type", "outcome"}),
		toRunning: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "receptor_work_unit_start_duration_seconds",
			Help:    "Time from the submission of a unit to the agent seeing it Running, by work type.",
			Buckets: unitBuckets}, []string{"work_type"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "receptor_work_unit_run_duration_seconds",
			Help:    "Time from the agent seeing a unit Running to seeing it end, by work type.",
			Buckets: unitBuckets}, []string{"work_type"}),
		resultsBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "receptor_work_results_sent_bytes_total",
			Help: "Bytes of unit output (stdout) streamed to results readers, by work type."}, []string{"work_type"}),
		sigFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "receptor_work_signature_failures_total",
			Help: "Work requests refused by the signature rule, by reason (expired, not_yet_valid, issued_in_future, audience, invalid, ...)."},
			[]string{"reason"}),
		clockSkew: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "receptor_work_signature_clock_skew_seconds",
			Help:    "For tokens refused for their time: seconds since exp (expired) or until nbf/iat (not_yet_valid, issued_in_future).",
			Buckets: skewBuckets}, []string{"reason"}),
	}
	// Every series exists from the start (at zero), so that rates and
	// alerts see it before the first event.
	for _, t := range append(typeNames(types), RemoteWorkType) {
		for _, s := range outcomes {
			m.completed.WithLabelValues(t, s.Name())
		}
		m.toRunning.WithLabelValues(t)
		m.runDuration.WithLabelValues(t)
		m.resultsBytes.WithLabelValues(t)
	}
	for _, r := range signing.Reasons {
		m.sigFailures.WithLabelValues(r)
	}
	m.sigFailures.WithLabelValues(reasonUnexpected)
	for _, r := range []string{"expired", "not_yet_valid", "issued_in_future"} {
		m.clockSkew.WithLabelValues(r)
	}
	return m
}

func typeNames(types []WorkType) []string {
	out := make([]string, 0, len(types))
	for _, t := range types {
		out = append(out, t.Name())
	}
	return out
}

// reasonUnexpected counts signatures sent for a work type that does not
// verify them.
const reasonUnexpected = "unexpected"

// typeLabel bounds the work_type label: configured types and "remote";
// any other type read from disk is "unknown".
func (a *Agent) typeLabel(workType string) string {
	if workType == RemoteWorkType || a.types[workType] != nil {
		return workType
	}
	return "unknown"
}

// signatureFailed counts a refused signature, and its clock skew when the
// token was refused for its time.
func (a *Agent) signatureFailed(reason string, err error) {
	a.m.sigFailures.WithLabelValues(reason).Inc()
	var se *signing.SkewError
	if errors.As(err, &se) {
		a.m.clockSkew.WithLabelValues(reason).Observe(se.Skew.Seconds())
	}
}

// observeUnits follows every unit's state for the lifecycle figures
// (completed by outcome, start and run durations), from the same change
// feed as WatchWork (WatchAll), until the agent is closed. Changes of one
// unit faster than this loop are merged: a unit that ends before it was
// seen Running counts as completed, without durations.
func (a *Agent) observeUnits(w *UnitWatch) {
	defer a.bg.Done()
	defer w.Close()
	for {
		ids, err := w.Next(a.ctx)
		if err != nil {
			return
		}
		now := time.Now()
		for _, id := range ids {
			e := a.lookupLoaded(id)
			if e == nil {
				continue
			}
			if st, err := e.status(); err == nil {
				a.observe(e, st.State, now)
			}
		}
	}
}

// observe records one seen state of e.
func (a *Agent) observe(e *entry, state unit.State, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.life.ended || state == e.life.state {
		return
	}
	e.life.state = state
	wt := a.typeLabel(e.workType)
	if state == unit.Running && e.life.running.IsZero() {
		e.life.running = now
		if !e.life.created.IsZero() {
			a.m.toRunning.WithLabelValues(wt).Observe(now.Sub(e.life.created).Seconds())
		}
	}
	if state.Complete() || state == unit.Canceled {
		e.life.ended = true
		a.m.completed.WithLabelValues(wt, state.Name()).Inc()
		if !e.life.running.IsZero() {
			a.m.runDuration.WithLabelValues(wt).Observe(now.Sub(e.life.running).Seconds())
		}
	}
}

// life is what observe knows of a unit: its created time (zero for a unit
// recovered from disk, whose submission time is unknown), the last state
// seen, when it was first seen Running, and whether it was counted ended.
type life struct {
	created, running time.Time
	state            unit.State
	ended            bool
}

// startObserver starts observeUnits; called once by New.
func (a *Agent) startObserver() {
	w := a.WatchAll()
	a.bg.Add(1)
	go a.observeUnits(w)
}

var (
	descUnits = prometheus.NewDesc("receptor_work_units",
		"Work units held by the agent, by state and work type (\"remote\" for units running on another node).",
		[]string{"state", "work_type"}, nil)
	descSubmitted = prometheus.NewDesc("receptor_work_submissions_total",
		"Work submissions to this agent, by outcome (created or refused).", []string{"outcome"}, nil)
	descPolls = prometheus.NewDesc("receptor_work_remote_status_polls_total",
		"Status queries of remote units sent to their nodes, by outcome (ok or error).", []string{"outcome"}, nil)
	descReconnects = prometheus.NewDesc("receptor_work_remote_reconnects_total",
		"Remote units' results streams and status polls tried again after a failure (connection lost, node unreachable), by stream.",
		[]string{"stream"}, nil)
)

// Collector returns a Prometheus collector of the agent's units (read from
// their status files when scraped), submissions, unit lifecycle, results,
// remote work and signature figures. Register it once.
func (a *Agent) Collector() prometheus.Collector { return workCollector{a} }

type workCollector struct{ a *Agent }

func (c workCollector) vecs() []prometheus.Collector {
	m := c.a.m
	return []prometheus.Collector{m.completed, m.toRunning, m.runDuration, m.resultsBytes, m.sigFailures, m.clockSkew}
}

func (c workCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descUnits
	ch <- descSubmitted
	ch <- descPolls
	ch <- descReconnects
	for _, v := range c.vecs() {
		v.Describe(ch)
	}
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
	cnt := &c.a.counts
	ch <- prometheus.MustNewConstMetric(descSubmitted, prometheus.CounterValue, float64(cnt.submittedOK.Load()), "created")
	ch <- prometheus.MustNewConstMetric(descSubmitted, prometheus.CounterValue, float64(cnt.submittedErr.Load()), "refused")
	ch <- prometheus.MustNewConstMetric(descPolls, prometheus.CounterValue, float64(cnt.pollsOK.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descPolls, prometheus.CounterValue, float64(cnt.pollsErr.Load()), "error")
	ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(cnt.reconnectResults.Load()), "results")
	ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(cnt.reconnectStatus.Load()), "status")
	for _, v := range c.vecs() {
		v.Collect(ch)
	}
}
