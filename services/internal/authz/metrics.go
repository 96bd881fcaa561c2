package authz

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// maxDenialSeries bounds the (action, face) pairs counted: faces are a
// small fixed set, so this is only a guard.
const maxDenialSeries = 256

type denialKey struct {
	action Action
	face   string
}

// denialCounts counts refusals per action and face.
type denialCounts struct {
	m sync.Map // denialKey -> *atomic.Uint64
	n atomic.Int32
}

func (d *denialCounts) add(a Action, face string) {
	k := denialKey{a, face}
	if c, ok := d.m.Load(k); ok {
		c.(*atomic.Uint64).Add(1)
		return
	}
	if d.n.Load() >= maxDenialSeries {
		k.face = "other"
	}
	c, loaded := d.m.LoadOrStore(k, new(atomic.Uint64))
	if !loaded {
		d.n.Add(1)
	}
	c.(*atomic.Uint64).Add(1)
}

var descDenials = prometheus.NewDesc("receptor_authz_denials_total",
	"Requests refused by the authorizer, by action and face (control/unix, grpc/tcp, rest, metrics, ...).",
	[]string{"action", "face"}, nil)

// Collector returns a Prometheus collector of the policy's refusals.
func (p *Policy) Collector() prometheus.Collector { return denialCollector{p} }

type denialCollector struct{ p *Policy }

func (c denialCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descDenials }

func (c denialCollector) Collect(ch chan<- prometheus.Metric) {
	c.p.denials.m.Range(func(k, v any) bool {
		key := k.(denialKey)
		ch <- prometheus.MustNewConstMetric(descDenials, prometheus.CounterValue,
			float64(v.(*atomic.Uint64).Load()), key.action.String(), key.face)
		return true
	})
}
