package stream

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// quicStats are the process's QUIC figures: connections open now, and
// packets lost by connections that have ended (quic-go counts a
// connection's losses; they are added when it ends).
var quicStats struct {
	open atomic.Int64
	lost atomic.Uint64
}

var (
	descOpen = prometheus.NewDesc("receptor_mesh_quic_connections",
		"Mesh stream (QUIC) connections open in this process.", nil, nil)
	descLost = prometheus.NewDesc("receptor_mesh_quic_packets_lost_total",
		"QUIC packets declared lost by mesh stream connections that have ended.", nil, nil)
)

// Collector returns a Prometheus collector of the process's mesh stream
// figures. Register it once per process.
func Collector() prometheus.Collector { return collector{} }

type collector struct{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descOpen
	ch <- descLost
}

func (collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(quicStats.open.Load()))
	ch <- prometheus.MustNewConstMetric(descLost, prometheus.CounterValue, float64(quicStats.lost.Load()))
}
