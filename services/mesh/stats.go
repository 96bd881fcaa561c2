package mesh

import (
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// This file is the node's one source of statistics: per-link figures
// (bytes, messages, queues, drops, round-trip time, ...) and node-wide
// counters (routing, datagrams). Three consumers read them: the Prometheus
// collector (metrics.go), the status (Status.Connections' Health) and the
// event stream (events.go). The hot path only adds to atomic counters owned
// by the session or the node; nothing is locked or allocated per message,
// and readers assemble the figures when they ask.

// maxLinks bounds the link records kept; when full, the record of the
// link that has been down longest is forgotten (a peer may come and go
// under many node IDs, and each is a label value).
const maxLinks = 1024

// DropReason is why a data message was not delivered or forwarded.
type DropReason int

// Drop reasons, in DropReasons order.
const (
	DropNoRoute        DropReason = iota // no route to the destination
	DropHopLimit                         // HopsToLive reached 0 (message expired)
	DropFirewallDrop                     // a firewall rule dropped it
	DropFirewallReject                   // a firewall rule rejected it (an unreachable was sent)
	DropQueueFull                        // the next hop's send queue was full
	DropUnknownService                   // no socket is bound to the destination service
	DropUnknownNode                      // a node-name hash we do not know
	DropSocketFull                       // the destination socket's queue was full
	DropTooLarge                         // too large for the next hop's transport
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	"no_route", "hop_limit", "firewall_drop", "firewall_reject", "queue_full",
	"unknown_service", "unknown_node", "socket_full", "too_large",
}

// String is the reason's metric label value, e.g. "no_route".
func (r DropReason) String() string {
	if r < 0 || r >= numDropReasons {
		return "unknown"
	}
	return dropReasonNames[r]
}

// counters are the node-wide event counts.
type counters struct {
	routeUpdatesSent     atomic.Uint64
	routeUpdatesReceived atomic.Uint64
	routeUpdatesIgnored  atomic.Uint64
	recomputes           atomic.Uint64
	recomputeNanos       atomic.Uint64
	recomputeBuckets     [len(RecomputeBuckets)]atomic.Uint64
	adsReceived          atomic.Uint64
	adsSent              atomic.Uint64
	datagramsOriginated  atomic.Uint64
	datagramsDelivered   atomic.Uint64
	datagramsForwarded   atomic.Uint64
	dropped              [numDropReasons]atomic.Uint64
}

// RecomputeBuckets are the upper bounds (seconds) of the route
// recomputation duration histogram in Counters.
var RecomputeBuckets = [...]float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}

func (c *counters) drop(r DropReason) { c.dropped[r].Add(1) }

func (c *counters) observeRecompute(d time.Duration) {
	c.recomputes.Add(1)
	c.recomputeNanos.Add(uint64(d))
	s := d.Seconds()
	for i, b := range RecomputeBuckets {
		if s <= b {
			c.recomputeBuckets[i].Add(1)
			return
		}
	}
}

// Counters are the node-wide figures since the node started.
type Counters struct {
	RouteUpdatesSent     uint64 // routing updates queued to peers (own and flooded)
	RouteUpdatesReceived uint64 // routing updates received from peers
	RouteUpdatesIgnored  uint64 // received updates already seen or not newer than what we hold
	Recomputes           uint64 // route table recomputations
	RecomputeSeconds     float64
	// RecomputeBuckets[i] counts recomputations that took at most
	// RecomputeBuckets[i] seconds and more than the bound before it; the
	// rest took longer than the last bound.
	RecomputeBuckets    [len(RecomputeBuckets)]uint64
	AdsReceived         uint64 // service advertisements received from peers
	AdsSent             uint64 // advertisements queued to peers (own and flooded)
	DatagramsOriginated uint64 // data messages this node sent into the mesh
	DatagramsDelivered  uint64 // data messages delivered to a local socket or handler
	DatagramsForwarded  uint64 // data messages passed on toward another node
	Dropped             [numDropReasons]uint64
	KnownNodes          int // nodes known from routing updates, this one included
	Routes              int // reachable destinations in the routing table
	Advertisements      int // stored service advertisements
	Subscribers         int // event subscriptions (Subscribe)
}

