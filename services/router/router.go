// Package router runs a mesh node from configuration: backends, control
// services (receptorctl protocol on unix, tcp and the mesh), service
// proxies, and the gRPC and REST faces. It knows nothing about how work
// runs: work requests go to a work agent's WorkService when one is attached.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/control"
	"github.com/receptor-mesh/receptor/services/internal/accessconf"
	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/internal/meshapi"
	"github.com/receptor-mesh/receptor/services/internal/metrics"
	"github.com/receptor-mesh/receptor/services/internal/tlsstore"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/firewall"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/proxy"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// Options are the router's dependencies beyond its configuration.
type Options struct {
	Logger *slog.Logger
	// Reload re-reads the configuration for the control `reload` command
	// and carries the other requests to reload (SIGHUP, a changed
	// --config-v2 file); nil disables reload.
	Reload *config.Reloader
	// Work is the work agent's WorkService; nil means none is attached and
	// work requests fail with UNAVAILABLE (apierr.NoWorkAgent). The all-in-one binary
	// passes an in-process client; receptor-router dials the work-agent
	// entity's address.
	Work workv1.WorkServiceClient
	// WorkConn is the connection behind Work when the work agent runs in
	// a process of its own (receptor-router's work-agent entity): while it
	// cannot reach the agent, the node withdraws the agent's work types
	// from its control-service advertisement. Nil: Work is always there
	// (the all-in-one binary's in-process agent).
	WorkConn *grpc.ClientConn
	// TLS holds cfg's named TLS configurations; nil means New builds them
	// from cfg (tlsstore.FromConfig).
	TLS *tlsconf.Store
	// Policy authorizes every face; nil means New builds it from cfg's
	// access entities (accessconf.Policy).
	Policy *authz.Policy
	// Metrics is the process's registry; nil means New makes one. The
	// router registers the mesh node's, the QUIC streams' and the
	// authorizer's collectors on it, and serves it at the http-gateway's
	// /metrics and on a metrics entity's listener.
	Metrics *metrics.Registry
}

// Router is a running node agent.
type Router struct {
	cfg  *config.Config
	log  *slog.Logger
	node *mesh.Node
	tls  *tlsconf.Store
	ops  *ops
	ctl  *control.Server
	work workv1.WorkServiceClient
	opt  Options
	// policy is the one authorizer of every face; quota holds each
	// principal's unit count and stdin limit against it.
	policy  *authz.Policy
	quota   *quota
	metrics *metrics.Registry

	reloadMu   sync.Mutex // one reload at a time
	backendMu  sync.Mutex
	backends   []runningBackend
	backendCfg *config.Config  // the configuration the running backends came from
	runCtx     context.Context // Run's context; backends started by reload live under it

	inproc     *grpcserve.InProcess // the APIs without a socket (gateway, all-in-one work agent)
	meshAPI    *meshapi.Server
	controlAPI *controlAPI
	workInfo   atomic.Pointer[cachedWorkInfo] // GetStatus's view of the work agent
}

// Check validates what only the router can: TLS files and certificates,
// firewall rules, and backend parameters. It starts nothing.
func Check(cfg *config.Config, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if err := checkBackends(cfg); err != nil {
		return err
	}
	store, err := tlsstore.FromConfig(cfg, log)
	if err != nil {
		return err
	}
	if err := checkUnsupported(cfg); err != nil {
		return err
	}
	if _, err := firewall.Parse(cfg.Node.FirewallRules); err != nil {
		return fmt.Errorf("node: firewallrules: %w", err)
	}
	_, err = buildBackends(cfg, store, log)
	return err
}

// ErrNoBackends refuses a node without listeners, peers or local-only
// (upstream: "Nothing to do - no backends are running.").
var ErrNoBackends = errors.New("no backends configured: add a listener, a peer or local-only (see --help)")

func checkBackends(cfg *config.Config) error {
	if !cfg.HasBackends() {
		return ErrNoBackends
	}
	return nil
}

