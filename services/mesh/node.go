package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/mesh/firewall"
	"github.com/receptor-mesh/receptor/services/mesh/routing"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// Defaults from docs/protocol.md §2.4.
const (
	DefaultMaxIdleTimeout         = 21 * time.Second
	DefaultRouteUpdateInterval    = 10 * time.Second
	DefaultRouteRequestDelay      = 100 * time.Millisecond
	DefaultAdInterval             = 60 * time.Second
	DefaultAdRequestDelay         = 5 * time.Second
	DefaultInitialConnectPeriod   = time.Second
	DefaultInitialConnectAttempts = 11
	DefaultPingTimeout            = 10 * time.Second
	DefaultSendQueueLen           = 256
	DefaultSocketQueueLen         = 512
	DefaultHopsToLive             = wire.DefaultHops

	seenUpdateExpiry = time.Hour
	seenSweepPeriod  = 30 * time.Minute
	recomputePeriod  = 24 * time.Hour
	// routeSettle is how long a flood or recompute request waits when
	// none ran within the request delay: long enough for a burst of
	// updates read together (a new peer's known updates, §6.1) to land in
	// one run, short against a hop's latency.
	routeSettle = 2 * time.Millisecond
	// recomputeSpacing: after a recomputation that took d, the next may
	// start recomputeSpacing×d later (at least routeSettle, at most the
	// request delay), so that recomputing costs a node at most about
	// 1/recomputeSpacing of a core however fast changes arrive. On a small
	// mesh (microseconds per recomputation) every change is routed within
	// a few milliseconds; on thousands of nodes changes share one run.
	recomputeSpacing = 50
	ctrlQueueLen     = 1024
	// ctrlQueueBytes and dataQueueBytes bound a session's queues in bytes
	// as well: 1024 large advertisements must not pin 64 MiB per peer.
	ctrlQueueBytes  = 4 << 20
	dataQueueBytes  = 4 << 20
	unreachQueueLen = 16
	// Bounds on state a remote peer can make us keep.
	maxKnownNodes     = 1 << 16
	maxNames          = 1 << 17
	maxAdvertisements = 1 << 16
)

// Errors reported by the node.
var (
	ErrClosed          = errors.New("mesh node closed")
	ErrDuplicateNodeID = errors.New("another node with our node ID was on the mesh first; shutting down")
	ErrNoRoute         = errors.New("no route to node")
)

