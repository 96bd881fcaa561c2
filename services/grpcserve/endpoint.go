package grpcserve

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sync/errgroup"
)

// Endpoint is where a grpc-server entity serves: a unix socket, a TCP
// address with mutual TLS, or both.
type Endpoint struct {
	Filename    string      // unix socket path; "" for none
	Permissions os.FileMode // of the unix socket
	TCPListen   string      // "host:port" or a bare port; "" for none
	TLS         *tls.Config // server config for TCP (client certificates are required)
}

// StartEndpoint opens ep's listeners at once (so a busy socket or port is a
// start-up error) and serves each in g until ctx is done. register puts the
// services on each server: one plaintext server for the unix socket, one
// mutual-TLS server for TCP.
func StartEndpoint(ctx context.Context, g *errgroup.Group, ep Endpoint, log *slog.Logger, register func(*Server)) error {
	if ep.Filename == "" && ep.TCPListen == "" {
		return fmt.Errorf("grpc-server: no listeners specified (set filename or tcplisten)")
	}
	if ep.Filename != "" {
		ln, err := ListenUnix(ep.Filename, ep.Permissions)
		if err != nil {
			return fmt.Errorf("grpc-server: %w", err)
		}
		srv := New(Options{Logger: log})
		register(srv)
		g.Go(func() error { return Serve(ctx, srv, ln) })
		log.Info("gRPC API listening", "socket", ep.Filename)
	}
	if ep.TCPListen != "" {
		ln, err := ListenTCP(ctx, ep.TCPListen, ep.TLS, log)
		if err != nil {
			return fmt.Errorf("grpc-server: %w", err)
		}
		srv := New(Options{Logger: log, TLS: ep.TLS})
		register(srv)
		g.Go(func() error { return Serve(ctx, srv, ln) })
		log.Info("gRPC API listening", "address", ln.Addr().String(), "tls", ep.TLS != nil)
	}
	return nil
}
