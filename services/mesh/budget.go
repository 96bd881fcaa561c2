package mesh

import (
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
)

// Memory budgets for state that remote peers make the node keep. Costs are
// estimates of the Go memory behind each entry (strings plus map and
// struct overhead); what matters is that every byte a peer can make us
// store is counted against a fixed budget.
const (
	// DefaultMaxRoutingStateBytes bounds known nodes, their connection
	// lists and learned names (a 10 000-node mesh of 20 links each needs
	// well under a tenth of it).
	DefaultMaxRoutingStateBytes = 64 << 20
	// DefaultMaxAdvertisementBytes bounds stored advertisements (kept as
	// received bytes plus their decoded form) and cancel tombstones.
	DefaultMaxAdvertisementBytes = 64 << 20

	knownNodeBytes = 96 // a known node: map entry, nodeInfo, its topology map
	edgeBytes      = 96 // one entry of a connection list, and its entry in n.listedBy
	nameBytes      = 64 // one learned name: entries in names and hashes
	adEntryBytes   = 256
	tombstoneBytes = 96

	// maxAdFutureSkew is how far in the future an advertisement's Time may
	// be. Newer ads replace older ones only when their Time is later, so an
	// ad stamped years ahead would pin a service (it could never be updated
	// or cancelled again); such ads are refused, neither stored nor
	// flooded. Hosts of a mesh are expected to keep their clocks within
	// this of each other.
	maxAdFutureSkew = 10 * time.Minute

	// maxFloodedMessage is the largest routing update or advertisement the
	// node stores and floods: what a TCP frame can carry. A larger one
	// (possible over websocket) could never be passed on over TCP; sending
	// it there would only tear that session down.
	maxFloodedMessage = backends.MaxMessageSize

	// budgetWarnEvery spaces out warnings about refused state, so a hostile
	// peer cannot flood the log as well.
	budgetWarnEvery = 10 * time.Second
)

// warnLimitedLocked logs msg at warning level at most once per
// budgetWarnEvery for each kind (callers hold n.mu).
func (n *Node) warnLimitedLocked(kind, msg string, args ...any) {
	now := time.Now()
	if last, ok := n.lastWarn[kind]; ok && now.Sub(last) < budgetWarnEvery {
		n.log.Debug(msg, args...)
		return
	}
	if n.lastWarn == nil {
		n.lastWarn = map[string]time.Time{}
	}
	n.lastWarn[kind] = now
	n.log.Warn(msg, args...)
}

// connsBytes is the routing-state cost of one connection list.
func connsBytes(conns map[string]float64) int {
	b := 0
	for k := range conns {
		b += len(k) + edgeBytes
	}
	return b
}

// setEdgeLocked adds or updates from's edge to to in the topology, keeping
// routeBytes exact (edges of our own list are not counted: they follow
// our sessions).
func (n *Node) setEdgeLocked(from, to string, cost float64) {
	edges := n.topo[from]
	if edges == nil {
		edges = map[string]float64{}
		n.topo[from] = edges
	}
	if _, had := edges[to]; !had {
		n.listedByAddLocked(to, from)
		if from != n.id {
			n.routeBytes += len(to) + edgeBytes
		}
	}
	edges[to] = cost
}

// listedByAddLocked and listedByDeleteLocked keep n.listedBy, the reverse
// of the topology's edges, in step with it.
func (n *Node) listedByAddLocked(to, from string) {
	set := n.listedBy[to]
	if set == nil {
		set = map[string]struct{}{}
		n.listedBy[to] = set
	}
	set[from] = struct{}{}
}

func (n *Node) listedByDeleteLocked(to, from string) {
	if set := n.listedBy[to]; set != nil {
		delete(set, from)
		if len(set) == 0 {
			delete(n.listedBy, to)
		}
	}
}

// deleteEdgeLocked removes from's edge to to, keeping routeBytes exact.
func (n *Node) deleteEdgeLocked(from, to string) {
	edges := n.topo[from]
	if _, had := edges[to]; !had {
		return
	}
	delete(edges, to)
	n.listedByDeleteLocked(to, from)
	if from != n.id {
		n.routeBytes -= len(to) + edgeBytes
	}
}

// routingStateBytes recounts what routeBytes tracks (tests check the
// running count against it).
func (n *Node) routingStateBytes() int {
	b := 0
	for id, info := range n.known {
		b += len(id) + knownNodeBytes + len(info.last)
	}
	for from, edges := range n.topo {
		if from != n.id {
			b += connsBytes(edges)
		}
	}
	for name := range n.hashes {
		b += len(name) + nameBytes
	}
	return b
}

// adBytes is the advertisement-budget cost of a stored ad of raw bytes.
func storedAdBytes(key adKey, raw []byte) int {
	// The decoded form holds about as much again as the raw bytes.
	return 2*len(raw) + len(key.node) + len(key.service) + adEntryBytes
}

func tombBytes(key adKey) int { return len(key.node) + len(key.service) + tombstoneBytes }
