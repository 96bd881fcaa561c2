package router

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// TestWatchMeshSlowReader: a WatchMesh client that stops reading while the
// node produces far more events than the watcher's buffer holds does not
// slow the node or grow its memory without bound: other calls keep
// working, and once the client reads again it gets what was already in
// flight and then RESOURCE_EXHAUSTED (the buffered rest is not sent: a
// reader that far behind should start again from a fresh snapshot).
func TestWatchMeshSlowReader(t *testing.T) {
	a := startNode(t, nodeSpec{id: "a"})
	ctx := testCtx(t)

	// The smallest flow-control windows gRPC allows, so that the server's
	// Send blocks soon after the client stops reading.
	conn, err := grpcserve.Dial("unix://"+a.apiSock, nil,
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	w, err := controlv1.NewControlServiceClient(conn).WatchMesh(ctx, &controlv1.WatchMeshRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := w.Recv()
	if err != nil || first.GetSnapshot() == nil {
		t.Fatalf("first response %v, %v; want the snapshot", first, err)
	}

	// Each advertised service is two events: its advertisement (stored
	// when the node's coalesced advertising run sends it) and its
	// cancellation on close. Produce several times the buffer while the
	// client does not read.
	const binds = 4 * watchBuffer
	node := a.r.Node()
	// A second, node-level subscription large enough for everything shows
	// when the events have happened: GetStatus lists a local service as
	// soon as it is bound, before the advertising run stores it.
	_, seen := node.Subscribe(4 * binds)
	defer seen.Close()
	waitEvents := func(kind mesh.EventKind, want int) {
		t.Helper()
		n := 0
		timeout := time.After(bound)
		for n < want {
			select {
			case ev, ok := <-seen.C:
				if !ok {
					t.Fatalf("the counting subscription ended: %v", seen.Err())
				}
				if ev.Kind == kind {
					n++
				}
			case <-timeout:
				t.Fatalf("%d of %d %v events", n, want, kind)
			}
		}
	}
	var socks []mesh.PacketConn
	for i := range binds {
		pc, err := node.ListenPacketAndAdvertise(fmt.Sprintf("f%d", i), mesh.ServiceAd{ConnType: mesh.ConnTypeDatagram})
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, pc)
	}
	waitEvents(mesh.EventAdvertisement, binds)
	for _, pc := range socks {
		if err := pc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitEvents(mesh.EventAdvertisementCancelled, binds)
	// The node is unaffected while the watcher is stuck.
	for range 3 {
		if _, err := a.control.GetStatus(ctx, &controlv1.GetStatusRequest{}); err != nil {
			t.Fatalf("GetStatus while a watcher is stuck: %v", err)
		}
	}

	got := 0
	deadline := time.Now().Add(bound)
	for {
		_, err := w.Recv()
		if err == nil {
			got++
			if time.Now().After(deadline) {
				t.Fatalf("still receiving after %d events; want RESOURCE_EXHAUSTED", got)
			}
			continue
		}
		if errors.Is(err, io.EOF) {
			t.Fatalf("the watch ended cleanly after %d events; want RESOURCE_EXHAUSTED", got)
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("the watch ended with %v after %d events; want RESOURCE_EXHAUSTED", err, got)
		}
		break
	}
	if got >= 2*binds {
		t.Errorf("received all %d events; the slow watcher was not cut off", got)
	}
	t.Logf("a watcher stuck through %d events received %d, then RESOURCE_EXHAUSTED", 2*binds, got)

	// A new watch starts again from a snapshot.
	w2, err := controlv1.NewControlServiceClient(conn).WatchMesh(ctx, &controlv1.WatchMeshRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := w2.Recv(); err != nil || r.GetSnapshot() == nil {
		t.Fatalf("a new watch after the cut-off: %v, %v; want a snapshot", r, err)
	}
}
