// Package stream carries reliable byte streams between mesh services: QUIC
// (RFC 9000, quic-go) runs over mesh datagram sockets exactly as upstream
// Receptor's netceptor does (docs/protocol.md §10), so our listeners
// accept upstream dialers and our dialers reach upstream listeners.
//
// Listen and Dial are the entry points; both return net.Listener / net.Conn
// values whose addresses are mesh.Addr.
//
// As a library: pass any mesh.PacketNetwork (a *mesh.Node) to Listen on
// one node and to Dial on another once the dialer has a route (see the
// package mesh Example). Conn.CloseWrite half-closes; after Close, Wait
// returns once the connection is torn down, since a dialer lingers until
// the peer has all its data (about a second). A user TLS config in
// ListenOptions / DialOptions selects connection type 2; nil uses the
// insecure built-in certificate, as upstream.
package stream

import (
	"time"

	"github.com/quic-go/quic-go"
)

// Wire and timing constants of docs/protocol.md §10.
const (
	// ALPN is the only application protocol spoken inside QUIC.
	ALPN = "netceptor"
	// MaxDatagram is the largest QUIC datagram we emit. Upstream quic-go
	// treats mesh addresses as non-UDP and sends at most 1200 bytes, but
	// reads up to maxReadDatagram. 1400 bytes carry 17 % more per packet
	// (every packet costs the same mesh, syscall and QUIC work) while a
	// mesh message of them (1436 bytes) still crosses a udp link in one
	// 1500-byte IPv4 or IPv6 packet (docs/protocol.md §10.1).
	MaxDatagram = 1400
	// maxReadDatagram is upstream's read-buffer size: anything longer is
	// truncated by upstream receivers, so we refuse to send it at all.
	maxReadDatagram = 1452

	handshakeIdleTimeout = 15 * time.Second
	maxIdleTimeout       = 30 * time.Second
	keepAlivePeriod      = 15 * time.Second
	acceptStreamTimeout  = 60 * time.Second

	// Receive windows. The initial values are upstream's (and the QUIC
	// transport parameters a peer sees, docs/protocol.md §10.2). The maxima bound auto-tuning:
	// upstream allows 6 MiB per stream / 15 MiB per connection. We allow
	// more because a stream over several mesh hops has a large
	// bandwidth-delay product and each connection carries one stream, so the
	// connection window only needs to be a bit larger than the stream's.
	initialStreamWindow = 512 << 10
	initialConnWindow   = 768 << 10
	maxStreamWindow     = 16 << 20
	maxConnWindow       = 24 << 20

	// Application error codes (informational, docs/protocol.md §10.4).
	codeNormalClose      quic.ApplicationErrorCode = 0
	codeError            quic.ApplicationErrorCode = 500
	codeCancelRead       quic.StreamErrorCode      = 499
	reasonNormal                                   = "normal close"
	reasonListenerClosed                           = "Listener Closed"
	reasonAcceptTimeout                            = "Accept Timeout"
	reasonReadData                                 = "Read Data Error"
	reasonServiceUnknown                           = "remote service unknown"
)

// quicConfig returns the QUIC configuration of docs/protocol.md §10.2 for one side.
func quicConfig(dialer bool) *quic.Config {
	c := &quic.Config{
		Versions:                       []quic.Version{quic.Version1},
		HandshakeIdleTimeout:           handshakeIdleTimeout,
		MaxIdleTimeout:                 maxIdleTimeout,
		InitialStreamReceiveWindow:     initialStreamWindow,
		MaxStreamReceiveWindow:         maxStreamWindow,
		InitialConnectionReceiveWindow: initialConnWindow,
		MaxConnectionReceiveWindow:     maxConnWindow,
		MaxIncomingStreams:             100,
		MaxIncomingUniStreams:          100,
		// Fixed-size packets and no PMTUD: the mesh path MTU is unknown
		// (see MaxDatagram).
		InitialPacketSize:       MaxDatagram,
		DisablePathMTUDiscovery: true,
		EnableDatagrams:         false,
	}
	if dialer {
		c.KeepAlivePeriod = keepAlivePeriod
	}
	return c
}
