package router

import (
	"fmt"
	"log/slog"

	"google.golang.org/grpc"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/grpcserve"
	"github.com/receptor-mesh/receptor/services/tlsstore"
)

// dialWorkAgent connects to the work agent of a work-agent entity. The
// connection is lazy and reconnects with backoff, so the work agent may
// start after the router, restart, or be away for a while.
func dialWorkAgent(cfg *config.Config, wa *config.WorkAgent, log *slog.Logger) (*grpc.ClientConn, error) {
	store, err := tlsstore.FromConfig(cfg, log)
	if err != nil {
		return nil, err
	}
	tlsCfg, err := store.Client(wa.TLSClient)
	if err != nil {
		return nil, fmt.Errorf("work-agent: %w", err)
	}
	conn, err := grpcserve.Dial(wa.Address, tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("work-agent: %s: %w", wa.Address, err)
	}
	return conn, nil
}
