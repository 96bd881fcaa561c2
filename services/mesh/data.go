package mesh

import (
	"fmt"

	"github.com/receptor-mesh/receptor/services/mesh/firewall"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// Reserved services handled by the node itself (spec §4.1).
const (
	servicePing    = "ping"
	serviceUnreach = "unreach"
)

// packet is a data message with its node names resolved.
type packet struct {
	fromNode, toNode, fromService, toService string
	hops                                     byte
	payload                                  []byte
}

// handleData decodes a received data message and runs the pipeline.
func (n *Node) handleData(msg []byte) {
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
		// Upstream drops these silently too ("hash not found").
		n.log.Debug("mesh: data message with unknown node hash dropped", "from", h.FromNode, "to", h.ToNode)
		return
	}
	err = n.pipeline(packet{fromNode: from, toNode: to, fromService: h.FromService, toService: h.ToService,
		hops: h.HopsToLive, payload: payload})
	if err != nil {
		n.log.Debug("mesh: data message not delivered", "from", from, "to", to, "err", err)
	}
}

// pipeline is the local message pipeline of spec §5.3, run for originated,
// local and transit messages alike.
func (n *Node) pipeline(p packet) error {
	switch n.fw.Evaluate(firewall.Message{FromNode: p.fromNode, ToNode: p.toNode, FromService: p.fromService, ToService: p.toService}) {
	case firewall.Drop:
		return nil
	case firewall.Reject:
		if p.fromService != serviceUnreach {
			n.sendUnreachable(p, ProblemBlockedByFirewall)
		}
		return nil
	}
	if p.toNode == n.id {
		return n.deliverLocal(p)
	}
	if p.hops == 0 {
		if p.fromService != serviceUnreach {
			n.sendUnreachable(p, ProblemExpired)
		}
		return nil
	}
	n.mu.Lock()
	hop, routed := n.routes[p.toNode]
	s := n.sessions[hop]
	fromHash, toHash := n.hashOfLocked(p.fromNode), n.hashOfLocked(p.toNode)
	n.mu.Unlock()
	if !routed {
		return fmt.Errorf("forward to %q: %w", p.toNode, ErrNoRoute)
	}
	if s == nil {
		return fmt.Errorf("forward to %q: next hop %q has no session: %w", p.toNode, hop, ErrNoRoute)
	}
	msg, err := wire.AppendData(nil, wire.DataHeader{
		HopsToLive: p.hops - 1, FromNode: fromHash, ToNode: toHash,
		FromService: p.fromService, ToService: p.toService,
	}, p.payload)
	if err != nil {
		return fmt.Errorf("forward to %q: %w", p.toNode, err)
	}
	if !s.enqueueData(msg) {
		return fmt.Errorf("forward to %q via %q: send queue full", p.toNode, hop)
	}
	return nil
}

func (n *Node) deliverLocal(p packet) error {
	switch p.toService {
	case servicePing:
		return n.pipeline(packet{fromNode: n.id, toNode: p.fromNode, fromService: servicePing,
			toService: p.fromService, hops: DefaultHopsToLive})
	case serviceUnreach:
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
	if sock != nil && sock.deliver(Addr{Node: p.fromNode, Service: p.fromService}, p.payload) {
		return nil
	}
	if p.fromNode == n.id {
		// Local error, nothing on the wire; tell the sending socket so a
		// stream dialer fails fast (spec §16.6).
		n.notifyUnreachable(Unreachable{ReportedBy: n.id, FromNode: p.fromNode, ToNode: p.toNode,
			FromService: p.fromService, ToService: p.toService, Problem: ProblemServiceUnknown})
		return fmt.Errorf("deliver to local service %q: %s", p.toService, ProblemServiceUnknown)
	}
	n.sendUnreachable(p, ProblemServiceUnknown)
	return nil
}

// sendUnreachable reports a failed message to its source (spec §11).
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
