package mesh

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// session is one backend session running the state machine of docs/protocol.md §5.
type session struct {
	n    *Node
	tr   backends.Session
	kind string
	opts BackendOptions

	ctrl chan []byte // routing updates, ads: never behind data
	data chan []byte
	stop chan struct{} // closed at teardown; ends the writer
	// rejectOnStop makes the writer send a Reject before it exits.
	rejectOnStop atomic.Bool
	// flushOnStop makes the writer send the queued control messages (the
	// last initial connect message) before it exits.
	flushOnStop atomic.Bool
	// wroteFirst is set once the writer has handed the transport its first
	// message (the initial routing update, docs/protocol.md §5.3). Until
	// then data goes through the writer too, which sends control messages
	// first, so a link probe queued straight to the transport cannot
	// overtake the routing update.
	wroteFirst atomic.Bool
	dropped    atomic.Uint64
	// st are the session's counters (stats.go); link is its link record,
	// set when established (under n.mu).
	st   sessionStats
	link *link
	// Bytes queued in ctrl and data; each queue is bounded by these as well
	// as by its length (see ctrlQueueBytes).
	ctrlBytes, dataBytes atomic.Int64

	// Written by the reader goroutine under n.mu; read under n.mu (or by
	// the reader itself).
	remote            string
	cost              float64
	established       bool
	remoteEstablished bool

	// held is the transport's HeldEnqueuer, nil when it has none;
	// buffered its Buffered, nil when it has none.
	held     backends.HeldEnqueuer
	buffered backends.Buffered
	// holding are the next hops that hold messages this session's reader
	// forwarded, until it flushes them (flushHeld). Reader only.
	holding []*session

	// passive sessions send nothing until the peer's first valid routing
	// update (backends.PeerSpeaksFirst); they then answer with the initial
	// connect message only. Until the peer lists us in its own update
	// (confirmed), they are not listed in our updates and get no floods
	// and no advertisements, so an unverified (perhaps spoofed) source
	// cannot draw a stream of replies, nor make us flood the mesh.
	passive bool
}

// confirmed reports whether s takes part in floods and our connection
// list: always for active sessions, and for passive ones once the peer has
// listed us.
func (s *session) confirmed() bool { return !s.passive || s.remoteEstablished }

// errIdle ends a session whose peer sent nothing for the idle timeout.
var errIdle = errors.New("idle timeout")

// errReject wraps a reason for which we send Reject and close.
type errReject struct{ reason string }

func (e errReject) Error() string { return e.reason }

func (n *Node) runSession(tr backends.Session, kind string, opts BackendOptions) {
	s := &session{
		n: n, tr: tr, kind: kind, opts: opts, cost: opts.Cost,
		ctrl: make(chan []byte, ctrlQueueLen),
		data: make(chan []byte, n.opts.SendQueueLen),
		stop: make(chan struct{}),
	}
	s.held, _ = tr.(backends.HeldEnqueuer)
	s.buffered, _ = tr.(backends.Buffered)
	n.mu.Lock()
	if n.ctx.Err() != nil {
		n.mu.Unlock()
		_ = tr.Close()
		return
	}
	n.allSessions[s] = struct{}{}
	if ps, ok := tr.(backends.PeerSpeaksFirst); ok && ps.PeerSpeaksFirst() {
		s.passive = true
	}
	var first []byte
	if !s.passive {
		first, _ = n.ownUpdateLocked(0) // an error is logged; the session then gives up
	}
	n.mu.Unlock()
	log := n.log.With("backend", kind, "remote", tr.RemoteAddr())
	writerDone := make(chan struct{})
	if first != nil {
		// The initial connect message must be the first we write (docs/protocol.md §5.3).
		s.ctrlBytes.Add(int64(len(first)))
		s.ctrl <- first
	}
	go s.writeLoop(writerDone)

	reason := s.readLoop(first != nil)

	n.mu.Lock()
	delete(n.allSessions, s)
	if s.established {
		now := time.Now()
		n.linkDownLocked(s, errors.Is(reason, errIdle), now)
		if n.ctx.Err() == nil {
			n.publishLocked(Event{Kind: EventLinkDown, Time: now, Peer: s.remote, Backend: s.kind, Cost: s.cost,
				RTT: time.Duration(s.st.rtt.Load()), Reason: reason.Error()})
		}
	}
	if s.established && n.sessions[s.remote] == s {
		delete(n.sessions, s.remote)
		n.deleteEdgeLocked(n.id, s.remote)
		n.deleteEdgeLocked(s.remote, n.id)
		if s.confirmed() {
			n.requestFloodLocked()
		}
		n.requestRecomputeLocked()
	}
	n.mu.Unlock()
	var rej errReject
	if errors.As(reason, &rej) {
		s.rejectOnStop.Store(true)
	}
	close(s.stop)
	select {
	case <-writerDone:
	case <-time.After(2 * time.Second):
		// The writer is stuck in Send on a slow peer; closing unblocks it.
	}
	_ = tr.Close()
	<-writerDone
	if n.ctx.Err() == nil {
		log.Info("mesh session ended", "peer", s.remote, "reason", reason)
	}
}

