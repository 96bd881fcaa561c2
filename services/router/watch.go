package router

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/meshapi"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// watchBuffer bounds the events held for one watcher that reads slowly;
// past it the watch ends with RESOURCE_EXHAUSTED.
const watchBuffer = 1024

// WatchMesh streams the node's snapshot, then its mesh events (the node's
// one event bus, mesh.Node.Subscribe). The subscription's channel is the
// watcher's bounded buffer: the node drops a subscriber that lets it fill
// and never waits for one.
func (c *controlAPI) WatchMesh(_ *controlv1.WatchMeshRequest, stream grpc.ServerStreamingServer[controlv1.WatchMeshResponse]) error {
	ctx := stream.Context()
	snap, sub := c.node.Subscribe(watchBuffer)
	defer sub.Close()
	first := &controlv1.MeshSnapshot{Status: meshapi.StatusProto(snap.Status)}
	for _, l := range snap.Links {
		first.Links = append(first.Links, meshapi.LinkProto(l))
	}
	if err := stream.Send(&controlv1.WatchMeshResponse{Snapshot: first}); err != nil {
		return err
	}
	for {
		select {
		case ev, ok := <-sub.C:
			if !ok {
				return watchEnded(sub.Err())
			}
			if err := stream.Send(&controlv1.WatchMeshResponse{Event: meshEventProto(ev)}); err != nil {
				return err
			}
			if sub.Dropped() {
				// Do not drain what was buffered: the reader is behind,
				// and the sooner it knows, the sooner it resubscribes.
				return watchEnded(mesh.ErrSlowSubscriber)
			}
		case <-ctx.Done():
			return apierr.ContextEnded(ctx.Err())
		}
	}
}

// watchEnded is the status of a watch whose source ended it.
func watchEnded(err error) error {
	switch {
	case errors.Is(err, mesh.ErrSlowSubscriber):
		return apierr.WatcherTooSlow(watchBuffer)
	case errors.Is(err, mesh.ErrClosed):
		return apierr.ServerStopping()
	}
	return nil
}

var meshEventKinds = map[mesh.EventKind]controlv1.MeshEventKind{
	mesh.EventNodeAppeared:           controlv1.MeshEventKind_MESH_EVENT_KIND_NODE_APPEARED,
	mesh.EventNodeLeft:               controlv1.MeshEventKind_MESH_EVENT_KIND_NODE_LEFT,
	mesh.EventLinkUp:                 controlv1.MeshEventKind_MESH_EVENT_KIND_LINK_UP,
	mesh.EventLinkDown:               controlv1.MeshEventKind_MESH_EVENT_KIND_LINK_DOWN,
	mesh.EventLinkRTT:                controlv1.MeshEventKind_MESH_EVENT_KIND_LINK_RTT,
	mesh.EventRouteChanged:           controlv1.MeshEventKind_MESH_EVENT_KIND_ROUTE_CHANGED,
	mesh.EventAdvertisement:          controlv1.MeshEventKind_MESH_EVENT_KIND_ADVERTISEMENT,
	mesh.EventAdvertisementCancelled: controlv1.MeshEventKind_MESH_EVENT_KIND_ADVERTISEMENT_CANCELLED,
}

func meshEventProto(ev mesh.Event) *controlv1.MeshEvent {
	out := &controlv1.MeshEvent{
		Kind: meshEventKinds[ev.Kind], Time: timestamppb.New(ev.Time), NodeId: ev.Node,
		Peer: ev.Peer, BackendKind: ev.Backend, Cost: ev.Cost, Reason: ev.Reason,
		NextHop: ev.NextHop, PreviousNextHop: ev.OldNextHop,
	}
	if ev.RTT > 0 {
		out.Rtt = durationpb.New(ev.RTT)
	}
	if ev.Advertisement != nil {
		out.Advertisement = meshapi.AdProto(*ev.Advertisement)
	}
	return out
}

// WatchWork relays the work agent's watch of all units. A reader
// goroutine moves the agent's events into a bounded buffer; when the
// client reads too slowly for it, the agent's stream is cancelled and the
// watch ends with RESOURCE_EXHAUSTED after the event being sent.
func (c *controlAPI) WatchWork(_ *controlv1.WatchWorkRequest, stream grpc.ServerStreamingServer[controlv1.WatchWorkResponse]) error {
	work, err := c.workClient()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	src, err := work.WatchUnitStatus(ctx, &workv1.WatchUnitStatusRequest{AllUnits: true})
	if err != nil {
		return err
	}
	buf := make(chan *workv1.WatchUnitStatusResponse, watchBuffer)
	var (
		wg       sync.WaitGroup
		overflow atomic.Bool
		srcErr   error // read once buf is closed
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(buf)
		for {
			m, err := src.Recv()
			if err != nil {
				if err != io.EOF {
					srcErr = err
				}
				return
			}
			select {
			case buf <- m:
			default:
				overflow.Store(true)
				cancel()
				return
			}
		}
	}()
	defer wg.Wait()
	for m := range buf {
		out := &controlv1.WatchWorkResponse{Kind: m.GetKind(), UnitId: m.GetUnitId(), Status: m.GetStatus(), Time: m.GetTime()}
		if err := stream.Send(out); err != nil {
			cancel()
			return err
		}
		if overflow.Load() {
			// Do not drain what was buffered: the reader is behind.
			return apierr.WatcherTooSlow(watchBuffer)
		}
	}
	// buf is closed: the reader has ended and its variables are settled.
	switch {
	case overflow.Load():
		return apierr.WatcherTooSlow(watchBuffer)
	case stream.Context().Err() != nil:
		return apierr.ContextEnded(stream.Context().Err())
	case srcErr != nil:
		return srcErr
	}
	return apierr.WorkAgentClosing()
}
