// Package apitest builds in-process meshes (real services/mesh nodes over
// the memory backend) with a MeshService server on a bufconn listener, for
// the tests of meshapi and its clients.
package apitest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/meshapi"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/backends/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// QuietLogger discards everything.
var QuietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// Mesh is a chain of nodes: ids[0] - ids[1] - ... over one memory network.
type Mesh struct {
	Nodes map[string]*mesh.Node
}

// NewMesh starts the nodes, links them in a chain and waits until every
// node has a route to every other one. Cleanup shuts them down.
func NewMesh(tb testing.TB, ids ...string) *Mesh {
	tb.Helper()
	network := memory.NewNetwork(1024)
	m := &Mesh{Nodes: make(map[string]*mesh.Node, len(ids))}
	tb.Cleanup(func() {
		for _, n := range m.Nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if err := n.Shutdown(ctx); err != nil {
				tb.Errorf("shutdown %s: %v", n.NodeID(), err)
			}
			cancel()
		}
	})
	for _, id := range ids {
		n, err := mesh.New(mesh.Options{
			NodeID: id, Logger: QuietLogger,
			RouteUpdateInterval: 500 * time.Millisecond, RouteRequestDelay: 2 * time.Millisecond,
			AdInterval: time.Second, AdRequestDelay: 5 * time.Millisecond,
			InitialConnectPeriod: 50 * time.Millisecond, PingTimeout: 5 * time.Second,
		})
		if err != nil {
			tb.Fatal(err)
		}
		m.Nodes[id] = n
	}
	for i := 1; i < len(ids); i++ {
		a, b := ids[i-1], ids[i]
		name := a + "->" + b
		if err := m.Nodes[a].AddBackend(network.Listener(name), mesh.BackendOptions{Cost: 1}); err != nil {
			tb.Fatal(err)
		}
		if err := m.Nodes[b].AddBackend(network.Dialer(name, memory.DialerOptions{Backoff: 10 * time.Millisecond}),
			mesh.BackendOptions{Cost: 1}); err != nil {
			tb.Fatal(err)
		}
	}
	Eventually(tb, 20*time.Second, func() bool {
		for _, n := range m.Nodes {
			if len(n.Status().RoutingTable) != len(ids)-1 {
				return false
			}
		}
		return true
	}, "mesh routes converge")
	return m
}

// Serve runs a MeshService server for opts (Logger defaults to quiet) on a
// bufconn listener and returns a client connection to it. Cleanup closes
// the connection and stops the server.
func Serve(tb testing.TB, opts meshapi.Options) (*meshapi.Server, *grpc.ClientConn) {
	tb.Helper()
	srv, cc, _ := ServeCalls(tb, opts)
	return srv, cc
}

// Calls counts the streaming handlers running on a server of ServeCalls,
// so a test can see that a call ended on the server side too (stopping the
// server at cleanup would hide a handler that never returns).
type Calls struct{ n atomic.Int64 }

// Running is the number of streaming handlers that have not returned.
func (c *Calls) Running() int64 { return c.n.Load() }

// ServeCalls is Serve that also counts running streaming handlers.
func ServeCalls(tb testing.TB, opts meshapi.Options) (*meshapi.Server, *grpc.ClientConn, *Calls) {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = QuietLogger
	}
	srv, err := meshapi.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	calls := &Calls{}
	gs := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		calls.n.Add(1)
		defer calls.n.Add(-1)
		return h(srv, ss)
	}))
	meshv1.RegisterMeshServiceServer(gs, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	cc, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = cc.Close()
		gs.Stop()
		<-done
	})
	return srv, cc, calls
}

// Eventually polls cond until it holds; bound is a failure bound only.
func Eventually(tb testing.TB, bound time.Duration, cond func() bool, what string) {
	tb.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, bound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
