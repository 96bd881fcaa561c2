// Package worker runs the work agent (package work) from configuration:
// it builds the work types, signing and verification, serves the
// WorkService over gRPC, and reaches the mesh through the router's
// MeshService (the router entity), never directly.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sync/errgroup"

	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/accessconf"
	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/buildinfo"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/internal/metrics"
	"github.com/receptor-mesh/receptor/services/internal/workapi"
	"github.com/receptor-mesh/receptor/services/tlsconf"
	"github.com/receptor-mesh/receptor/services/work"
	"github.com/receptor-mesh/receptor/services/work/command"
	"github.com/receptor-mesh/receptor/services/work/kube"
	"github.com/receptor-mesh/receptor/services/work/signing"
)

// verifyLeeway is the clock skew tolerated on the exp of signed work (none,
// as upstream); iat and nbf get signing.DefaultSkew.
const verifyLeeway = 0

// workTypes builds the configured local work types in configuration order.
// work-python, which this build cannot run, is skipped with a warning, so
// existing configurations still start.
func workTypes(cfg *config.Config, log *slog.Logger) ([]work.WorkType, error) {
	var types []work.WorkType
	for _, wc := range cfg.WorkCommands {
		t, err := command.New(command.Config{
			WorkType: wc.WorkType, Command: wc.Command, Params: wc.Params,
			AllowRuntimeParams: wc.AllowRuntimeParams, VerifySignature: wc.VerifySignature,
		}, command.Options{Logger: log})
		if err != nil {
			return nil, fmt.Errorf("work-command %s: %w", wc.WorkType, err)
		}
		types = append(types, work.CommandType(t))
	}
	tuning := kube.TuningFromEnv(kube.Tuning{
		SupportReconnect: cfg.Node.ReceptorKubeSupportReconnect,
		ClientsetQPS:     cfg.Node.ReceptorKubeClientsetQPS,
		ClientsetBurst:   cfg.Node.ReceptorKubeClientsetBurst,
		RateLimiter:      cfg.Node.ReceptorKubeClientsetRateLimiter,
	})
	for _, wk := range cfg.WorkKubernetes {
		reap := wk.ReapInterval
		if reap == 0 {
			reap = -1 // 0 disables here; kube.Config reads 0 as the default
		}
		t, err := kube.New(kube.Config{
			WorkType: wk.WorkType, Namespace: wk.Namespace, Image: wk.Image, Command: wk.Command, Params: wk.Params,
			AuthMethod: wk.AuthMethod, KubeConfig: wk.KubeConfig, Pod: wk.Pod,
			AllowRuntimeAuth: wk.AllowRuntimeAuth, AllowRuntimeCommand: wk.AllowRuntimeCommand,
			AllowRuntimeParams: wk.AllowRuntimeParams, AllowRuntimePod: wk.AllowRuntimePod,
			DeletePodOnRestart: wk.DeletePodOnRestart, StreamMethod: wk.StreamMethod, VerifySignature: wk.VerifySignature,
			Retry:        kube.Retry{Initial: wk.RetryInitial, Max: wk.RetryMax, Timeout: wk.RetryTimeout},
			ReapInterval: reap,
		}, kube.Options{NodeID: cfg.Node.ID, Tuning: tuning, Logger: log})
		if err != nil {
			return nil, err
		}
		types = append(types, work.KubeType(t))
	}
	for _, wp := range cfg.WorkPython {
		// Upstream fails at start-up too: its work-python always ends with
		// this deprecation error.
		return nil, fmt.Errorf("work-python %s: [DEPRECATION WARNING] 'work-python' option is not currently being used. This feature will be removed from receptor in a future release", wp.WorkType)
	}
	return types, nil
}

// keys builds the signer and verifier. Key files must exist at start-up;
// they are parsed on first use (receptorctl's test keys are never parsed).
func keys(cfg *config.Config) (*signing.Signer, *signing.Verifier, error) {
	var (
		signer   *signing.Signer
		verifier *signing.Verifier
		err      error
	)
	if ws := cfg.WorkSigning; ws != nil {
		if _, statErr := os.Stat(ws.PrivateKey); statErr != nil {
			return nil, nil, fmt.Errorf("work-signing: %s does not exist", ws.PrivateKey)
		}
		if signer, err = signing.NewSigner(ws.PrivateKey, ws.TokenExpiration); err != nil {
			return nil, nil, fmt.Errorf("work-signing: %w", err)
		}
	}
	if wv := cfg.WorkVerification; wv != nil {
		if _, statErr := os.Stat(wv.PublicKey); statErr != nil {
			return nil, nil, fmt.Errorf("work-verification: %s does not exist", wv.PublicKey)
		}
		if verifier, err = signing.NewVerifier(wv.PublicKey, verifyLeeway); err != nil {
			return nil, nil, fmt.Errorf("work-verification: %w", err)
		}
	}
	return signer, verifier, nil
}

