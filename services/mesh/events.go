package mesh

import (
	"errors"
	"maps"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/routing"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// This file is the node's one event bus: changes of the mesh as this node
// sees them, published under n.mu at the moment the state changes, so that
// a subscriber's snapshot (taken under the same lock) and its events never
// leave a gap or overlap. Each subscriber has a bounded buffer; one that
// falls behind is dropped (its channel closed, Err says why), never waited
// for.

// EventKind says what changed.
type EventKind int

// Event kinds.
const (
	// EventNodeAppeared: a node became reachable (it entered the routing
	// table). Node names it.
	EventNodeAppeared EventKind = iota + 1
	// EventNodeLeft: a node is no longer reachable. Node names it.
	EventNodeLeft
	// EventLinkUp: a session with a direct peer was established. Peer,
	// Backend and Cost describe it.
	EventLinkUp
	// EventLinkDown: a session with a direct peer ended; Reason says why.
	EventLinkDown
	// EventLinkRTT: a link's round-trip time was measured (once per
	// routing interval per link).
	EventLinkRTT
	// EventRouteChanged: the next hop toward Node changed from
	// OldNextHop to NextHop (either empty when the route appeared or
	// went away).
	EventRouteChanged
	// EventAdvertisement: a service advertisement appeared or its content
	// (connection type, tags, work types) changed; periodic refreshes of
	// an unchanged advertisement are not events.
	EventAdvertisement
	// EventAdvertisementCancelled: a service was withdrawn.
	EventAdvertisementCancelled
)

var eventKindNames = map[EventKind]string{
	EventNodeAppeared: "node_appeared", EventNodeLeft: "node_left", EventLinkUp: "link_up",
	EventLinkDown: "link_down", EventLinkRTT: "link_rtt", EventRouteChanged: "route_changed",
	EventAdvertisement: "advertisement", EventAdvertisementCancelled: "advertisement_cancelled",
}

func (k EventKind) String() string {
	if s, ok := eventKindNames[k]; ok {
		return s
	}
	return "unknown"
}

// Event is one change of the mesh.
type Event struct {
	Kind EventKind
	Time time.Time
	// Node: the node that appeared or left, the destination of a route,
	// or the advertising node.
	Node string
	// Links: the peer, its backend kind, the link cost and RTT (0 when not
	// measured yet), and why a link went down.
	Peer    string
	Backend string
	Cost    float64
	RTT     time.Duration
	Reason  string
	// Routes.
	NextHop, OldNextHop string
	// Advertisements (Service is also set for cancellations).
	Advertisement *Advertisement
}

// DefaultEventBuffer is the buffer of a subscriber that asks for none.
const DefaultEventBuffer = 1024

// ErrSlowSubscriber ends a subscription whose buffer filled up.
var ErrSlowSubscriber = errors.New("mesh event subscriber fell behind; its buffer is full")

// Subscription delivers events on C until Close, the node stopping, or
// the buffer filling up; C is then closed and Err says why.
type Subscription struct {
	C <-chan Event

	n       *Node
	c       chan Event
	err     error // under n.mu
	dropped atomic.Bool
}

// Dropped reports, without waiting, whether the subscriber fell behind and
// was dropped (C then holds only what was buffered before).
func (s *Subscription) Dropped() bool { return s.dropped.Load() }

// Snapshot is the state a subscription starts from.
type Snapshot struct {
	Status Status
	Links  []LinkStats
}

// Subscribe returns the mesh's current state and a subscription to every
// change after it. buffer bounds the events held for the subscriber
// (DefaultEventBuffer when ≤ 0).
func (n *Node) Subscribe(buffer int) (Snapshot, *Subscription) {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	c := make(chan Event, buffer)
	sub := &Subscription{C: c, n: n, c: c}
	var links []LinkStats
	n.mu.Lock()
	st := n.statusLocked()
	for _, l := range n.links {
		links = append(links, l.statsLocked())
	}
	if n.ctx.Err() != nil {
		sub.err = ErrClosed
		close(c)
	} else {
		n.subs[sub] = struct{}{}
	}
	n.mu.Unlock()
	sort.Slice(links, func(i, j int) bool {
		if links[i].Peer != links[j].Peer {
			return links[i].Peer < links[j].Peer
		}
		return links[i].Kind < links[j].Kind
	})
	return Snapshot{Status: st, Links: links}, sub
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	s.endLocked(nil)
}

// Err is why C was closed: nil after Close, ErrSlowSubscriber, or
// ErrClosed when the node stopped.
func (s *Subscription) Err() error {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	return s.err
}

func (s *Subscription) endLocked(err error) {
	if _, ok := s.n.subs[s]; !ok {
		return
	}
	delete(s.n.subs, s)
	s.err = err
	close(s.c)
}

// publishLocked hands ev to every subscriber without waiting.
func (n *Node) publishLocked(ev Event) {
	for sub := range n.subs {
		select {
		case sub.c <- ev:
		default:
			sub.dropped.Store(true)
			sub.endLocked(ErrSlowSubscriber)
		}
	}
}

// endSubscriptions closes every subscription when the node stops.
func (n *Node) endSubscriptions() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for sub := range n.subs {
		sub.endLocked(ErrClosed)
	}
}