// Counters returns the node-wide figures.
func (n *Node) Counters() Counters {
	c := &n.stats
	out := Counters{
		RouteUpdatesSent: c.routeUpdatesSent.Load(), RouteUpdatesReceived: c.routeUpdatesReceived.Load(),
		RouteUpdatesIgnored: c.routeUpdatesIgnored.Load(), Recomputes: c.recomputes.Load(),
		RecomputeSeconds: time.Duration(c.recomputeNanos.Load()).Seconds(),
		AdsReceived:      c.adsReceived.Load(), AdsSent: c.adsSent.Load(),
		DatagramsOriginated: c.datagramsOriginated.Load(), DatagramsDelivered: c.datagramsDelivered.Load(),
		DatagramsForwarded: c.datagramsForwarded.Load(),
	}
	for i := range c.recomputeBuckets {
		out.RecomputeBuckets[i] = c.recomputeBuckets[i].Load()
	}
	for i := range c.dropped {
		out.Dropped[i] = c.dropped[i].Load()
	}
	n.mu.Lock()
	out.KnownNodes = len(n.known) + 1
	out.Routes = len(n.routes)
	out.Advertisements = len(n.ads)
	out.Subscribers = len(n.subs)
	n.mu.Unlock()
	return out
}

// sessionStats are one session's counters, written by its reader, its
// writer and senders without locks.
type sessionStats struct {
	bytesIn, bytesOut atomic.Uint64
	msgsIn, msgsOut   atomic.Uint64
	ctrlDropped       atomic.Uint64
	lastRecv          atomic.Int64 // unix nanoseconds of the last message received
	rtt               atomic.Int64 // nanoseconds; 0: not measured yet
	probeSent         atomic.Int64 // unix nanoseconds of the outstanding RTT probe
}

// sent counts one message handed to the transport.
func (s *session) sent(m []byte) {
	s.st.msgsOut.Add(1)
	s.st.bytesOut.Add(uint64(len(m)))
}

// linkKey names a link: a peer over one backend.
type linkKey struct{ peer, kind string }

// link is what the node remembers of a link across its sessions (under
// n.mu): totals of its ended sessions and the current one.
type link struct {
	key linkKey
	cur *session
	// since: when cur was established; downSince: when the last session
	// ended (zero while up).
	since, downSince time.Time
	sessions         uint64 // sessions established over the link
	idleTeardowns    uint64
	// Totals of ended sessions.
	bytesIn, bytesOut, msgsIn, msgsOut, drops uint64
	lastRecv                                  time.Time
	rtt                                       time.Duration
	cost                                      float64
	identity                                  []string
	remoteAddr                                string
}

// LinkStats describe one link: a peer reached over one backend. Counters
// add up every session the link had since the node started.
type LinkStats struct {
	Peer      string // the peer's node ID
	Kind      string // the backend kind, e.g. "tcp-listener"
	Backend   string // the transport: "tcp", "udp", "ws" or "memory"
	Direction string // "inbound" (a listener accepted it) or "outbound" (we dialed)
	Up        bool
	Cost      float64
	// EstablishedSince is when the current session was established (zero
	// while down); DownSince when the last one ended (zero while up).
	EstablishedSince, DownSince time.Time
	// LastReceived is when the peer's last message arrived.
	LastReceived time.Time
	// RTT is the last measured round-trip time (a ping of the peer sent
	// over this link every routing interval); 0 until measured.
	RTT               time.Duration
	BytesIn, BytesOut uint64 // mesh message bytes (without transport framing)
	MessagesIn        uint64
	MessagesOut       uint64 // messages handed to the transport
	QueuedMessages    int    // messages waiting to be sent now
	QueuedBytes       int64
	Drops             uint64 // messages dropped at a full send queue
	Sessions          uint64 // sessions established over this link
	Redials           uint64 // sessions established again after one ended (Sessions - 1)
	IdleTeardowns     uint64 // sessions ended because the peer sent nothing for the idle timeout
	PeerIdentity      []string
	RemoteAddr        string // the transport address of the current (or last) session
}

// splitKind turns a backend kind into transport and direction.
func splitKind(kind string) (backend, direction string) {
	b, role, _ := strings.Cut(kind, "-")
	if role == "listener" {
		return b, "inbound"
	}
	return b, "outbound"
}