// checkUnsupported refuses entities this build parses but does not run,
// rather than starting without them.
func checkUnsupported(cfg *config.Config) error {
	if len(cfg.IPRouters) > 0 {
		return errors.New("ip-router: not implemented by this build (upstream routes IP over the mesh through a tun device; we do not); remove the entity")
	}
	return nil
}

// New builds the node from cfg. Nothing listens or dials until Run.
func New(cfg *config.Config, opts Options) (*Router, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := checkUnsupported(cfg); err != nil {
		return nil, err
	}
	store := opts.TLS
	if store == nil {
		var err error
		if store, err = tlsstore.FromConfig(cfg, log); err != nil {
			return nil, err
		}
	}
	policy := opts.Policy
	if policy == nil {
		var err error
		if policy, err = accessconf.Policy(cfg, log); err != nil {
			return nil, err
		}
	}
	node, err := mesh.New(mesh.Options{
		NodeID:         cfg.Node.ID,
		MaxIdleTimeout: cfg.Node.MaxIdleConnectionTimeout,
		FirewallRules:  cfg.Node.FirewallRules,
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	reg := opts.Metrics
	if reg == nil {
		reg = metrics.New()
	}
	for _, c := range []prometheus.Collector{node.Collector(), stream.Collector(), policy.Collector()} {
		if err := reg.Register(c); err != nil {
			node.Close()
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	r := &Router{cfg: cfg, log: log, node: node, tls: store, work: opts.Work, opt: opts, policy: policy, metrics: reg}
	r.quota = newQuota(policy, opts.Work)
	r.ops = &ops{node: node, tls: store, work: opts.Work, reload: r.reload, quota: r.quota}
	r.ctl = control.NewServer(r.ops, control.Options{Logger: log, Policy: policy})
	for _, c := range []prometheus.Collector{r.ctl.Collector(), metrics.CertExpiry(metrics.CertsOf(cfg))} {
		if err := reg.Register(c); err != nil {
			node.Close()
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	r.inproc = grpcserve.NewInProcess()
	if err := r.newAPIs(); err != nil {
		node.Close()
		return nil, err
	}
	return r, nil
}

// Node is the router's mesh node.
func (r *Router) Node() *mesh.Node { return r.node }

// Run starts every configured face and backend and serves until ctx is
// cancelled; then it stops everything and returns. A listener that cannot
// start is an error returned at once, and so is a mesh node that stops on
// its own (ErrDuplicateNodeID): Run then stops everything and returns it.
func (r *Router) Run(parent context.Context) error {
	defer r.node.Close()
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	r.runCtx = ctx

	// Certificates and keys are re-read when their files change.
	if stopWatch, werr := tlsstore.Watch(ctx, r.tls, r.cfg, r.log); werr != nil {
		r.log.Warn("TLS files are not watched; reload re-reads them", "err", werr)
	} else {
		defer stopWatch()
	}
	err := r.start(ctx, g)
	if err == nil {
		g.Go(func() error { r.serveReloadRequests(ctx); return nil })
		r.log.Info("Initialization complete", "node", r.node.NodeID())
		select {
		case <-ctx.Done():
		case <-r.node.Done():
		}
	}
	// The node may have stopped on its own (e.g. it is a duplicate of an
	// earlier node with the same ID), whichever way start or the wait
	// ended: a face serving on the mesh fails at once and cancels ctx too.
	// Running on without a mesh would serve nothing useful: end with the
	// node's error, so that the process exits non-zero and a supervisor
	// restarts it.
	if nerr := r.node.Err(); nerr != nil && !errors.Is(nerr, mesh.ErrClosed) {
		r.log.Error("mesh node stopped; exiting", "node", r.node.NodeID(), "err", nerr)
		err = fmt.Errorf("mesh node %q stopped: %w", r.node.NodeID(), nerr)
	}
	cancel()
	werr := g.Wait()
	r.stopBackends()
	if err != nil && errors.Is(err, context.Canceled) && parent.Err() != nil {
		// Cancelled while starting: a stop, not a failure.
		err = nil
	}
	if err != nil {
		return err
	}
	if errors.Is(werr, context.Canceled) {
		werr = nil
	}
	return werr
}

// start brings up backends, control services, proxies and APIs; any
// listener that cannot open is an error (Run then stops the rest).
func (r *Router) start(ctx context.Context, g *errgroup.Group) error {
	if err := r.startBackends(ctx, r.cfg); err != nil {
		return err
	}
	if err := r.startProxies(ctx, g); err != nil {
		return err
	}
	if err := r.startAPIs(ctx, g); err != nil {
		return err
	}
	// Control services last: a client that reaches the socket finds every
	// other face of the node already up.
	for _, cs := range r.cfg.ControlServices {
		if err := r.startControlService(ctx, g, cs); err != nil {
			return err
		}
	}
	return nil
}

// startProxies binds every proxy entity (tcp-server, unix-socket-client,
// ...) synchronously, so a busy port is a startup error as upstream, and
// waits for them in g once ctx ends.
func (r *Router) startProxies(ctx context.Context, g *errgroup.Group) error {
	proxies, err := proxy.FromConfig(r.node, r.tls, r.cfg, proxy.Options{Logger: r.log})
	if err != nil {
		return err
	}
	if len(proxies) == 0 {
		return nil
	}
	wait, err := proxy.StartAll(ctx, proxies)
	if err != nil {
		return err
	}
	g.Go(func() error {
		<-ctx.Done()
		wait()
		return nil
	})
	return nil
}

// startControlService opens the listeners of one control-service entity
// synchronously (so a busy socket is a startup error) and serves them in g.
func (r *Router) startControlService(ctx context.Context, g *errgroup.Group, cs config.ControlService) error {
	if cs.Filename == "" && cs.TCPListen == "" && cs.Service == "" {
		return errors.New("control-service: no listeners specified")
	}
	ctl := r.ctl.WithIdleTimeout(cs.IdleTimeout)
	if cs.Filename != "" {
		ln, err := control.ListenUnix(cs.Filename, os.FileMode(cs.Permissions))
		if err != nil {
			return fmt.Errorf("control-service: %w", err)
		}
		r.log.Info("control service listening", "socket", cs.Filename)
		g.Go(func() error { return ctl.Serve(ctx, ln, control.OriginUnix) })
	}
	if cs.TCPListen != "" {
		tlsCfg, err := r.tls.Server(cs.TCPTLS)
		if err != nil {
			return fmt.Errorf("control-service: %w", err)
		}
		ln, err := control.ListenTCP(cs.TCPListen, tlsCfg)
		if err != nil {
			return fmt.Errorf("control-service: %w", err)
		}
		r.log.Info("control service listening", "address", ln.Addr().String(), "tls", tlsCfg != nil)
		g.Go(func() error { return ctl.Serve(ctx, ln, control.OriginTCP) })
	} else if cs.TLS != "" {
		r.log.Warn("control-service: tls is set but tcptls is not; the TCP listener (if any) does not use TLS")
	}
	if cs.Service != "" {
		tlsCfg, err := r.tls.Server(cs.TLS)
		if err != nil {
			return fmt.Errorf("control-service: %w", err)
		}
		ln, err := stream.Listen(ctx, r.node, cs.Service, stream.ListenOptions{
			TLS: tlsCfg, Advertise: true, Tags: map[string]string{"type": "Control Service"}, Logger: r.log,
		})
		if err != nil {
			return fmt.Errorf("control-service: %w", err)
		}
		r.log.Info("control service listening", "service", cs.Service, "tls", tlsCfg != nil)
		g.Go(func() error { return ctl.Serve(ctx, ln, control.OriginMesh) })
	}
	return nil
}

// runningBackend is one started backend entity: key identifies its
// configuration (backendSpec.key), stop ends it and its sessions.
type runningBackend struct {
	key  string
	stop func()
}

// startBackends starts every backend of cfg, each under a context of its
// own, so that reload can replace some without touching the others.
func (r *Router) startBackends(ctx context.Context, cfg *config.Config) error {
	specs, err := buildBackends(cfg, r.tls, r.log)
	if err != nil {
		return err
	}
	started, err := r.startSpecs(ctx, specs)
	if err != nil {
		return err
	}
	r.backendMu.Lock()
	r.backends, r.backendCfg = started, cfg
	r.backendMu.Unlock()
	return nil
}

// startSpecs starts specs; on an error it stops those it started.
func (r *Router) startSpecs(ctx context.Context, specs []backendSpec) ([]runningBackend, error) {
	var started []runningBackend
	for _, s := range specs {
		bctx, cancel := context.WithCancel(ctx)
		wait, err := r.node.AddBackendContext(bctx, s.backend, s.opts)
		if err != nil {
			cancel()
			stopAll(started)
			return nil, fmt.Errorf("%s: %w", s.name, err)
		}
		started = append(started, runningBackend{key: s.key, stop: func() { cancel(); wait() }})
	}
	return started, nil
}

func stopAll(bs []runningBackend) {
	for _, b := range bs {
		b.stop()
	}
}

// replaceBackends makes the running backends those of specs (built from
// cfg): a running backend whose key is among specs keeps running, the
// others stop first (a changed listener frees its port), then the new ones
// start. If one cannot start, the new ones stop and the stopped ones are
// started again from the previous configuration.
func (r *Router) replaceBackends(cfg *config.Config, specs []backendSpec) (kept, stopped, started int, err error) {
	r.backendMu.Lock()
	running, oldCfg := r.backends, r.backendCfg
	r.backendMu.Unlock()
	var keep, stop []runningBackend
	toStart := slices.Clone(specs)
	for _, b := range running {
		i := slices.IndexFunc(toStart, func(s backendSpec) bool { return s.key == b.key })
		if i < 0 {
			stop = append(stop, b)
			continue
		}
		keep = append(keep, b)
		toStart = slices.Delete(toStart, i, i+1)
	}
	if len(stop) == 0 && len(toStart) == 0 {
		return len(keep), 0, 0, nil
	}
	stopAll(stop)
	fresh, err := r.startSpecs(r.runCtx, toStart)
	if err != nil {
		// Put the stopped backends back as they were.
		if prev, berr := buildBackends(oldCfg, r.tls, r.log); berr == nil {
			var again []backendSpec
			for _, b := range stop {
				if i := slices.IndexFunc(prev, func(s backendSpec) bool { return s.key == b.key }); i >= 0 {
					again = append(again, prev[i])
					prev = slices.Delete(prev, i, i+1)
				}
			}
			if restored, rerr := r.startSpecs(r.runCtx, again); rerr == nil {
				keep = append(keep, restored...)
			} else {
				r.log.Error("reload: the previous backends could not be restarted", "err", rerr)
			}
		}
		r.backendMu.Lock()
		r.backends = keep
		r.backendMu.Unlock()
		return 0, 0, 0, err
	}
	r.backendMu.Lock()
	r.backends, r.backendCfg = append(keep, fresh...), cfg
	r.backendMu.Unlock()
	return len(keep), len(stop), len(fresh), nil
}

func (r *Router) stopBackends() {
	r.backendMu.Lock()
	running := r.backends
	r.backends = nil
	r.backendMu.Unlock()
	stopAll(running)
}

// RunFromConfig runs a router (receptor-router) until ctx is cancelled. A
// work-agent entity attaches the work agent's WorkService over gRPC.
func RunFromConfig(ctx context.Context, cfg *config.Config, log *slog.Logger, reload *config.Reloader) error {
	if log == nil {
		log = slog.Default()
	}
	if err := checkBackends(cfg); err != nil {
		log.Warn("Nothing to do - no backends are running.")
		return err
	}
	store, err := tlsstore.FromConfig(cfg, log)
	if err != nil {
		return err
	}
	opts := Options{Logger: log, Reload: reload, TLS: store}
	if wa := cfg.WorkAgent; wa != nil {
		conn, err := dialWorkAgent(store, wa)
		if err != nil {
			return err
		}
		defer conn.Close()
		opts.Work, opts.WorkConn = workv1.NewWorkServiceClient(conn), conn
	}
	r, err := New(cfg, opts)
	if err != nil {
		return err
	}
	return r.Run(ctx)
}
