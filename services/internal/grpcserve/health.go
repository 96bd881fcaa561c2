package grpcserve

import (
	"context"
	"fmt"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// CheckHealth asks the gRPC health service of the server at address (as
// Dial takes it; a unix socket needs no credentials and its peers are
// admin) about service ("" is the whole server) and returns nil when it
// answers SERVING. It is the check of receptor-probe, the exec probe of
// the Kubernetes manifests: kubelet's own gRPC probes speak plaintext TCP,
// which our TCP listeners refuse (they require client certificates).
func CheckHealth(ctx context.Context, address, service string) error {
	conn, err := Dial(address, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return fmt.Errorf("health check of %s: %w", address, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health check of %s: %s", address, st)
	}
	return nil
}
