package grpcserve

import (
	"context"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// ProxiedMetadataKey marks a call that one of our proxies (the REST
// gateway) relays for another client; the value is that client's address.
// A proxy may reach the server over a Unix socket, which must not make its
// remote clients trusted.
const ProxiedMetadataKey = "receptor-proxied-for"

// IsLocalClient reports whether the call in ctx came over a Unix socket
// straight from its client: such clients are local and trusted (work
// signatures are not verified for them, spec control-and-work §5.3).
// In-process, TCP and proxied calls are not.
func IsLocalClient(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil || p.Addr.Network() != "unix" {
		return false
	}
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(ProxiedMetadataKey)) == 0
}