// orDefault is log, or slog.Default() for nil.
func orDefault(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.Default()
	}
	return log
}

// Check validates cfg for receptor-worker without starting anything: what
// RunFromConfig needs (router and grpc-server entities), then the work side
// (CheckAgent).
func Check(cfg *config.Config, log *slog.Logger) error {
	if err := checkProcess(cfg); err != nil {
		return err
	}
	return CheckAgent(cfg, log)
}

// CheckAgent validates the work side of cfg (work types, signing keys)
// without starting anything; the all-in-one binary checks only this.
func CheckAgent(cfg *config.Config, log *slog.Logger) error {
	log = orDefault(log)
	if _, err := workTypes(cfg, log); err != nil {
		return err
	}
	_, _, err := keys(cfg)
	return err
}

// NewAgent builds the work agent of cfg. mesh reaches other nodes (nil
// disables remote work).
func NewAgent(cfg *config.Config, mesh work.MeshDialer, log *slog.Logger) (*work.Agent, error) {
	log = orDefault(log)
	types, err := workTypes(cfg, log)
	if err != nil {
		return nil, err
	}
	signer, verifier, err := keys(cfg)
	if err != nil {
		return nil, err
	}
	if signer != nil && cfg.WorkSigning.TokenExpiration > signer.Lifetime() {
		log.Warn("work-signing tokenexpiration is over the maximum token lifetime; signing tokens with the maximum",
			"tokenexpiration", cfg.WorkSigning.TokenExpiration, "maximum", signer.Lifetime())
	}
	tlsClients := make(map[string]bool, len(cfg.TLSClients))
	for _, c := range cfg.TLSClients {
		tlsClients[c.Name] = true
	}
	return work.New(work.Options{
		NodeID: cfg.Node.ID, DataDir: cfg.Node.DataDir, WorkTypes: types,
		Signer: signer, Verifier: verifier, Mesh: mesh,
		KnownTLSClient: func(name string) bool { return name == "" || tlsClients[name] },
		Logger:         log,
	})
}

// Register puts the WorkService of agent on srv.
func Register(srv *grpcserve.Server, agent *work.Agent, policy *authz.Policy) {
	workv1.RegisterWorkServiceServer(srv, workapi.New(agent, buildinfo.Get().Version, policy))
}

// serve serves agent's WorkService on every grpc-server entity of cfg,
// and its metrics on the metrics entity, until ctx is cancelled; store
// resolves their tls names.
func serve(ctx context.Context, cfg *config.Config, store *tlsconf.Store, agent *work.Agent, log *slog.Logger) error {
	policy, err := accessconf.Policy(cfg, log)
	if err != nil {
		return err
	}
	reg := metrics.New()
	if err := reg.Register(agent.Collector()); err != nil {
		return err
	}
	if err := reg.Register(policy.Collector()); err != nil {
		return err
	}
	if err := reg.Register(metrics.CertExpiry(metrics.CertsOf(cfg))); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	if mc := cfg.Metrics; mc != nil {
		tlsCfg, err := store.Server(mc.TLS)
		if err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		if err := metrics.Start(ctx, g, metrics.Listener{TCPListen: mc.TCPListen, TLS: tlsCfg, Policy: policy, Registry: reg}, log); err != nil {
			return err
		}
	}
	for _, gs := range cfg.GRPCServers {
		tlsCfg, err := store.Server(gs.TLS)
		if err != nil {
			return fmt.Errorf("grpc-server: %w", err)
		}
		ep := grpcserve.Endpoint{Filename: gs.Filename, Permissions: os.FileMode(gs.Permissions), TCPListen: gs.TCPListen, TLS: tlsCfg, Policy: policy, Prometheus: reg.GRPC}
		if err := grpcserve.StartEndpoint(ctx, g, ep, log, func(s *grpcserve.Server) { Register(s, agent, policy) }); err != nil {
			return err
		}
	}
	return g.Wait()
}
