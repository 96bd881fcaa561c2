//go:build !unix

package backends

import (
	"context"
	"errors"
	"net"
)

// Elsewhere every datagram of a udp-listener goes through its
// demultiplexing loop.
const peerSockets = false

func listenUDP(ctx context.Context, address string) (net.PacketConn, error) {
	var lc net.ListenConfig
	return lc.ListenPacket(ctx, "udp", address)
}

func dialPeerSocket(_, _ *net.UDPAddr) (*net.UDPConn, error) {
	return nil, errors.New("per-peer udp sockets are not supported on this platform")
}
