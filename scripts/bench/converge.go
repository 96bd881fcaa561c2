package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/backends/memory"
	"github.com/receptor-mesh/receptor/services/mesh/routing"
)

// convergence builds k in-process nodes with the default (upstream) timers
// on an in-memory network, links them in a ring with a chord from every
// fifth node, and returns the time from adding the last link until every
// node's routing table equals the one computed from the true topology.
func convergence(ctx context.Context, k int) (time.Duration, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	net := memory.NewNetwork(1024)
	nodes := make([]*mesh.Node, 0, k)
	defer func() {
		for _, n := range nodes {
			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_ = n.Shutdown(sctx)
			cancel()
		}
	}()
	ids := make([]string, k)
	topo := routing.Topology{}
	for i := range k {
		ids[i] = fmt.Sprintf("n%03d", i)
		n, err := mesh.New(mesh.Options{NodeID: ids[i], Logger: quiet})
		if err != nil {
			return 0, fmt.Errorf("node %s: %w", ids[i], err)
		}
		nodes = append(nodes, n)
		topo[ids[i]] = map[string]float64{}
	}
	link := func(a, b int, cost float64) error {
		name := ids[a] + "->" + ids[b]
		if err := nodes[a].AddBackend(net.Listener(name), mesh.BackendOptions{Cost: cost}); err != nil {
			return fmt.Errorf("listener %s: %w", name, err)
		}
		if err := nodes[b].AddBackend(net.Dialer(name, memory.DialerOptions{Backoff: 10 * time.Millisecond}),
			mesh.BackendOptions{Cost: cost}); err != nil {
			return fmt.Errorf("dialer %s: %w", name, err)
		}
		topo[ids[a]][ids[b]], topo[ids[b]][ids[a]] = cost, cost
		return nil
	}
	var t0 time.Time
	for i := range k {
		if err := link(i, (i+1)%k, 1); err != nil {
			return 0, err
		}
		if i%5 == 0 {
			if err := link(i, (i+k/2)%k, 2); err != nil {
				return 0, err
			}
		}
		t0 = time.Now()
	}
	want := make([]routing.Table, k)
	for i, id := range ids {
		want[i], _ = routing.Compute(id, topo)
	}
	// Poll the nodes in order; a node once converged is checked again at
	// the end, since a later update could still change its table.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for next := 0; ; {
		for next < k && maps.Equal(nodes[next].Status().RoutingTable, want[next]) {
			next++
		}
		if next == k {
			el := time.Since(t0)
			for i, n := range nodes {
				if !maps.Equal(n.Status().RoutingTable, want[i]) {
					return 0, fmt.Errorf("%s: table changed after convergence", ids[i])
				}
			}
			return el, nil
		}
		select {
		case <-ctx.Done():
			return 0, errors.Join(fmt.Errorf("%d nodes: %s not converged", k, ids[next]), ctx.Err())
		case <-tick.C:
		}
	}
}
