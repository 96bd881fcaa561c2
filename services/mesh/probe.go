package mesh

import (
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// Link round-trip times are measured with the mesh's own ping
// (docs/protocol.md §8.4), which every node, upstream's included, answers:
// once per routing interval, and when a session is established, the node
// sends an empty data message to the peer's "ping" service straight on the
// session (not through the routing table, so it measures this link), from
// a service name of its own (probeService, random per node). The reply,
// an empty message from the peer's "ping" service to that name, completes
// the measurement. One probe per session is outstanding at a time; a
// probe unanswered within the interval is simply replaced.

// IsLinkProbe reports whether a data message header is a node's RTT probe
// of a link: a ping sent with HopsToLive 1, which no node forwards. Tools
// that watch a session's traffic (tests, captures) use it to tell probes
// from the traffic they look for.
func IsLinkProbe(h wire.DataHeader) bool {
	return h.ToService == servicePing && h.HopsToLive == 1
}

// probeLocked sends an RTT probe on s if it is established and confirmed.
func (n *Node) probeLocked(s *session, now time.Time) {
	if !s.established || !s.confirmed() {
		return
	}
	msg, err := wire.AppendData(nil, wire.DataHeader{
		HopsToLive: 1, FromNode: n.hashOfLocked(n.id), ToNode: n.hashOfLocked(s.remote),
		FromService: n.probeService, ToService: servicePing,
	}, nil)
	if err != nil {
		return
	}
	s.st.probeSent.Store(now.UnixNano())
	if s.sendData(msg, nil, nil) != nil {
		s.st.probeSent.Store(0)
	}
}

// probeAllLocked probes every established session (the periodic run).
func (n *Node) probeAllLocked(now time.Time) {
	for _, s := range n.sessions {
		n.probeLocked(s, now)
	}
}

// probeReply completes the probe of the session to from.
func (n *Node) probeReply(from string) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.sessions[from]
	if s == nil {
		return
	}
	sent := s.st.probeSent.Swap(0)
	if sent == 0 {
		return
	}
	rtt := time.Duration(now.UnixNano() - sent)
	if rtt <= 0 {
		rtt = time.Nanosecond
	}
	s.st.rtt.Store(int64(rtt))
	n.publishLocked(Event{Kind: EventLinkRTT, Time: now, Peer: s.remote, Backend: s.kind, Cost: s.cost, RTT: rtt})
}