// recomputeLocked recomputes the routing table, counts and times it, and
// publishes what changed.
func (n *Node) recomputeLocked() {
	start := time.Now()
	routes, _ := routing.Compute(n.id, n.topo)
	n.lastRecomputeTook = time.Since(start)
	n.stats.observeRecompute(n.lastRecomputeTook)
	old := n.routes
	n.routes = routes
	if len(n.subs) == 0 || maps.Equal(old, routes) {
		return
	}
	dests := make([]string, 0, len(routes)+len(old))
	for d := range routes {
		dests = append(dests, d)
	}
	for d := range old {
		if _, ok := routes[d]; !ok {
			dests = append(dests, d)
		}
	}
	slices.Sort(dests)
	for _, d := range dests {
		was, had := old[d]
		now, has := routes[d]
		switch {
		case !had && has:
			n.publishLocked(Event{Kind: EventNodeAppeared, Time: start, Node: d})
			n.publishLocked(Event{Kind: EventRouteChanged, Time: start, Node: d, NextHop: now})
		case had && !has:
			n.publishLocked(Event{Kind: EventRouteChanged, Time: start, Node: d, OldNextHop: was})
			n.publishLocked(Event{Kind: EventNodeLeft, Time: start, Node: d})
		case was != now:
			n.publishLocked(Event{Kind: EventRouteChanged, Time: start, Node: d, NextHop: now, OldNextHop: was})
		}
	}
}

// adChangedLocked publishes a stored advertisement a that replaced prev
// (nil: none) if it is news: new, different, or a cancellation of a
// service we knew.
func (n *Node) adChangedLocked(a *wire.Advertisement, prev *storedAd) {
	if len(n.subs) == 0 {
		return
	}
	if a.Cancel {
		if prev != nil {
			n.publishLocked(Event{Kind: EventAdvertisementCancelled, Time: time.Now(), Node: a.NodeID,
				Advertisement: &Advertisement{NodeID: a.NodeID, Service: a.Service, Time: a.Time}})
		}
		return
	}
	if prev != nil && sameAdContent(prev.ad, a) {
		return
	}
	n.publishLocked(Event{Kind: EventAdvertisement, Time: time.Now(), Node: a.NodeID, Advertisement: adOf(a)})
}

func sameAdContent(a, b *wire.Advertisement) bool {
	return a.ConnType == b.ConnType && maps.Equal(a.Tags, b.Tags) && slices.Equal(a.WorkCommands, b.WorkCommands)
}

// adOf converts a stored advertisement for Status and events.
func adOf(a *wire.Advertisement) *Advertisement {
	ad := &Advertisement{NodeID: a.NodeID, Service: a.Service, Time: a.Time, ConnType: ConnType(a.ConnType),
		Tags: maps.Clone(a.Tags)}
	if a.WorkCommands != nil {
		ad.WorkCommands = make([]WorkCommand, len(a.WorkCommands))
		for i, wc := range a.WorkCommands {
			ad.WorkCommands[i] = WorkCommand(wc)
		}
	}
	return ad
}
