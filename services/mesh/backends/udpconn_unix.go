//go:build unix

package backends

import (
	"context"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerSockets: a udp-listener gives each session a socket of its own,
// bound to the listener's address and connected to the peer (see
// listenUDP).
const peerSockets = true

// setReusePort sets SO_REUSEPORT, which lets the listener's socket and its
// sessions' connected sockets share one address.
func setReusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// listenUDP binds the listener's socket with SO_REUSEPORT. The kernel
// hands a datagram to the socket connected to its source when there is
// one, so each session can read its own peer's datagrams without the
// listener's demultiplexing loop in between. A socket of another process
// could join the same address only with SO_REUSEPORT set and the same
// user ID; to keep "address already in use" for everyone else (a second
// node configured with the same port), the address is first bound
// without the option, and that probe fails if anything holds it.
func listenUDP(ctx context.Context, address string) (net.PacketConn, error) {
	var plain net.ListenConfig
	probe, err := plain.ListenPacket(ctx, "udp", address)
	if err != nil {
		return nil, err
	}
	bound := probe.LocalAddr().String()
	_ = probe.Close()
	lc := net.ListenConfig{Control: setReusePort}
	return lc.ListenPacket(ctx, "udp", bound)
}

// dialPeerSocket makes a session's own socket: bound to local, the
// listener's address, and connected to peer.
func dialPeerSocket(local, peer *net.UDPAddr) (*net.UDPConn, error) {
	network := "udp6"
	if peer.IP.To4() != nil {
		network = "udp4"
	}
	d := net.Dialer{LocalAddr: local, Control: setReusePort}
	c, err := d.Dial(network, peer.String())
	if err != nil {
		return nil, err
	}
	return c.(*net.UDPConn), nil
}
