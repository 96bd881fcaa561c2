package grpcserve

import (
	"context"

	"google.golang.org/grpc/peer"
)

// IsUnixPeer reports whether the call in ctx arrived over a Unix socket:
// such clients are local and trusted (work signatures are not verified for
// them, spec control-and-work §5.3). In-process and TCP calls are not.
func IsUnixPeer(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	return ok && p.Addr != nil && p.Addr.Network() == "unix"
}