// Options configure a Node. Zero durations and lengths take the defaults.
type Options struct {
	NodeID string
	// MaxIdleTimeout closes a session that received nothing for this long.
	// Configuration must keep it ≥ 21 s to interoperate; smaller values
	// are accepted here for tests.
	MaxIdleTimeout time.Duration
	// FirewallRules are parsed with firewall.Parse (docs/protocol.md §8.6).
	FirewallRules []map[string]string
	Logger        *slog.Logger

	RouteUpdateInterval    time.Duration // periodic own routing update (10 s)
	RouteRequestDelay      time.Duration // coalescing window for floods and recomputes (100 ms)
	AdInterval             time.Duration // periodic service advertisements (60 s)
	AdRequestDelay         time.Duration // delay after a new advertised listener (5 s)
	InitialConnectPeriod   time.Duration // initial connect message period (1 s)
	InitialConnectAttempts int           // initial messages before giving up (11)
	PingTimeout            time.Duration // 10 s
	SendQueueLen           int           // data messages queued per session (256)
	SocketQueueLen         int           // datagrams queued per socket (512: a QUIC window of 1200-byte packets)

	// Memory bounds on state that remote peers make the node keep; zero
	// takes the defaults.
	MaxSeenUpdateBytes    int // remembered UpdateIDs (DefaultMaxSeenUpdateBytes)
	MaxRoutingStateBytes  int // known nodes, their connection lists and names (DefaultMaxRoutingStateBytes)
	MaxAdvertisementBytes int // stored advertisements and cancel tombstones (DefaultMaxAdvertisementBytes)
}

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.MaxIdleTimeout, DefaultMaxIdleTimeout)
	def(&o.RouteUpdateInterval, DefaultRouteUpdateInterval)
	def(&o.RouteRequestDelay, DefaultRouteRequestDelay)
	def(&o.AdInterval, DefaultAdInterval)
	def(&o.AdRequestDelay, DefaultAdRequestDelay)
	def(&o.InitialConnectPeriod, DefaultInitialConnectPeriod)
	def(&o.PingTimeout, DefaultPingTimeout)
	if o.InitialConnectAttempts <= 0 {
		o.InitialConnectAttempts = DefaultInitialConnectAttempts
	}
	if o.SendQueueLen <= 0 {
		o.SendQueueLen = DefaultSendQueueLen
	}
	if o.SocketQueueLen <= 0 {
		o.SocketQueueLen = DefaultSocketQueueLen
	}
	if o.MaxSeenUpdateBytes <= 0 {
		o.MaxSeenUpdateBytes = DefaultMaxSeenUpdateBytes
	}
	if o.MaxRoutingStateBytes <= 0 {
		o.MaxRoutingStateBytes = DefaultMaxRoutingStateBytes
	}
	if o.MaxAdvertisementBytes <= 0 {
		o.MaxAdvertisementBytes = DefaultMaxAdvertisementBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// nodeInfo is what we remember of a node's routing updates.
type nodeInfo struct {
	epoch, sequence uint64
	// last is the node's latest accepted routing update as we flood it
	// (ForwardingNode is our ID); a new peer gets it at once
	// (sendKnownUpdatesLocked). Counted in routeBytes.
	last []byte
}

type adKey struct{ node, service string }

type storedAd struct {
	ad  *wire.Advertisement
	raw []byte // the bytes as received, re-flooded unchanged
}

var lastEpoch atomic.Uint64

// freshEpoch returns a new epoch larger than every epoch handed out in
// this process, so a node restarted within the same second (or a node
// re-announcing itself after a duplicate report) is never taken as older.
func freshEpoch(now time.Time) uint64 {
	epoch := wire.NewEpoch(now)
	for {
		last := lastEpoch.Load()
		if epoch <= last {
			epoch = last + 1
		}
		if lastEpoch.CompareAndSwap(last, epoch) {
			return epoch
		}
	}
}

// Node is a netceptor mesh node. It implements PacketNetwork.
type Node struct {
	id   string
	opts Options
	log  *slog.Logger
	fw   firewall.Rules

	ctx    context.Context
	cancel context.CancelCauseFunc
	wg     sync.WaitGroup // scheduler and traceroute goroutines
	wake   chan struct{}

	backendMu sync.Mutex
	waits     []func()

	mu       sync.Mutex
	epoch    uint64 // see Epoch
	sequence uint64
	// dup tracks reports that we are a duplicate of an earlier node, see
	// duplicateReportLocked.
	dup         dupState
	sessions    map[string]*session // established, by remote node ID
	allSessions map[*session]struct{}
	known       map[string]*nodeInfo
	topo        routing.Topology // known connection costs, incl. our local edges
	// listedBy is topo reversed: listedBy[b] holds every a with an edge
	// a→b in topo, so that an update of b finds the edges to b it removes
	// without a pass over the whole topology.
	listedBy   map[string]map[string]struct{}
	routes     routing.Table
	seen       *seenSet
	names      map[uint64]string
	hashes     map[string]uint64
	sockets    map[string]*socket
	ads        map[adKey]*storedAd
	tombstones map[adKey]time.Time
	ownAds     map[string]ServiceAd
	workCmds   []WorkCommand // carried by our control service ads (SetWorkCommands)
	// Bytes of remote-controlled state, against Options.MaxRoutingStateBytes
	// and MaxAdvertisementBytes (see budget.go).
	routeBytes, adBytes int
	lastWarn            map[string]time.Time // see warnLimitedLocked
	links               map[linkKey]*link    // see stats.go
	subs                map[*Subscription]struct{}
	// probeService is the service name our link RTT probes come from
	// (probe.go).
	probeService string
	stats        counters
	// Scheduler deadlines (docs/protocol.md §6.1, §7.2).
	nextFlood, nextRecompute, nextAds, nextSweep time.Time
	// When the last flood and recompute ran: a request runs within
	// routeSettle unless one ran less than the request delay ago.
	lastFlood, lastRecompute time.Time
	lastRecomputeTook        time.Duration // how long the last recomputation took
}

var _ PacketNetwork = (*Node)(nil)

// New validates opts and starts a node with no backends.
func New(opts Options) (*Node, error) {
	opts.setDefaults()
	if opts.NodeID == "" {
		return nil, errors.New("mesh node: empty node ID")
	}
	if strings.EqualFold(opts.NodeID, "localhost") {
		return nil, fmt.Errorf("mesh node ID %q: localhost is reserved", opts.NodeID)
	}
	fw, err := firewall.Parse(opts.FirewallRules)
	if err != nil {
		return nil, fmt.Errorf("mesh node %q: %w", opts.NodeID, err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	now := time.Now()
	epoch := freshEpoch(now)
	n := &Node{
		id: opts.NodeID, epoch: epoch, opts: opts, fw: fw,
		log: opts.Logger.With("node", opts.NodeID),
		ctx: ctx, cancel: cancel,
		wake:     make(chan struct{}, 1),
		sessions: map[string]*session{}, allSessions: map[*session]struct{}{},
		known: map[string]*nodeInfo{}, topo: routing.Topology{}, listedBy: map[string]map[string]struct{}{}, routes: routing.Table{},
		seen: newSeenSet(opts.MaxSeenUpdateBytes), names: map[uint64]string{}, hashes: map[string]uint64{},
		sockets: map[string]*socket{}, ads: map[adKey]*storedAd{}, tombstones: map[adKey]time.Time{},
		ownAds: map[string]ServiceAd{},
		links:  map[linkKey]*link{}, subs: map[*Subscription]struct{}{},
		probeService:  wire.RandomName(),
		nextFlood:     now.Add(opts.RouteUpdateInterval),
		nextRecompute: now.Add(recomputePeriod),
		nextAds:       now.Add(opts.AdInterval),
		nextSweep:     now.Add(seenSweepPeriod),
	}
	n.hashOfLocked(n.id)
	n.wg.Add(1)
	go n.schedule()
	return n, nil
}

// NodeID returns the local node ID.
func (n *Node) NodeID() string { return n.id }

// Epoch returns the node's current routing epoch. It changes only when the
// node re-announces itself after a report that it is a duplicate.
func (n *Node) Epoch() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.epoch
}

// Done is closed when the node stops: after Close/Shutdown, on Abort, or on
// its own when it finds it is a duplicate of an earlier node (Err tells
// which).
func (n *Node) Done() <-chan struct{} { return n.ctx.Done() }

// Err returns nil while running, ErrClosed after Close,
// ErrDuplicateNodeID after a duplicate-ID shutdown, or the cause given to
// Abort.
func (n *Node) Err() error { return context.Cause(n.ctx) }

// BackendOptions configure the sessions of one backend (docs/protocol.md §5).
type BackendOptions struct {
	// Cost of the backend's sessions, > 0 (default 1).
	Cost float64
	// NodeCost overrides Cost per remote node ID (listeners, upstream).
	NodeCost map[string]float64
	// AllowedPeers, when non-empty, lists the only remote node IDs accepted.
	AllowedPeers []string
	// BindPeerToCertificate rejects a session unless its transport reports
	// (PeerNodeIDs) a verified node ID equal to the ForwardingNode of the
	// peer's routing updates. Beyond upstream; fails closed when the session
	// reports no identity.
	BindPeerToCertificate bool
}

func (o *BackendOptions) validate() error {
	if o.Cost == 0 {
		o.Cost = 1
	}
	if !(o.Cost > 0) || o.Cost > 1e300 {
		return fmt.Errorf("backend cost %v: must be a positive number", o.Cost)
	}
	for node, c := range o.NodeCost {
		if !(c > 0) || c > 1e300 {
			return fmt.Errorf("backend nodecost for %q = %v: must be a positive number", node, c)
		}
	}
	return nil
}

// AddBackend starts b; every session it produces runs the session state
// machine until it ends or the node stops.
func (n *Node) AddBackend(b backends.Backend, opts BackendOptions) error {
	if err := opts.validate(); err != nil {
		return fmt.Errorf("add %s backend: %w", b.Kind(), err)
	}
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	kind := b.Kind()
	wait, err := b.Start(n.ctx, func(s backends.Session) { n.runSession(s, kind, opts) })
	if err != nil {
		return fmt.Errorf("start %s backend: %w", kind, err)
	}
	n.backendMu.Lock()
	n.waits = append(n.waits, wait)
	n.backendMu.Unlock()
	return nil
}

// Close stops the node and waits for every goroutine it owns.
func (n *Node) Close() error {
	return n.Shutdown(context.Background())
}

// Shutdown stops the node: it closes all sessions and sockets and waits
// (bounded by ctx) for backends and goroutines to finish.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stop(ErrClosed)
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.backendMu.Lock()
		waits := n.waits
		n.waits = nil
		n.backendMu.Unlock()
		for _, w := range waits {
			w()
		}
		n.wg.Wait()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shut down mesh node %q: %w", n.id, ctx.Err())
	}
}

