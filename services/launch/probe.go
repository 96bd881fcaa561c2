package launch

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
)

// probeTimeout bounds one health check of receptor-probe.
const probeTimeout = 5 * time.Second

// ProbeMain is receptor-probe: args are a gRPC address of ours
// (unix:///path/to/grpc.sock) and optionally a service name. It returns the
// exit code: 0 when the health service answers SERVING, 1 otherwise (the
// reason written to stderr), 2 for a usage error.
func ProbeMain(args []string, stderr io.Writer) int {
	if len(args) < 1 || len(args) > 2 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stderr, "usage: receptor-probe unix:///path/to/grpc.sock [service]  (exit 0 when SERVING)")
		return 2
	}
	service := ""
	if len(args) == 2 {
		service = args[1]
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := grpcserve.CheckHealth(ctx, args[0], service); err != nil {
		fmt.Fprintln(stderr, "receptor-probe:", err)
		return 1
	}
	return 0
}