// linkUpLocked records that s was established.
func (n *Node) linkUpLocked(s *session, now time.Time) {
	key := linkKey{s.remote, s.kind}
	l := n.links[key]
	if l == nil {
		if len(n.links) >= maxLinks {
			n.forgetOldestLinkLocked()
		}
		l = &link{key: key}
		n.links[key] = l
	}
	l.cur, l.since, l.downSince = s, now, time.Time{}
	l.sessions++
	l.cost = s.cost
	l.remoteAddr = s.tr.RemoteAddr()
	l.identity = nil
	if pi, ok := s.tr.(interface{ PeerNodeIDs() []string }); ok {
		l.identity = pi.PeerNodeIDs()
	}
	s.link = l
}

// linkDownLocked folds the ended session s into its link's totals.
func (n *Node) linkDownLocked(s *session, idle bool, now time.Time) {
	l := s.link
	if l == nil || l.cur != s {
		return
	}
	l.bytesIn += s.st.bytesIn.Load()
	l.bytesOut += s.st.bytesOut.Load()
	l.msgsIn += s.st.msgsIn.Load()
	l.msgsOut += s.st.msgsOut.Load()
	l.drops += s.dropped.Load() + s.st.ctrlDropped.Load()
	if t := s.st.lastRecv.Load(); t != 0 {
		l.lastRecv = time.Unix(0, t)
	}
	l.rtt = time.Duration(s.st.rtt.Load())
	if idle {
		l.idleTeardowns++
	}
	l.cur, l.downSince = nil, now
}

func (n *Node) forgetOldestLinkLocked() {
	var oldest *link
	for _, l := range n.links {
		if l.cur == nil && (oldest == nil || l.downSince.Before(oldest.downSince)) {
			oldest = l
		}
	}
	if oldest != nil {
		delete(n.links, oldest.key)
	}
}

// statsLocked assembles l's figures.
func (l *link) statsLocked() LinkStats {
	ls := LinkStats{
		Peer: l.key.peer, Kind: l.key.kind, Cost: l.cost,
		DownSince: l.downSince, LastReceived: l.lastRecv, RTT: l.rtt,
		BytesIn: l.bytesIn, BytesOut: l.bytesOut, MessagesIn: l.msgsIn, MessagesOut: l.msgsOut,
		Drops: l.drops, Sessions: l.sessions, IdleTeardowns: l.idleTeardowns,
		PeerIdentity: append([]string(nil), l.identity...), RemoteAddr: l.remoteAddr,
	}
	ls.Backend, ls.Direction = splitKind(l.key.kind)
	if l.sessions > 0 {
		ls.Redials = l.sessions - 1
	}
	if s := l.cur; s != nil {
		ls.Up = true
		ls.EstablishedSince = l.since
		ls.BytesIn += s.st.bytesIn.Load()
		ls.BytesOut += s.st.bytesOut.Load()
		ls.MessagesIn += s.st.msgsIn.Load()
		ls.MessagesOut += s.st.msgsOut.Load()
		ls.Drops += s.dropped.Load() + s.st.ctrlDropped.Load()
		if t := s.st.lastRecv.Load(); t != 0 {
			ls.LastReceived = time.Unix(0, t)
		}
		if r := s.st.rtt.Load(); r != 0 {
			ls.RTT = time.Duration(r)
		}
		ls.QueuedMessages = len(s.ctrl) + len(s.data)
		ls.QueuedBytes = s.ctrlBytes.Load() + s.dataBytes.Load()
		if q, ok := s.tr.(interface{ Queued() (int, int) }); ok {
			m, b := q.Queued()
			ls.QueuedMessages += m
			ls.QueuedBytes += int64(b)
		}
	}
	return ls
}

// Links returns every link the node has had (up or down, at most
// maxLinks), sorted by peer and backend kind.
func (n *Node) Links() []LinkStats {
	n.mu.Lock()
	out := make([]LinkStats, 0, len(n.links))
	for _, l := range n.links {
		out = append(out, l.statsLocked())
	}
	n.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Peer != out[j].Peer {
			return out[i].Peer < out[j].Peer
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}