// Abort stops the node because of a fatal error: like Shutdown it closes
// every session and socket (without waiting), and Done and Err then report
// cause. Owners that watch Done (the router) treat any cause other than
// ErrClosed as the node failing on its own.
func (n *Node) Abort(cause error) {
	if cause == nil {
		cause = ErrClosed
	}
	n.stop(cause)
}

// stop cancels the node and closes transports and sockets without waiting.
func (n *Node) stop(cause error) {
	n.cancel(cause)
	n.mu.Lock()
	sessions := make([]*session, 0, len(n.allSessions))
	for s := range n.allSessions {
		sessions = append(sessions, s)
	}
	sockets := make([]*socket, 0, len(n.sockets))
	for _, s := range n.sockets {
		sockets = append(sockets, s)
	}
	n.mu.Unlock()
	for _, s := range sessions {
		_ = s.tr.Close()
	}
	for _, s := range sockets {
		s.closeLocal(false)
	}
	n.endSubscriptions()
}

// hashOfLocked returns the wire hash of name and learns it for reverse
// lookup (first insertion wins on a collision).
func (n *Node) hashOfLocked(name string) uint64 {
	if h, ok := n.hashes[name]; ok {
		return h
	}
	h := wire.HashName(name)
	if len(n.hashes) < maxNames && n.routeBytes+len(name)+nameBytes <= n.opts.MaxRoutingStateBytes {
		n.routeBytes += len(name) + nameBytes
		n.hashes[name] = h
		if _, taken := n.names[h]; !taken {
			n.names[h] = name
		}
	}
	return h
}

