package metrics

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"

	"golang.org/x/sync/errgroup"

	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/gateway"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
)

// Face names the metrics listener in authorization logs and denial counts.
const Face = "metrics"

// Listener is where a `metrics` entity serves /metrics: for processes
// without an http-gateway (receptor-worker), or beside one.
type Listener struct {
	TCPListen string      // "host:port" or a bare port
	TLS       *tls.Config // nil: plaintext, allowed on loopback only
	Policy    *authz.Policy
	Registry  *Registry
}

// Start opens l's port at once (a busy port is a start-up error) and
// serves GET /metrics in g until ctx is done. Callers are named as on the
// REST gateway (a bearer token from an access tokenfile, else a client
// certificate verified against the tls-server's clientcas, else anonymous)
// and must hold the reader role: anonymous callers are refused unless an
// access rule grants "anonymous" a role. Every other path is 404.
func Start(ctx context.Context, g *errgroup.Group, l Listener, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if l.Policy == nil || l.Registry == nil {
		return fmt.Errorf("metrics: no policy or registry")
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(l.Registry, l.Policy, Face, log))
	h := gateway.Guard(mux, gateway.Options{Logger: log, Policy: l.Policy, TLS: l.TLS != nil, Listen: l.TCPListen})
	ln, err := grpcserve.ListenTCP(ctx, l.TCPListen, l.TLS, log)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	log.Info("metrics listening", "address", ln.Addr().String(), "tls", l.TLS != nil)
	g.Go(func() error { return gateway.Serve(ctx, h, ln, l.TLS, log) })
	return nil
}
