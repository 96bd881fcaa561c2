package control

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Request commands, the command label of the request counts: the control
// commands as typed (force-release counts as "work release"), and
// "invalid" for lines that do not parse.
const (
	cmdInvalid = iota
	cmdPing
	cmdTraceroute
	cmdStatus
	cmdReload
	cmdConnect
	cmdWorkSubmit
	cmdWorkResults
	cmdWorkList
	cmdWorkStatus
	cmdWorkCancel
	cmdWorkRelease
	numCommands
)

var commandNames = [numCommands]string{"invalid", "ping", "traceroute", "status", "reload", "connect",
	"work submit", "work results", "work list", "work status", "work cancel", "work release"}

// commandOf is the command label of a parsed request.
func commandOf(req Request) int {
	switch req.(type) {
	case PingRequest:
		return cmdPing
	case TracerouteRequest:
		return cmdTraceroute
	case StatusRequest:
		return cmdStatus
	case ReloadRequest:
		return cmdReload
	case ConnectRequest:
		return cmdConnect
	case WorkSubmitRequest:
		return cmdWorkSubmit
	case WorkResultsRequest:
		return cmdWorkResults
	case WorkListRequest:
		return cmdWorkList
	case WorkStatusRequest:
		return cmdWorkStatus
	case WorkCancelRequest:
		return cmdWorkCancel
	case WorkReleaseRequest:
		return cmdWorkRelease
	}
	return cmdInvalid
}

// Request outcomes: answered, answered with an error, refused by the
// authorizer.
const (
	outcomeOK = iota
	outcomeError
	outcomeDenied
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"ok", "error", "denied"}

// faces are the session origins, the face label.
var faces = []Origin{OriginUnix, OriginTCP, OriginMesh}

// stats count a Server's sessions and requests; the collector reads them
// when scraped.
type stats struct {
	sessions [OriginMesh + 1]atomic.Uint64 // started, by origin
	open     [OriginMesh + 1]atomic.Int64  // open now, by origin
	requests [numCommands][numOutcomes]atomic.Uint64
}

func (st *stats) sessionStarted(o Origin) {
	if o >= OriginUnix && o <= OriginMesh {
		st.sessions[o].Add(1)
		st.open[o].Add(1)
	}
}

func (st *stats) sessionEnded(o Origin) {
	if o >= OriginUnix && o <= OriginMesh {
		st.open[o].Add(-1)
	}
}

// request counts one answered request; a request is counted when its
// answer is complete (a results stream or connect bridge: when it ends).
func (st *stats) request(cmd, outcome int) { st.requests[cmd][outcome].Add(1) }

var (
	descSessions = prometheus.NewDesc("receptor_control_sessions_total",
		"Control-protocol sessions started, by face (unix, tcp, mesh).", []string{"face"}, nil)
	descOpen = prometheus.NewDesc("receptor_control_sessions_open",
		"Control-protocol sessions open now, by face.", []string{"face"}, nil)
	descRequests = prometheus.NewDesc("receptor_control_requests_total",
		"Control-protocol requests, by command and outcome (ok, error: an error reply, denied: refused by the authorizer).",
		[]string{"command", "outcome"}, nil)
)

// Collector returns a Prometheus collector of the server's sessions and
// requests (every Serve and ServeConn of s and of its WithIdleTimeout
// copies). Register it once.
func (s *Server) Collector() prometheus.Collector { return collector{s.stats} }

type collector struct{ st *stats }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descSessions
	ch <- descOpen
	ch <- descRequests
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	for _, o := range faces {
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.CounterValue, float64(c.st.sessions[o].Load()), o.String())
		ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(c.st.open[o].Load()), o.String())
	}
	for cmd := range numCommands {
		for out := range numOutcomes {
			ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(c.st.requests[cmd][out].Load()),
				commandNames[cmd], outcomeNames[out])
		}
	}
}
