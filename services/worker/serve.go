package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/grpcserve"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// serveEntity serves one grpc-server entity of the work agent in g.
func serveEntity(ctx context.Context, g *errgroup.Group, store *tlsconf.Store, gs config.GRPCServer, log *slog.Logger, register func(*grpcserve.Server)) error {
	tlsCfg, err := store.Server(gs.TLS)
	if err != nil {
		return fmt.Errorf("grpc-server: %w", err)
	}
	return grpcserve.StartEndpoint(ctx, g, grpcserve.Endpoint{
		Filename: gs.Filename, Permissions: os.FileMode(gs.Permissions), TCPListen: gs.TCPListen, TLS: tlsCfg,
	}, log, register)
}