func (s *session) writeLoop(done chan<- struct{}) {
	defer close(done)
	send := func(m []byte) bool {
		if len(m) > backends.MaxMessageSize {
			// Nothing this large may be sent (TCP frames cannot carry it);
			// refuse the message rather than lose the session.
			s.n.log.Debug("mesh session: dropping an oversized message", "remote", s.tr.RemoteAddr(), "bytes", len(m))
			return true
		}
		if err := s.tr.Send(m); err != nil {
			s.n.log.Debug("mesh session send failed", "remote", s.tr.RemoteAddr(), "err", err)
			_ = s.tr.Close() // the reader sees it and tears down
			return false
		}
		s.wroteFirst.Store(true)
		s.sent(m)
		return true
	}
	for {
		var m []byte
		select {
		case <-s.stop:
			if s.rejectOnStop.Load() {
				_ = s.tr.Send(wire.Reject)
			}
			for s.flushOnStop.Load() {
				select {
				case m := <-s.ctrl:
					s.ctrlBytes.Add(-int64(len(m)))
					if len(m) > backends.MaxMessageSize {
						continue
					}
					if s.tr.Send(m) != nil {
						return
					}
					s.sent(m)
				default:
					return
				}
			}
			return
		case m = <-s.ctrl:
			s.ctrlBytes.Add(-int64(len(m)))
		default:
			select {
			case <-s.stop:
				continue
			case m = <-s.ctrl:
				s.ctrlBytes.Add(-int64(len(m)))
			case m = <-s.data:
				s.dataBytes.Add(-int64(len(m)))
			}
		}
		if !send(m) {
			<-s.stop
			return
		}
	}
}

// enqueueCtrl queues a control message; drops it (logged) when the queue
// is full so the router never blocks on a slow peer.
func (s *session) enqueueCtrl(m []byte) {
	if !reserveBytes(&s.ctrlBytes, len(m), ctrlQueueBytes) {
		s.st.ctrlDropped.Add(1)
		s.n.log.Warn("mesh session control queue full (bytes); dropping message", "peer", s.remote, "type", m[0])
		return
	}
	select {
	case s.ctrl <- m:
	default:
		s.ctrlBytes.Add(-int64(len(m)))
		s.st.ctrlDropped.Add(1)
		s.n.log.Warn("mesh session control queue full; dropping message", "peer", s.remote, "type", m[0])
	}
}

// reserveBytes adds n to a queue's byte count unless that passes limit
// while the queue holds something (one message of any size may queue).
func reserveBytes(c *atomic.Int64, n int, limit int64) bool {
	if v := c.Add(int64(n)); v > limit && v != int64(n) {
		c.Add(-int64(n))
		return false
	}
	return true
}

func (s *session) enqueueData(m []byte) bool {
	if !reserveBytes(&s.dataBytes, len(m), dataQueueBytes) {
		if s.dropped.Add(1)%1000 == 1 {
			s.n.log.Warn("mesh session data queue full (bytes); dropping messages", "peer", s.remote, "dropped", s.dropped.Load())
		}
		return false
	}
	select {
	case s.data <- m:
		return true
	default:
		s.dataBytes.Add(-int64(len(m)))
		if s.dropped.Add(1)%1000 == 1 {
			s.n.log.Warn("mesh session data queue full; dropping messages", "peer", s.remote, "dropped", s.dropped.Load())
		}
		return false
	}
}

