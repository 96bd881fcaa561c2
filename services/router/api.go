package router

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/internal/backoff"
	"github.com/receptor-mesh/receptor/services/internal/buildinfo"
	"github.com/receptor-mesh/receptor/services/internal/gateway"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/internal/meshapi"
	"github.com/receptor-mesh/receptor/services/internal/metrics"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// workInfoTimeout bounds the GetStatus call's question to the work agent.
const workInfoTimeout = 2 * time.Second

// newAPIs builds the MeshService and ControlService implementations.
func (r *Router) newAPIs() error {
	bi := buildinfo.Get()
	m, err := meshapi.New(meshapi.Options{
		Node:       r.node,
		TLSClient:  r.tls.Client,
		TLSServer:  r.tls.Server,
		WorkStatus: r.workStatus,
		Version:    &meshv1.VersionInfo{Version: bi.Version, Commit: bi.Commit, GoVersion: bi.GoVersion},
		Logger:     r.log,
	})
	if err != nil {
		return err
	}
	r.meshAPI = m
	r.controlAPI = &controlAPI{mesh: m, node: r.node, work: r.work, reload: r.reload, policy: r.policy, quota: r.quota}
	return nil
}

// register puts the router's services on srv.
func (r *Router) register(srv *grpcserve.Server) {
	meshv1.RegisterMeshServiceServer(srv, r.meshAPI)
	controlv1.RegisterControlServiceServer(srv, r.controlAPI)
}

// InProcessConn connects to the router's APIs without a socket (the
// all-in-one binary's work agent uses it). Valid once New returned; calls
// wait until Run serves.
func (r *Router) InProcessConn() (*grpc.ClientConn, error) { return r.inproc.Dial() }

// startAPIs serves the gRPC APIs in-process and on every grpc-server
// entity, and the REST gateway of the http-gateway entity.
func (r *Router) startAPIs(ctx context.Context, g *errgroup.Group) error {
	internal := grpcserve.New(grpcserve.Options{Logger: r.log, Policy: r.policy, Face: grpcserve.FaceInProcess, Prometheus: r.metrics.GRPC})
	r.register(internal)
	g.Go(func() error { return grpcserve.Serve(ctx, internal, r.inproc.Listener()) })

	for _, gs := range r.cfg.GRPCServers {
		tlsCfg, err := r.tls.Server(gs.TLS)
		if err != nil {
			return fmt.Errorf("grpc-server: %w", err)
		}
		ep := grpcserve.Endpoint{Filename: gs.Filename, Permissions: os.FileMode(gs.Permissions), TCPListen: gs.TCPListen, TLS: tlsCfg, Policy: r.policy, Prometheus: r.metrics.GRPC}
		if err := grpcserve.StartEndpoint(ctx, g, ep, r.log, r.register); err != nil {
			return err
		}
	}
	if hg := r.cfg.HTTPGateway; hg != nil {
		tlsCfg, err := r.tls.Server(hg.TLS)
		if err != nil {
			return fmt.Errorf("http-gateway: %w", err)
		}
		conn, err := r.inproc.Dial()
		if err != nil {
			return fmt.Errorf("http-gateway: %w", err)
		}
		h, err := gateway.New(ctx, conn, gateway.Options{
			Logger: r.log, Policy: r.policy, TLS: tlsCfg != nil,
			Listen: hg.TCPListen, AllowedHosts: hg.AllowedHosts, AllowOrigins: hg.AllowOrigins,
			Metrics: metrics.Handler(r.metrics, r.policy, "rest", r.log),
		})
		if err != nil {
			conn.Close()
			return fmt.Errorf("http-gateway: %w", err)
		}
		ln, err := grpcserve.ListenTCP(ctx, hg.TCPListen, tlsCfg, r.log)
		if err != nil {
			conn.Close()
			return fmt.Errorf("http-gateway: %w", err)
		}
		r.log.Info("REST gateway listening", "address", ln.Addr().String(), "tls", tlsCfg != nil)
		g.Go(func() error {
			defer conn.Close()
			return gateway.Serve(ctx, h, ln, tlsCfg, r.log)
		})
	}
	if mc := r.cfg.Metrics; mc != nil {
		tlsCfg, err := r.tls.Server(mc.TLS)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		if err := metrics.Start(ctx, g, metrics.Listener{TCPListen: mc.TCPListen, TLS: tlsCfg, Policy: r.policy, Registry: r.metrics}, r.log); err != nil {
			return err
		}
	}
	if r.work != nil {
		g.Go(func() error { r.syncWorkCommands(ctx); return nil })
	}
	return nil
}

