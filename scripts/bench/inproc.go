package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"time"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/proxy"
)

// inprocStream runs the 2-hop tcp-server → tcp-client chain with three
// mesh nodes in this process over real TCP backends (default options), so
// that one CPU profile (written to profile, if set) covers every hop.
func inprocStream(ctx context.Context, o options, s *sink, profile string) (int64, time.Duration, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var nodes []*mesh.Node
	defer func() {
		for _, n := range nodes {
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			_ = n.Shutdown(sctx)
			scancel()
		}
	}()
	for _, id := range []string{"p1", "p2", "p3"} {
		n, err := mesh.New(mesh.Options{NodeID: id, Logger: quiet})
		if err != nil {
			return 0, 0, fmt.Errorf("node %s: %w", id, err)
		}
		nodes = append(nodes, n)
	}
	for i := range 2 {
		ln, err := backends.NewTCPListener(backends.TCPListenerOptions{Address: "127.0.0.1:0", Logger: quiet})
		if err != nil {
			return 0, 0, fmt.Errorf("listener: %w", err)
		}
		if err := nodes[i].AddBackend(ln, mesh.BackendOptions{Cost: 1}); err != nil {
			return 0, 0, fmt.Errorf("add listener: %w", err)
		}
		d, err := backends.NewTCPDialer(backends.TCPDialerOptions{Address: ln.Addr().String(), Redial: true, Logger: quiet})
		if err != nil {
			return 0, 0, fmt.Errorf("dialer: %w", err)
		}
		if err := nodes[i+1].AddBackend(d, mesh.BackendOptions{Cost: 1}); err != nil {
			return 0, 0, fmt.Errorf("add dialer: %w", err)
		}
	}
	if err := waitFor(ctx, "in-process routes", nil, func(context.Context) bool {
		return nodes[0].Status().RoutingTable["p3"] != "" && nodes[2].Status().RoutingTable["p1"] != ""
	}); err != nil {
		return 0, 0, err
	}
	cl, err := proxy.NewTCPClient(nodes[2], nil, config.TCPClient{Service: "sink", Address: s.addr()}, proxy.Options{Logger: quiet})
	if err != nil {
		return 0, 0, fmt.Errorf("tcp-client: %w", err)
	}
	stopCl, err := cl.Start(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("tcp-client start: %w", err)
	}
	defer stopCl()
	srv, err := proxy.NewTCPServer(nodes[0], nil, config.TCPServer{Port: 0, BindAddr: "127.0.0.1", RemoteNode: "p3", RemoteService: "sink"},
		proxy.Options{Logger: quiet})
	if err != nil {
		return 0, 0, fmt.Errorf("tcp-server: %w", err)
	}
	stopSrv, err := srv.Start(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("tcp-server start: %w", err)
	}
	defer stopSrv()
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return 0, 0, fmt.Errorf("profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, 0, fmt.Errorf("profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	return tcpTransfer(ctx, s, srv.Addr().String(), o.streamBytes, o.streamDur)
}