// hold records that next holds a message this session's reader forwarded.
func (s *session) hold(next *session) {
	if !slices.Contains(s.holding, next) {
		s.holding = append(s.holding, next)
	}
}

// flushHeld has the next hops write what they hold; the reader calls it
// before it could wait for input, and when it ends.
func (s *session) flushHeld() {
	for _, next := range s.holding {
		next.held.Flush()
	}
	clear(s.holding)
	s.holding = s.holding[:0]
}

// readLoop receives until the session must end and returns why.
func (s *session) readLoop(initialSent bool) error {
	defer s.flushHeld()
	n := s.n
	idle := n.opts.MaxIdleTimeout
	lastRecv := time.Now()
	attempts := 0
	if initialSent {
		attempts = 1
	}
	nextInitial := lastRecv.Add(n.opts.InitialConnectPeriod)
	// A passive session waits as long as an active one keeps trying.
	passiveGiveUp := lastRecv.Add(time.Duration(n.opts.InitialConnectAttempts) * n.opts.InitialConnectPeriod)
	for {
		// Upstream gives up right after its 11th initial message (t ≈ 10 s,
		// docs/protocol.md §5.2), not one period later.
		if !s.established && !s.passive && attempts >= n.opts.InitialConnectAttempts {
			s.flushOnStop.Store(true)
			return errors.New("giving up on connection initialization")
		}
		if !s.established && s.passive && !time.Now().Before(passiveGiveUp) {
			return errors.New("giving up on connection initialization: the peer sent no valid first message")
		}
		now := time.Now()
		timeout := idle - now.Sub(lastRecv)
		if !s.established && !s.passive {
			timeout = min(timeout, nextInitial.Sub(now))
		}
		if !s.established && s.passive {
			timeout = min(timeout, passiveGiveUp.Sub(now))
		}
		if timeout <= 0 {
			timeout = time.Millisecond
		}
		msg, err := s.tr.Recv(timeout)
		now = time.Now()
		if err != nil && !errors.Is(err, backends.ErrTimeout) {
			return fmt.Errorf("receive: %w", err)
		}
		if err == nil {
			lastRecv = now
			s.st.msgsIn.Add(1)
			s.st.bytesIn.Add(uint64(len(msg)))
			s.st.lastRecv.Store(now.UnixNano())
			if len(msg) == 0 {
				continue // would crash upstream; never valid (docs/protocol.md §4.1)
			}
			if err := s.handle(msg); err != nil {
				return err
			}
			if len(s.holding) > 0 && (s.buffered == nil || !s.buffered.Buffered()) {
				s.flushHeld()
			}
		}
		if now.Sub(lastRecv) >= idle {
			return fmt.Errorf("no message for %v: %w", idle, errIdle)
		}
		if !s.established && !s.passive && !now.Before(nextInitial) {
			n.mu.Lock()
			m, err := n.ownUpdateLocked(0)
			n.mu.Unlock()
			if err == nil {
				s.enqueueCtrl(m)
			}
			attempts++
			nextInitial = now.Add(n.opts.InitialConnectPeriod)
		}
	}
}

// handle processes one message; a non-nil result ends the session.
func (s *session) handle(msg []byte) error {
	n := s.n
	switch t := wire.Type(msg[0]); t {
	case wire.TypeRoute, wire.TypeServiceAd:
		if len(msg) > maxFloodedMessage {
			// Only a websocket can carry these; we could never flood them
			// on over TCP, so they are refused whole.
			n.mu.Lock()
			n.warnLimitedLocked("msg-size", "mesh session: refusing an oversized routing update or advertisement",
				"peer", s.remote, "type", msg[0], "bytes", len(msg), "limit", maxFloodedMessage)
			n.mu.Unlock()
			return nil
		}
		if t == wire.TypeServiceAd {
			if s.established {
				n.handleAd(msg, s)
			}
			return nil
		}
		n.stats.routeUpdatesReceived.Add(1)
		if s.established && n.seenRelayedUpdate(msg, s) {
			n.stats.routeUpdatesIgnored.Add(1)
			return nil
		}
		u, err := wire.DecodeRoute(msg)
		if err != nil {
			n.log.Debug("mesh session: bad routing update", "peer", s.remote, "err", err)
			return nil
		}
		if !s.established {
			return s.establish(u)
		}
		return s.routeUpdate(u)
	case wire.TypeReject:
		return errors.New("rejected by peer")
	case wire.TypeData:
		if s.established {
			n.handleData(msg, s)
		}
	default:
		if s.established {
			n.log.Warn("mesh session: unknown message type", "peer", s.remote, "type", msg[0])
		}
	}
	return nil
}