func (n *Node) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// requestFloodLocked schedules an own routing update: at once (after
// routeSettle) when none ran within the request delay, else one request
// delay after the last, so that a change is announced without waiting
// and a burst of changes still costs at most one update per delay.
// Requests only ever move the next run earlier (docs/protocol.md §6.1).
func (n *Node) requestFloodLocked() {
	if t := n.throttledLocked(n.lastFlood, n.opts.RouteRequestDelay); t.Before(n.nextFlood) {
		n.nextFlood = t
		n.kick()
	}
}

// requestNewNodeFloodLocked schedules the own update that answers the
// first update of an unknown node: one request delay from now, or with a
// flood due sooner. It tells the newcomer about us when its neighbours do
// not pass on the updates they hold (upstream's do not); ours do so at
// once (sendKnownUpdatesLocked), see docs/protocol.md §6.1. Sent within
// routeSettle, every node's answer would be flooded to every node just as
// the newcomer's own update and its neighbour's travel the mesh: on a line
// of 20 nodes, 19 floods of 19 hops each, which on 2 cores held those two
// updates (the ones routes to the newcomer wait for) back by about 2.5 ms
// per hop.
func (n *Node) requestNewNodeFloodLocked() {
	// A request delay from now is never earlier than throttledLocked's
	// time (the last run is in the past), so no throttling applies.
	if t := time.Now().Add(n.opts.RouteRequestDelay); t.Before(n.nextFlood) {
		n.nextFlood = t
		n.kick()
	}
}

