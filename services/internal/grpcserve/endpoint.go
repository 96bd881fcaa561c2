package grpcserve

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sync/errgroup"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"

	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// Endpoint is where a grpc-server entity serves: a unix socket, a TCP
// address with mutual TLS, or both.
type Endpoint struct {
	Filename    string      // unix socket path; "" for none
	Permissions os.FileMode // of the unix socket
	TCPListen   string      // "host:port" or a bare port; "" for none
	TLS         *tls.Config // server config for TCP (client certificates are required)
	Policy      *authz.Policy
	Prometheus  *grpcprom.ServerMetrics // nil: no gRPC metrics
}

// StartEndpoint opens ep's listeners at once (so a busy socket or port is a
// start-up error) and serves each in g until ctx is done. register puts the
// services on each server: one plaintext server for the unix socket, one
// mutual-TLS server for TCP.
func StartEndpoint(ctx context.Context, g *errgroup.Group, ep Endpoint, log *slog.Logger, register func(*Server)) error {
	if ep.Filename == "" && ep.TCPListen == "" {
		return fmt.Errorf("grpc-server: no listeners specified (set filename or tcplisten)")
	}
	if ep.TCPListen != "" && ep.TLS != nil && ep.TLS.ClientCAs == nil {
		return fmt.Errorf("grpc-server tcplisten %q: the tls-server config has no clientcas; the API identifies TCP callers by client certificates issued by those CAs (set clientcas)", ep.TCPListen)
	}
	if ep.Filename != "" {
		ln, err := ListenUnix(ep.Filename, ep.Permissions)
		if err != nil {
			return fmt.Errorf("grpc-server: %w", err)
		}
		srv := New(Options{Logger: log, Policy: ep.Policy, Face: FaceUnix, Prometheus: ep.Prometheus})
		register(srv)
		g.Go(func() error { return Serve(ctx, srv, ln) })
		log.Info("gRPC API listening", "socket", ep.Filename)
	}
	if ep.TCPListen != "" {
		ln, err := ListenTCP(ctx, ep.TCPListen, ep.TLS, log)
		if err != nil {
			return fmt.Errorf("grpc-server: %w", err)
		}
		srv := New(Options{Logger: log, TLS: ep.TLS, Policy: ep.Policy, Face: FaceTCP, Prometheus: ep.Prometheus})
		register(srv)
		g.Go(func() error { return Serve(ctx, srv, ln) })
		log.Info("gRPC API listening", "address", ln.Addr().String(), "tls", ep.TLS != nil)
	}
	return nil
}
