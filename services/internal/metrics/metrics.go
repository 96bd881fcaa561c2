// Package metrics holds a process's one Prometheus registry and serves it:
// New builds the registry with the Go runtime and process collectors and
// the gRPC server metrics of go-grpc-middleware (which grpcserve puts in
// its one interceptor chain); Handler serves /metrics to callers the
// authorizer lets read them (authz.ActionMetrics, role reader). Each layer
// registers its own collector where its numbers are born (the mesh node,
// the work agent, the authorizer, the control server).
package metrics

import (
	"log/slog"
	"net/http"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// Registry is a process's metrics registry.
type Registry struct {
	*prometheus.Registry
	// GRPC observes every call of the process's gRPC servers.
	GRPC *grpcprom.ServerMetrics
}

// New returns a registry with the Go runtime, process and gRPC server
// collectors registered.
func New() *Registry {
	r := &Registry{Registry: prometheus.NewRegistry(), GRPC: grpcprom.NewServerMetrics(
		grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(
			[]float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300})))}
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), r.GRPC)
	return r
}

// Handler serves the registry in the Prometheus exposition formats to
// callers whose principal (authz.FromContext of the request, set by the
// face's authentication) may read metrics; others get 401 or 403.
func Handler(r *Registry, policy *authz.Policy, face string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	h := promhttp.HandlerFor(r, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if err := policy.Authorize(req.Context(), authz.ActionMetrics, face); err != nil {
			code := http.StatusForbidden
			if d, ok := err.(*authz.DeniedError); ok && d.Unauthenticated {
				code = http.StatusUnauthorized
				w.Header().Set("WWW-Authenticate", `Bearer realm="receptor"`)
			}
			http.Error(w, err.Error(), code)
			return
		}
		h.ServeHTTP(w, req)
	})
}