// workInfoMaxAge is how long GetStatus reuses the work agent's last
// answer, so a burst of status calls costs one call to the agent.
const workInfoMaxAge = time.Second

// cachedWorkInfo is the work agent's last GetWorkerInfo answer.
type cachedWorkInfo struct {
	info *workv1.GetWorkerInfoResponse
	at   time.Time
}

// workStatus describes the attached work agent for GetStatus.
func (r *Router) workStatus(ctx context.Context) (*meshv1.WorkAgentStatus, error) {
	if r.work == nil {
		return &meshv1.WorkAgentStatus{Attached: false}, nil
	}
	var info *workv1.GetWorkerInfoResponse
	if c := r.workInfo.Load(); c != nil && time.Since(c.at) < workInfoMaxAge {
		info = c.info
	} else {
		ctx, cancel := context.WithTimeout(ctx, workInfoTimeout)
		defer cancel()
		var err error
		if info, err = r.work.GetWorkerInfo(ctx, &workv1.GetWorkerInfoRequest{}); err != nil {
			return nil, err
		}
		r.workInfo.Store(&cachedWorkInfo{info: info, at: time.Now()})
	}
	return &meshv1.WorkAgentStatus{
		Attached: true, Version: info.GetVersion(), WorkCommands: info.GetWorkCommands(), Capacity: info.GetCapacity(),
	}, nil
}

// syncWorkCommands keeps the work agent's work types in this node's
// control-service advertisements: it asks the agent when it (re)appears
// and every refresh interval after that, so an agent restarted with other
// work types is reflected within one interval. With a work agent in a
// process of its own (Options.WorkConn), the types are withdrawn (the ads
// carry no work types and are flooded at once) as soon as the connection
// to the agent is lost and the agent cannot be asked, so that other nodes
// do not send work to a node that cannot run it; they come back when the
// agent does.
func (r *Router) syncWorkCommands(ctx context.Context) {
	const (
		retry   = time.Second
		refresh = 15 * time.Second
	)
	conn := r.opt.WorkConn
	var last []mesh.WorkCommand
	advertised := false
	for {
		wait := retry
		var callOpts []grpc.CallOption
		if conn == nil {
			// In-process: the agent is there once it is served.
			callOpts = append(callOpts, grpc.WaitForReady(true))
		}
		cctx, cancel := context.WithTimeout(ctx, refresh)
		info, err := r.work.GetWorkerInfo(cctx, &workv1.GetWorkerInfoRequest{}, callOpts...)
		cancel()
		switch {
		case err == nil:
			cmds := make([]mesh.WorkCommand, 0, len(info.GetWorkCommands()))
			for _, wc := range info.GetWorkCommands() {
				cmds = append(cmds, mesh.WorkCommand{WorkType: wc.GetWorkType(), Secure: wc.GetSecure()})
			}
			if !advertised || !equalWorkCommands(cmds, last) {
				r.node.SetWorkCommands(cmds)
				r.log.Info("work agent attached", "worktypes", len(cmds))
				last, advertised = cmds, true
			}
			wait = refresh
		case ctx.Err() != nil:
			return
		case advertised && conn != nil:
			r.node.SetWorkCommands([]mesh.WorkCommand{})
			advertised = false
			r.log.Warn("work agent unreachable; its work types are withdrawn from the control service advertisement until it is back", "err", err)
		default:
			r.log.Debug("work agent not reachable", "err", err)
		}
		if !waitWorkAgent(ctx, conn, wait, advertised) {
			return
		}
	}
}

// waitWorkAgent waits d; with an agent that is advertised, it returns as
// soon as conn leaves the Ready state (the agent went away). False when
// ctx ended.
func waitWorkAgent(ctx context.Context, conn *grpc.ClientConn, d time.Duration, advertised bool) bool {
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if conn != nil && advertised {
		for st := conn.GetState(); st == connectivity.Ready; st = conn.GetState() {
			if !conn.WaitForStateChange(tctx, st) {
				break
			}
		}
		if ctx.Err() != nil {
			return false
		}
		if tctx.Err() == nil {
			// Left Ready: let the reconnect attempt settle before asking.
			return backoff.Sleep(ctx, agentSettle)
		}
		return true
	}
	<-tctx.Done()
	return ctx.Err() == nil
}

// agentSettle is the pause between losing the connection to the work
// agent and asking it again (a restart of the agent's listener, or a
// transient GOAWAY, reconnects within it).
const agentSettle = 100 * time.Millisecond

func equalWorkCommands(a, b []mesh.WorkCommand) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
