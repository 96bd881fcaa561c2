package mesh

import (
	"maps"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// ownUpdateLocked builds a fresh own routing update (new UpdateID, next
// sequence number) listing every established session (docs/protocol.md §4.4, §6.1).
func (n *Node) ownUpdateLocked(suspectedDuplicate uint64) ([]byte, error) {
	n.sequence++
	conns := make(map[string]float64, len(n.sessions))
	for id, s := range n.sessions {
		if s.confirmed() {
			conns[id] = s.cost
		}
	}
	msg, err := wire.EncodeRoute(&wire.RoutingUpdate{
		NodeID: n.id, UpdateID: wire.RandomName(), UpdateEpoch: n.epoch, UpdateSequence: n.sequence,
		Connections: conns, ForwardingNode: n.id, SuspectedDuplicate: suspectedDuplicate,
	})
	if err != nil {
		n.log.Error("cannot encode own routing update", "err", err)
	}
	return msg, err
}

// floodOwnUpdateLocked sends an own update to all established sessions;
// skipped when there are none (docs/protocol.md §6.1).
func (n *Node) floodOwnUpdateLocked(suspectedDuplicate uint64) {
	if len(n.sessions) == 0 {
		return
	}
	msg, err := n.ownUpdateLocked(suspectedDuplicate)
	if err != nil {
		return
	}
	for _, s := range n.sessions {
		if s.confirmed() {
			n.stats.routeUpdatesSent.Add(1)
			s.enqueueCtrl(msg)
		}
	}
}

// processUpdateLocked applies docs/protocol.md §6.2 to an update received on from.
func (n *Node) processUpdateLocked(u *wire.RoutingUpdate, from *session) {
	if u.NodeID == "" {
		return
	}
	if u.NodeID == n.id {
		switch {
		case u.UpdateEpoch == n.epoch:
		case u.SuspectedDuplicate == n.epoch:
			n.duplicateReportLocked(u)
		case u.UpdateEpoch > n.epoch:
			n.log.Warn("mesh: a later node uses our ID; flooding a duplicate notice", "their_epoch", u.UpdateEpoch)
			n.floodOwnUpdateLocked(u.UpdateEpoch)
		}
		return
	}
	if n.seen.contains(u.UpdateID) {
		n.stats.routeUpdatesIgnored.Add(1)
		return
	}
	if n.seen.add(u.UpdateID, time.Now()) && n.seen.evicted%10000 == 1 {
		n.log.Warn("mesh: remembered routing updates at their memory bound; forgetting the oldest early",
			"entries", n.seen.len(), "evicted", n.seen.evicted)
	}
	info := n.known[u.NodeID]
	if u.SuspectedDuplicate == 0 && info != nil &&
		(u.UpdateEpoch < info.epoch || (u.UpdateEpoch == info.epoch && u.UpdateSequence <= info.sequence)) {
		n.stats.routeUpdatesIgnored.Add(1)
		return // not newer than what we hold
	}
	// What we flood: the update as received, from us.
	u.ForwardingNode = n.id
	msg, err := wire.EncodeRoute(u)
	if err != nil {
		n.log.Warn("mesh: cannot re-encode routing update", "origin", u.NodeID, "err", err)
		return
	}
	if len(msg) > maxFloodedMessage {
		n.warnLimitedLocked("route-size", "mesh: re-encoded routing update too large to flood", "origin", u.NodeID, "bytes", len(msg))
		msg = nil // stored, but neither kept for new peers nor flooded
	}
	if u.SuspectedDuplicate != 0 {
		if info != nil && info.epoch == u.SuspectedDuplicate {
			info.epoch, info.sequence = u.UpdateEpoch, u.UpdateSequence
		}
	} else {
		stored, have := n.topo[u.NodeID]
		changed := (!have && u.Connections != nil) || (have && !maps.Equal(stored, u.Connections))
		grow := len(msg)
		if changed {
			grow += connsBytes(u.Connections) - connsBytes(stored)
		}
		if info != nil {
			grow -= len(info.last)
		} else {
			grow += len(u.NodeID) + knownNodeBytes
		}
		// Refused updates are neither stored nor flooded on.
		if info == nil && len(n.known) >= maxKnownNodes {
			n.warnLimitedLocked("known", "mesh: too many known nodes; ignoring new node", "origin", u.NodeID)
			return
		}
		if grow > 0 && n.routeBytes+grow > n.opts.MaxRoutingStateBytes {
			n.warnLimitedLocked("routing", "mesh: routing state at its memory bound; ignoring routing update",
				"origin", u.NodeID, "bytes", n.routeBytes, "limit", n.opts.MaxRoutingStateBytes)
			return
		}
		if info == nil {
			info = &nodeInfo{}
			n.known[u.NodeID] = info
			n.routeBytes += len(u.NodeID) + knownNodeBytes
			n.requestNewNodeFloodLocked()
			n.hashOfLocked(u.NodeID)
		}
		info.epoch, info.sequence = u.UpdateEpoch, u.UpdateSequence
		n.routeBytes += len(msg) - len(info.last)
		info.last = msg
		if changed {
			n.routeBytes += connsBytes(u.Connections) - connsBytes(stored)
			conns := make(map[string]float64, len(u.Connections))
			for k := range stored {
				n.listedByDeleteLocked(k, u.NodeID)
			}
			for k, v := range u.Connections {
				conns[k] = v
				n.listedByAddLocked(k, u.NodeID)
				n.hashOfLocked(k) // improvement: learn neighbour names too (if the budget allows)
			}
			n.topo[u.NodeID] = conns
			// Keep the graph symmetric on removals (edges are never added
			// in reverse): every other node that lists u.NodeID and is not
			// in its new list loses that edge. listedBy names them; a pass
			// over the whole topology per update made a start of N nodes
			// cost O(N³).
			for other := range n.listedBy[u.NodeID] {
				if other == n.id {
					continue
				}
				if _, listed := conns[other]; !listed {
					n.deleteEdgeLocked(other, u.NodeID)
				}
			}
			n.requestRecomputeLocked()
		}
	}
	if msg == nil {
		return
	}
	for _, s := range n.sessions {
		if s != from && s.confirmed() {
			n.stats.routeUpdatesSent.Add(1)
			s.enqueueCtrl(msg)
		}
	}
}

// seenRelayedUpdate reports, without decoding msg, that it is a routing
// update the full path would drop unchanged: relayed by the session's own
// peer about a third node (so none of the docs/protocol.md §5.4 checks applies) and already
// seen (docs/protocol.md §6.2). Floods bring each update once per neighbour; skipping the
// JSON decoding of the repeats roughly halves the CPU of convergence.
func (n *Node) seenRelayedUpdate(msg []byte, s *session) bool {
	k, ok := wire.PeekRoute(msg)
	if !ok || k.ForwardingNode != s.remote || k.NodeID == s.remote || k.NodeID == n.id || k.NodeID == "" {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.seen.contains(k.UpdateID)
}

// dupPersistIntervals is how many routing intervals reports that we are a
// duplicate must keep naming our current epoch, after we re-announced
// ourselves with a fresh one, before the node stops.
const dupPersistIntervals = 3

// dupState remembers the duplicate reports received (under n.mu).
type dupState struct {
	reannounced time.Time // when we last took a fresh epoch; zero: never
	lastReport  time.Time // when the last report naming our epoch arrived
	stopping    bool      // the node is stopping for good
}

// duplicateReportLocked handles a routing update that names this node with
// SuspectedDuplicate equal to our epoch: some node with our ID claims to
// have been on the mesh first. Every routing update carries our epoch, so
// any peer can forge such a report; a single one must not stop the node.
// The first report makes us take a fresh, larger epoch and announce it at
// once. A real earlier node with our ID reacts to that announcement with a
// new report naming the new epoch, and does so again for each of our
// periodic updates; only when such reports keep arriving for
// dupPersistIntervals routing intervals after the re-announcement does the
// node stop with ErrDuplicateNodeID. A suspicion that falls silent for as
// long expires, so one stray report later starts over.
func (n *Node) duplicateReportLocked(u *wire.RoutingUpdate) {
	now := time.Now()
	window := dupPersistIntervals * n.opts.RouteUpdateInterval
	d := &n.dup
	if d.reannounced.IsZero() || now.Sub(d.lastReport) > window {
		old := n.epoch
		n.epoch = freshEpoch(now)
		d.reannounced, d.lastReport = now, now
		n.log.Warn("mesh: received a report that another node with our ID was on the mesh first; "+
			"re-announcing with a fresh epoch and stopping only if the reports persist",
			"old_epoch", old, "new_epoch", n.epoch, "reporter", u.ForwardingNode, "report_epoch", u.UpdateEpoch)
		n.floodOwnUpdateLocked(0)
		n.nextFlood = now.Add(n.opts.RouteUpdateInterval)
		return
	}
	d.lastReport = now
	if now.Sub(d.reannounced) < window {
		n.log.Debug("mesh: duplicate node ID report persists", "epoch", n.epoch, "since", d.reannounced)
		return
	}
	if d.stopping || n.ctx.Err() != nil {
		return
	}
	d.stopping = true
	n.log.Error("mesh: another node with our ID was on the mesh first and the duplicate reports persist; stopping the node",
		"epoch", n.epoch, "reports_since", d.reannounced)
	// stop takes n.mu; run it outside this critical section.
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.stop(ErrDuplicateNodeID)
	}()
}

// sendKnownUpdatesLocked queues for a new peer the latest routing update
// we hold of every other node, as we flooded it, so that the peer (a
// restarted node, say) can route at once instead of waiting for each
// node's periodic update (docs/protocol.md §5.3). Relaying an update is
// what flooding does anyway; the peer drops those it has seen (UpdateID)
// or that are not newer than what it holds, so nothing circulates. At most
// half of the session's control queue is used: periodic updates bring the
// rest.
func (n *Node) sendKnownUpdatesLocked(to *session) {
	for id, info := range n.known {
		if id == to.remote || info.last == nil {
			continue
		}
		if len(to.ctrl) >= ctrlQueueLen/2 || to.ctrlBytes.Load()+int64(len(info.last)) > ctrlQueueBytes/2 {
			return
		}
		to.enqueueCtrl(info.last)
	}
}