// requestRecomputeLocked schedules a route recompute as requestFloodLocked
// schedules a flood.
// A recomputation costs only this node's CPU, so it is spaced by its own
// duration (recomputeSpacing) rather than by the request delay.
func (n *Node) requestRecomputeLocked() {
	spacing := min(max(recomputeSpacing*n.lastRecomputeTook, routeSettle), n.opts.RouteRequestDelay)
	if t := n.throttledLocked(n.lastRecompute, spacing); t.Before(n.nextRecompute) {
		n.nextRecompute = t
		n.kick()
	}
}

// throttledLocked is when a requested run may start given the last one
// and the spacing between runs.
func (n *Node) throttledLocked(last time.Time, spacing time.Duration) time.Time {
	t := time.Now().Add(min(routeSettle, n.opts.RouteRequestDelay))
	if earliest := last.Add(spacing); t.Before(earliest) {
		return earliest
	}
	return t
}

func (n *Node) requestAdsLocked() {
	if t := time.Now().Add(n.opts.AdRequestDelay); t.Before(n.nextAds) {
		n.nextAds = t
		n.kick()
	}
}

// schedule runs the timed tasks: routing floods, route recomputes,
// advertisement runs and the seen-update sweep.
func (n *Node) schedule() {
	defer n.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		n.mu.Lock()
		flood := !now.Before(n.nextFlood)
		if flood {
			n.nextFlood = now.Add(n.opts.RouteUpdateInterval)
			n.lastFlood = now
		}
		recompute := !now.Before(n.nextRecompute)
		if recompute {
			n.nextRecompute = now.Add(recomputePeriod)
			n.lastRecompute = now
		}
		ads := !now.Before(n.nextAds)
		if ads {
			n.nextAds = now.Add(n.opts.AdInterval)
		}
		sweep := !now.Before(n.nextSweep)
		if sweep {
			n.nextSweep = now.Add(seenSweepPeriod)
		}
		if recompute {
			n.recomputeLocked()
			// A peer answers a probe once it has a route back to us: links
			// not measured yet are probed again as routes settle.
			for _, s := range n.sessions {
				if s.st.rtt.Load() == 0 && s.st.probeSent.Load() == 0 {
					n.probeLocked(s, now)
				}
			}
		}
		if flood {
			n.floodOwnUpdateLocked(0)
			n.probeAllLocked(now)
		}
		if ads {
			n.advertiseLocked(nil)
		}
		if sweep {
			n.seen.expire(now.Add(-seenUpdateExpiry))
		}
		next := n.nextFlood
		for _, t := range []time.Time{n.nextRecompute, n.nextAds, n.nextSweep} {
			if t.Before(next) {
				next = t
			}
		}
		n.mu.Unlock()
		timer.Reset(time.Until(next))
		select {
		case <-n.ctx.Done():
			return
		case <-n.wake:
		case <-timer.C:
		}
	}
}
