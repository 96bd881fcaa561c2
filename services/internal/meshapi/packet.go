package meshapi

import (
	"errors"
	"io"
	"sync"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// PacketSocket implements MeshService.
func (s *Server) PacketSocket(gs meshv1.MeshService_PacketSocketServer) error {
	ctx := gs.Context()
	req, err := gs.Recv()
	if err != nil {
		return firstRecvError("bind", err)
	}
	bind := req.GetBind()
	if bind == nil {
		return apierr.InvalidArgument("bind", "the first request must be bind")
	}
	service := bind.GetService()
	if err := checkService("bind.service", service, true); err != nil {
		return err
	}
	var pc mesh.PacketConn
	if bind.GetAdvertise() {
		if service == "" {
			return apierr.InvalidArgument("bind.service", "an advertised socket needs a name")
		}
		pc, err = s.node.ListenPacketAndAdvertise(service, mesh.ServiceAd{ConnType: mesh.ConnTypeDatagram, Tags: bind.GetTags()})
	} else {
		pc, err = s.node.ListenPacket(service)
	}
	if err != nil {
		return bindError("bind.service", service, err)
	}
	var wg sync.WaitGroup
	defer func() {
		_ = pc.Close() // ends the reader
		wg.Wait()
	}()
	local := meshAddr(pc.LocalAddr())
	if err := gs.Send(&meshv1.PacketSocketResponse{Msg: &meshv1.PacketSocketResponse_Bound{Bound: &meshv1.PacketBound{
		Node: local.Node, Service: local.Service,
	}}}); err != nil {
		return err
	}

	// Received datagrams wait in a bounded queue; when the client reads too
	// slowly they are dropped and counted, never blocking the node.
	queue := make(chan *meshv1.PacketSocketResponse, s.opts.PacketQueue)
	wg.Go(func() {
		buf := make([]byte, MaxDatagram)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			addr := meshAddr(from)
			msg := &meshv1.PacketSocketResponse{Msg: &meshv1.PacketSocketResponse_Packet{Packet: &meshv1.Packet{
				FromNode: addr.Node, FromService: addr.Service, Data: append([]byte(nil), buf[:n]...),
			}}}
			select {
			case queue <- msg:
			default:
				s.droppedPackets.Add(1)
				s.log.Debug("meshapi: packet socket client is slow; dropping datagram", "service", local.Service, "from", addr.String())
			}
		}
	})
	// Like bridge's upload: blocked only in Recv, which ends with the call.
	sendErr := make(chan error, 1)
	go func() { sendErr <- s.packetSends(gs, pc) }()

	unreach := pc.Unreachable()
	for {
		var msg *meshv1.PacketSocketResponse
		select {
		case msg = <-queue:
		case u, ok := <-unreach:
			if !ok {
				unreach = nil
				continue
			}
			msg = &meshv1.PacketSocketResponse{Msg: &meshv1.PacketSocketResponse_Unreachable{Unreachable: &meshv1.UnreachableNotice{
				ReportedBy: u.ReportedBy, FromNode: u.FromNode, ToNode: u.ToNode,
				FromService: u.FromService, ToService: u.ToService, Problem: u.Problem,
			}}}
		case err := <-sendErr:
			if err != nil {
				return err
			}
			sendErr = nil // the client half-closed; keep delivering
			continue
		case <-ctx.Done():
			return apierr.ContextEnded(ctx.Err())
		}
		if err := gs.Send(msg); err != nil {
			return err
		}
	}
}

// packetSends forwards the client's send requests until it half-closes.
func (s *Server) packetSends(gs meshv1.MeshService_PacketSocketServer, pc mesh.PacketConn) error {
	for {
		req, err := gs.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		send := req.GetSend()
		if send == nil {
			return apierr.InvalidArgument("msg", "only send may follow bind")
		}
		if send.GetNode() == "" {
			return apierr.InvalidArgument("send.node", "must not be empty")
		}
		if err := checkService("send.service", send.GetService(), false); err != nil {
			return err
		}
		if len(send.GetData()) > MaxDatagram {
			return apierr.TooLarge("send.data", len(send.GetData()), MaxDatagram)
		}
		to := mesh.Addr{Node: s.localNode(send.GetNode()), Service: send.GetService()}
		if _, err := pc.WriteTo(send.GetData(), to); err != nil {
			if errors.Is(err, mesh.ErrPayloadTooLarge) {
				return apierr.TooLarge("send.data", len(send.GetData()), MaxDatagram)
			}
			return meshError(to.Node, err)
		}
	}
}
