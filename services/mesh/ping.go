package mesh

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrPingTimeout is the error of a ping that got no answer in time; its
// text is upstream's.
var ErrPingTimeout = errors.New("timeout")

// UnreachableError is a ping failure reported by an unreachable message;
// Error returns the Problem string, as upstream reports it.
type UnreachableError struct{ Unreachable }

func (e *UnreachableError) Error() string { return e.Problem }

// PingResult is a ping reply (or the node that reported its failure).
type PingResult struct {
	From string        // responder, or the node that sent the unreachable
	RTT  time.Duration // round-trip time
}

// Ping sends a ping to node with HopsToLive 30 (docs/protocol.md §8.4).
func (n *Node) Ping(ctx context.Context, node string) (PingResult, error) {
	return n.PingHops(ctx, node, DefaultHopsToLive)
}

// PingHops pings with the given HopsToLive. Failures carry a PingResult
// whose From is the reporting node (UnreachableError) or empty.
func (n *Node) PingHops(ctx context.Context, node string, hops byte) (PingResult, error) {
	sock, err := n.listen("", nil)
	if err != nil {
		return PingResult{}, fmt.Errorf("ping %q: %w", node, err)
	}
	defer sock.closeLocal(false)
	sock.SetHopsToLive(hops)
	timer := time.NewTimer(n.opts.PingTimeout)
	defer timer.Stop()
	start := time.Now()
	if err := sock.send(nil, Addr{Node: node, Service: servicePing}); err != nil {
		if errors.Is(err, ErrNoRoute) {
			// Upstream fails at once, attributed to the local node, with
			// exactly this text (receptorctl prints it).
			return PingResult{From: n.id, RTT: time.Since(start)}, ErrNoRoute
		}
		n.log.Debug("mesh: ping not sent", "to", node, "err", err)
	}
	select {
	case d := <-sock.recv:
		return PingResult{From: d.from.Node, RTT: time.Since(start)}, nil
	case u := <-sock.unreach:
		return PingResult{From: u.ReportedBy, RTT: time.Since(start)}, &UnreachableError{u}
	case <-timer.C:
		return PingResult{RTT: time.Since(start)}, ErrPingTimeout
	case <-ctx.Done():
		return PingResult{}, fmt.Errorf("ping %q: %w", node, ctx.Err())
	case <-n.ctx.Done():
		return PingResult{}, fmt.Errorf("ping %q: %w", node, ErrClosed)
	}
}

// TracerouteHop is one line of a traceroute.
type TracerouteHop struct {
	Hop  int
	From string
	RTT  time.Duration
	Err  error // nil for an expired probe or the final reply
}

// Traceroute pings node with HopsToLive 0, 1, … 30 and sends one hop per
// probe on the returned channel, which is closed after the first reply,
// the first error other than "message expired", or when ctx ends.
func (n *Node) Traceroute(ctx context.Context, node string) <-chan TracerouteHop {
	out := make(chan TracerouteHop)
	if n.ctx.Err() != nil {
		close(out)
		return out
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(out)
		for h := 0; h <= DefaultHopsToLive; h++ {
			res, err := n.PingHops(ctx, node, byte(h))
			var ue *UnreachableError
			final := err == nil
			if errors.As(err, &ue) && ue.Problem == ProblemExpired {
				err = nil
			}
			select {
			case out <- TracerouteHop{Hop: h, From: res.From, RTT: res.RTT, Err: err}:
			case <-ctx.Done():
				return
			case <-n.ctx.Done():
				return
			}
			if err != nil || final {
				return
			}
		}
	}()
	return out
}
