package meshapi

import (
	"context"
	"fmt"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
)

// Ping implements MeshService.
func (s *Server) Ping(ctx context.Context, req *meshv1.PingRequest) (*meshv1.PingResponse, error) {
	if req.GetNode() == "" {
		return nil, apierr.InvalidArgument("node", "must not be empty")
	}
	hops := uint32(maxHops)
	if req.HopsToLive != nil {
		hops = req.GetHopsToLive()
		if hops > maxHops {
			return nil, apierr.InvalidArgument("hops_to_live", fmt.Sprintf("%d exceeds the mesh maximum of %d", hops, maxHops))
		}
	}
	timeout := DefaultPingTimeout
	if d := req.GetTimeout(); d != nil {
		if err := d.CheckValid(); err != nil {
			return nil, apierr.InvalidArgument("timeout", err.Error())
		}
		switch v := d.AsDuration(); {
		case v < 0 || v > MaxPingTimeout:
			return nil, apierr.InvalidArgument("timeout", fmt.Sprintf("%s is outside 0..%s", v, MaxPingTimeout))
		case v > 0:
			timeout = v
		}
	}
	node := s.localNode(req.GetNode())
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := s.node.PingHops(pctx, node, byte(hops))
	if err != nil {
		if ctx.Err() != nil {
			return nil, meshError(node, ctx.Err())
		}
		return nil, meshError(node, err)
	}
	return &meshv1.PingResponse{Result: &meshv1.PingResult{FromNode: res.From, Rtt: durationProto(res.RTT)}}, nil
}

// Traceroute implements MeshService.
func (s *Server) Traceroute(req *meshv1.TracerouteRequest, gs meshv1.MeshService_TracerouteServer) error {
	if req.GetNode() == "" {
		return apierr.InvalidArgument("node", "must not be empty")
	}
	ctx, cancel := context.WithCancel(gs.Context())
	defer cancel()
	hops := s.node.Traceroute(ctx, s.localNode(req.GetNode()))
	// Drain on every return path so the node's goroutine never blocks
	// (it also watches ctx, which cancel ends).
	defer func() {
		cancel()
		for range hops {
		}
	}()
	for h := range hops {
		hop := &meshv1.TracerouteHop{Index: uint32(h.Hop), FromNode: h.From, Rtt: durationProto(h.RTT)}
		if h.Err != nil {
			hop.Error = h.Err.Error()
		}
		if err := gs.Send(&meshv1.TracerouteResponse{Hop: hop}); err != nil {
			return err
		}
	}
	if err := gs.Context().Err(); err != nil {
		return meshError(req.GetNode(), err)
	}
	return nil
}
