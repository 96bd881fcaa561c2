package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/internal/tlsstore"
	"github.com/receptor-mesh/receptor/services/meshclient"
	"github.com/receptor-mesh/receptor/services/work"
)

// MeshDialer reaches other nodes through the router's MeshService: the
// work agent's only way onto the mesh.
func MeshDialer(c *meshclient.Client, nodeID string) work.MeshDialer {
	return meshDialer{c: c, nodeID: nodeID}
}

type meshDialer struct {
	c      *meshclient.Client
	nodeID string
}

func (d meshDialer) Dial(ctx context.Context, node, service, tlsClient string) (net.Conn, error) {
	return d.c.Dial(ctx, node, service, meshclient.DialOptions{TLSClient: tlsClient})
}

func (d meshDialer) NodeID() string { return d.nodeID }

// RunFromConfig runs receptor-worker: the work agent serving WorkService on
// its grpc-server entities, reaching the mesh through the router entity.
// Either side may restart: gRPC reconnects with backoff.
//
// receptor-worker does not reload its configuration: a reload request
// (SIGHUP) is logged and otherwise ignored.
func RunFromConfig(ctx context.Context, cfg *config.Config, log *slog.Logger, reload *config.Reloader) error {
	log = orDefault(log)
	if err := checkProcess(cfg); err != nil {
		return err
	}
	store, err := tlsstore.FromConfig(cfg, log)
	if err != nil {
		return err
	}
	tlsCfg, err := store.Client(cfg.Router.TLSClient)
	if err != nil {
		return fmt.Errorf("router: %w", err)
	}
	conn, err := grpcserve.Dial(cfg.Router.Address, tlsCfg)
	if err != nil {
		return fmt.Errorf("router: %s: %w", cfg.Router.Address, err)
	}
	defer conn.Close()
	client := meshclient.New(conn)
	agent, err := NewAgent(cfg, MeshDialer(client, cfg.Node.ID), log)
	if err != nil {
		return err
	}
	defer agent.Close()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { checkNodeID(ctx, client, cfg.Node.ID, log) })
	if reload != nil && reload.Requests != nil {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-reload.Requests:
					log.Warn("receptor-worker does not reload its configuration; restart it to apply changes")
				}
			}
		})
	}
	defer wg.Wait()
	defer cancel()
	log.Info("work agent running", "node", cfg.Node.ID, "router", cfg.Router.Address, "worktypes", len(agent.WorkTypes()))
	return serve(ctx, cfg, store, agent, log)
}

// checkProcess refuses a configuration receptor-worker cannot run with.
func checkProcess(cfg *config.Config) error {
	if cfg.Router == nil {
		return errors.New("receptor-worker needs a router entity: the address of the router's gRPC API")
	}
	if len(cfg.GRPCServers) == 0 {
		return errors.New("receptor-worker needs a grpc-server entity: the router reaches the WorkService there")
	}
	return nil
}

// checkNodeID warns when the router's node ID differs from ours: units are
// stored under the node ID and remote nodes address them by it.
func checkNodeID(ctx context.Context, c *meshclient.Client, nodeID string, log *slog.Logger) {
	for range 60 {
		st, err := c.Status(ctx)
		if err == nil {
			if st.GetNodeId() != nodeID {
				log.Error("the router's node ID differs from this work agent's node ID: set the same node id in both configurations",
					"router", st.GetNodeId(), "worker", nodeID)
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
