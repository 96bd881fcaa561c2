package mesh

import (
	"errors"
	"fmt"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/mesh/firewall"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// Reserved services handled by the node itself (docs/protocol.md §2.1).
const (
	servicePing    = "ping"
	serviceUnreach = "unreach"
)

// packet is a data message with its node names resolved.
type packet struct {
	fromNode, toNode, fromService, toService string
	hops                                     byte
	payload                                  []byte
	// raw is the whole received message when it belongs to the node
	// (payload aliases it): it is forwarded with its header patched in
	// place and delivered without a copy. Nil for locally made packets,
	// whose payload is the caller's buffer.
	raw []byte
	// wait, when set, makes a full first-hop queue wait for room until it
	// is closed, instead of dropping: set for datagrams a local socket
	// sends (never on a session's reader, which must not block).
	wait <-chan struct{}
	// via is the session whose reader runs the pipeline (nil for local
	// sends): the next hop then holds the message until that reader has
	// nothing more at hand (session.hold).
	via *session
}

// errQueueFull marks a data message dropped at a full session queue.
var errQueueFull = errors.New("send queue full")

// handleData decodes a data message that via received and runs the pipeline.
func (n *Node) handleData(msg []byte, via *session) {
	h, payload, err := wire.DecodeData(msg)
	if err != nil {
		n.log.Debug("mesh: bad data message", "err", err)
		return
	}
	n.mu.Lock()
	from, okFrom := n.names[h.FromNode]
	to, okTo := n.names[h.ToNode]
	n.mu.Unlock()
	if !okFrom || !okTo {
		n.stats.drop(DropUnknownNode)
		// Upstream drops these silently too ("hash not found").
		n.log.Debug("mesh: data message with unknown node hash dropped", "from", h.FromNode, "to", h.ToNode)
		return
	}
	err = n.pipeline(packet{fromNode: from, toNode: to, fromService: h.FromService, toService: h.ToService,
		hops: h.HopsToLive, payload: payload, raw: msg, via: via})
	if err != nil {
		n.log.Debug("mesh: data message not delivered", "from", from, "to", to, "err", err)
	}
}

// pipeline is the local message pipeline of docs/protocol.md §8.2, run for originated,
// local and transit messages alike.
func (n *Node) pipeline(p packet) error {
	switch n.fw.Evaluate(firewall.Message{FromNode: p.fromNode, ToNode: p.toNode, FromService: p.fromService, ToService: p.toService}) {
	case firewall.Drop:
		n.stats.drop(DropFirewallDrop)
		return nil
	case firewall.Reject:
		n.stats.drop(DropFirewallReject)
		if p.fromService != serviceUnreach {
			n.sendUnreachable(p, ProblemBlockedByFirewall)
		}
		return nil
	}
	if p.toNode == n.id {
		return n.deliverLocal(p)
	}
	if p.hops == 0 {
		n.stats.drop(DropHopLimit)
		if p.fromService != serviceUnreach {
			n.sendUnreachable(p, ProblemExpired)
		}
		return nil
	}
	if len(p.raw) > backends.MaxMessageSize {
		// Received over a websocket; no TCP frame could carry it on.
		n.stats.drop(DropTooLarge)
		return fmt.Errorf("forward to %q: %d-byte message: %w", p.toNode, len(p.raw), backends.ErrMessageTooLarge)
	}
	n.mu.Lock()
	hop, routed := n.routes[p.toNode]
	s := n.sessions[hop]
	fromHash, toHash := n.hashOfLocked(p.fromNode), n.hashOfLocked(p.toNode)
	n.mu.Unlock()
	if !routed || s == nil {
		n.stats.drop(DropNoRoute)
	}
	if !routed {
		return fmt.Errorf("forward to %q: %w", p.toNode, ErrNoRoute)
	}
	if s == nil {
		return fmt.Errorf("forward to %q: next hop %q has no session: %w", p.toNode, hop, ErrNoRoute)
	}
	var msg []byte
	if p.raw != nil {
		// The bytes a re-encode would produce: the hashes map back to the
		// same names, service fields are NUL-padded both ways, and the
		// reserved bytes are written as zero.
		msg = p.raw
		msg[1] = p.hops - 1
		msg[2], msg[3] = 0, 0
	} else {
		var (
			buf []byte // nil: AppendData allocates
			err error
		)
		if wire.DataHeaderLen+len(p.payload) <= backends.PooledMessageCap {
			buf = backends.MessageBuffer()
		}
		msg, err = wire.AppendData(buf, wire.DataHeader{
			HopsToLive: p.hops - 1, FromNode: fromHash, ToNode: toHash,
			FromService: p.fromService, ToService: p.toService,
		}, p.payload)
		if err != nil {
			return fmt.Errorf("forward to %q: %w", p.toNode, err)
		}
	}
	if err := s.sendData(msg, p.wait, p.via); err != nil {
		if errors.Is(err, errQueueFull) {
			n.stats.drop(DropQueueFull)
		}
		return fmt.Errorf("forward to %q via %q: %w", p.toNode, hop, err)
	}
	if p.fromNode == n.id {
		n.stats.datagramsOriginated.Add(1)
	} else {
		n.stats.datagramsForwarded.Add(1)
	}
	return nil
}

// sendData hands a data message (which the session then owns) to the
// backend's own queue when it has one and the session's first message is
// out, else to the session writer. With a wait channel it waits for room
// (see packet.wait); with via, the backend may hold it until via's reader
// flushes (see packet.via).
func (s *session) sendData(msg []byte, wait <-chan struct{}, via *session) error {
	if q, ok := s.tr.(backends.Enqueuer); ok && s.wroteFirst.Load() {
		var (
			queued bool
			err    error
		)
		switch {
		case wait != nil:
			queued, err = q.EnqueueWait(msg, wait)
		case via != nil && s.held != nil:
			if queued, err = s.held.EnqueueHeld(msg); queued {
				via.hold(s)
			}
		default:
			queued, err = q.Enqueue(msg)
		}
		switch {
		case errors.Is(err, backends.ErrNotQueued):
		case err != nil:
			return err // the session is ending; its reader tears it down
		case !queued:
			if wait == nil { // a closed wait is the socket's own end, not a drop
				s.countDrop()
			}
			return errQueueFull
		default:
			s.sent(msg)
			return nil
		}
	}
	if wait != nil {
		// Locally originated: counted, but only the queue length makes it
		// wait (the local sender is bounded by its socket).
		s.dataBytes.Add(int64(len(msg)))
		select {
		case s.data <- msg:
			return nil
		case <-wait:
		case <-s.stop:
		}
		s.dataBytes.Add(-int64(len(msg)))
		return errQueueFull
	}
	if !s.enqueueData(msg) {
		return errQueueFull
	}
	return nil
}

func (n *Node) deliverLocal(p packet) error {
	switch p.toService {
	case n.probeService:
		n.stats.datagramsDelivered.Add(1)
		n.probeReply(p.fromNode)
		return nil
	case servicePing:
		n.stats.datagramsDelivered.Add(1)
		return n.pipeline(packet{fromNode: n.id, toNode: p.fromNode, fromService: servicePing,
			toService: p.fromService, hops: DefaultHopsToLive, via: p.via})
	case serviceUnreach:
		n.stats.datagramsDelivered.Add(1)
		u, err := wire.DecodeUnreachable(p.payload)
		if err != nil {
			return fmt.Errorf("unreachable message from %q: %w", p.fromNode, err)
		}
		if u.FromNode == n.id {
			n.notifyUnreachable(Unreachable{ReportedBy: p.fromNode, FromNode: u.FromNode, ToNode: u.ToNode,
				FromService: u.FromService, ToService: u.ToService, Problem: u.Problem})
		}
		return nil
	}
	n.mu.Lock()
	sock := n.sockets[p.toService]
	n.mu.Unlock()
	if sock != nil && sock.deliver(Addr{Node: p.fromNode, Service: p.fromService}, p.payload, p.raw) {
		return nil
	}
	n.stats.drop(DropUnknownService)
	if p.fromNode == n.id {
		// Local error, nothing on the wire; tell the sending socket so a
		// stream dialer fails fast (docs/protocol.md §10.5).
		n.notifyUnreachable(Unreachable{ReportedBy: n.id, FromNode: p.fromNode, ToNode: p.toNode,
			FromService: p.fromService, ToService: p.toService, Problem: ProblemServiceUnknown})
		return fmt.Errorf("deliver to local service %q: %s", p.toService, ProblemServiceUnknown)
	}
	n.sendUnreachable(p, ProblemServiceUnknown)
	return nil
}

// sendUnreachable reports a failed message to its source (docs/protocol.md §8.3).
func (n *Node) sendUnreachable(p packet, problem string) {
	payload, err := wire.EncodeUnreachable(&wire.UnreachablePayload{FromNode: p.fromNode, ToNode: p.toNode,
		FromService: p.fromService, ToService: p.toService, Problem: problem})
	if err != nil {
		n.log.Warn("mesh: cannot encode unreachable", "err", err)
		return
	}
	err = n.pipeline(packet{fromNode: n.id, toNode: p.fromNode, fromService: serviceUnreach,
		toService: serviceUnreach, hops: DefaultHopsToLive, payload: payload})
	if err != nil {
		n.log.Debug("mesh: unreachable not sent", "to", p.fromNode, "err", err)
	}
}

func (n *Node) notifyUnreachable(u Unreachable) {
	n.mu.Lock()
	sock := n.sockets[u.FromService]
	n.mu.Unlock()
	if sock != nil {
		sock.notify(u)
	}
}

// countDrop counts a data message dropped at a full backend queue and
// logs every thousandth, like enqueueData.
func (s *session) countDrop() {
	if d := s.dropped.Add(1); d%1000 == 1 {
		s.n.log.Warn("mesh session data queue full; dropping messages", "peer", s.remote, "dropped", d)
	}
}
