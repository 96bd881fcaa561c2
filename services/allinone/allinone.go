// Package allinone runs the router and the work agent in one process (the
// `receptor` binary, a drop-in replacement for upstream's), wired through
// the same gRPC interfaces as the split deployment, over in-memory
// connections instead of sockets.
package allinone

import (
	"context"
	"errors"
	"log/slog"

	"golang.org/x/sync/errgroup"

	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/accessconf"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/internal/metrics"
	"github.com/receptor-mesh/receptor/services/meshclient"
	"github.com/receptor-mesh/receptor/services/router"
	"github.com/receptor-mesh/receptor/services/worker"
)

// Check validates both halves of cfg without starting anything.
func Check(cfg *config.Config, log *slog.Logger) error {
	if err := router.Check(cfg, log); err != nil {
		return err
	}
	return worker.CheckAgent(cfg, log)
}

// Run runs router and work agent until ctx is cancelled.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger, reload *config.Reloader) error {
	if log == nil {
		log = slog.Default()
	}
	if !cfg.HasBackends() {
		log.Warn("Nothing to do - no backends are running.")
		return router.ErrNoBackends
	}
	policy, err := accessconf.Policy(cfg, log)
	if err != nil {
		return err
	}
	workPipe := grpcserve.NewInProcess()
	workConn, err := workPipe.Dial()
	if err != nil {
		return err
	}
	defer workConn.Close()

	// One registry for both halves; the router serves it.
	reg := metrics.New()
	r, err := router.New(cfg, router.Options{Logger: log, Reload: reload, Work: workv1.NewWorkServiceClient(workConn), Policy: policy, Metrics: reg})
	if err != nil {
		return err
	}
	// Until r.Run owns the node, a failure here must stop it.
	running := false
	defer func() {
		if !running {
			r.Node().Close()
		}
	}()
	meshConn, err := r.InProcessConn()
	if err != nil {
		return err
	}
	defer meshConn.Close()
	agent, err := worker.NewAgent(cfg, worker.MeshDialer(meshclient.New(meshConn), cfg.Node.ID), log)
	if err != nil {
		return err
	}
	defer agent.Close()
	if err := reg.Register(agent.Collector()); err != nil {
		return err
	}

	// Only the router reaches this server (in-process): its calls are the
	// node's own (authz.Internal).
	srv := grpcserve.New(grpcserve.Options{Logger: log, Policy: policy, Face: grpcserve.FaceInProcess, Prometheus: reg.GRPC})
	worker.Register(srv, agent, policy)
	// Shutdown order: the work agent first, then the router. The agent's
	// remote units hold MeshService streams (Dial, pooled control
	// connections) on the router's in-process gRPC server, whose graceful
	// stop would otherwise wait for them until its timeout. The router
	// therefore runs under a context of its own, cancelled once the agent
	// is closed (or when the router itself fails).
	running = true
	g, gctx := errgroup.WithContext(ctx)
	routerCtx, stopRouter := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRouter()
	g.Go(func() error { return grpcserve.Serve(gctx, srv, workPipe.Listener()) })
	g.Go(func() error {
		if err := r.Run(routerCtx); err != nil {
			return err
		}
		return context.Canceled // stopped: end the group
	})
	g.Go(func() error {
		<-gctx.Done()
		_ = agent.Close()
		stopRouter()
		return nil
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}