// establish runs the PENDING checks of docs/protocol.md §5.3 on the first route.
func (s *session) establish(u *wire.RoutingUpdate) error {
	n := s.n
	rid := u.ForwardingNode
	switch {
	case rid == "":
		return errReject{"peer sent an empty ForwardingNode"}
	case rid == n.id:
		return errReject{"tried to connect using our own node ID"}
	case len(s.opts.AllowedPeers) > 0 && !slices.Contains(s.opts.AllowedPeers, rid):
		return errReject{fmt.Sprintf("node %q is not in allowedpeers", rid)}
	}
	if s.opts.BindPeerToCertificate {
		var ids []string
		if pi, ok := s.tr.(interface{ PeerNodeIDs() []string }); ok {
			ids = pi.PeerNodeIDs()
		}
		if !slices.Contains(ids, rid) {
			return errReject{fmt.Sprintf("node %q is not bound to the peer's certificate (it names %q)", rid, ids)}
		}
	}
	cost := s.opts.Cost
	if c, ok := s.opts.NodeCost[rid]; ok {
		cost = c
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, dup := n.sessions[rid]; dup {
		return errReject{fmt.Sprintf("already connected to node %q", rid)}
	}
	if s.passive {
		// Our first message on this session, queued before the session is
		// visible to floods (we hold n.mu).
		first, err := n.ownUpdateLocked(0)
		if err != nil {
			return err
		}
		s.enqueueCtrl(first)
	}
	s.remote, s.cost, s.established = rid, cost, true
	n.sessions[rid] = s
	n.hashOfLocked(rid)
	n.setEdgeLocked(n.id, rid, cost)
	n.setEdgeLocked(rid, n.id, cost)
	n.requestRecomputeLocked()
	now := time.Now()
	n.linkUpLocked(s, now)
	n.publishLocked(Event{Kind: EventLinkUp, Time: now, Peer: rid, Backend: s.kind, Cost: cost})
	n.probeLocked(s, now)
	if !s.passive {
		n.requestFloodLocked()
		// Improvements: the new peer learns routes and ads at once.
		n.sendKnownUpdatesLocked(s)
		n.advertiseLocked(s)
	}
	n.log.Info("mesh session established", "peer", rid, "backend", s.kind, "cost", cost)
	return nil
}

// routeUpdate runs the ESTABLISHED checks of docs/protocol.md §5.4, then §6.2.
func (s *session) routeUpdate(u *wire.RoutingUpdate) error {
	n := s.n
	if u.ForwardingNode != s.remote {
		return errReject{fmt.Sprintf("remote node ID changed unexpectedly from %q to %q", s.remote, u.ForwardingNode)}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if u.NodeID == s.remote {
		c, listed := u.Connections[n.id]
		switch {
		case !listed && s.remoteEstablished:
			return errReject{"peer no longer lists us"}
		case !listed:
			return nil // a late initial message
		}
		if c != s.cost {
			return errReject{fmt.Sprintf("we disagree about the connection cost: ours %v, theirs %v", s.cost, c)}
		}
		if !s.remoteEstablished {
			s.remoteEstablished = true
			if s.passive {
				// The peer heard our initial message: it now takes part in
				// floods, our connection list and advertisements.
				n.requestFloodLocked()
				n.sendKnownUpdatesLocked(s)
				n.advertiseLocked(s)
				if c, ok := s.tr.(backends.Confirmer); ok {
					c.Confirm()
				}
				n.probeLocked(s, time.Now())
			}
		}
	}
	n.processUpdateLocked(u, s)
	return nil
}
