package stream

import (
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/receptor-mesh/receptor/services/mesh"
)

// packetConn adapts a mesh datagram socket for a quic.Transport.
//
// quic-go only needs net.PacketConn; it reads every datagram into a
// 1452-byte buffer itself. The no-op buffer setters keep quic-go from
// logging a UDP receive-buffer warning (there is no kernel socket), and the
// type deliberately has no SyscallConn so quic-go never tries socket options.
type packetConn struct {
	mesh.PacketConn
	closed atomic.Bool
	// strict, while dialing, turns "no route to node" into a write error,
	// which makes quic-go fail the dial at once as upstream does (instead
	// of a handshake timeout). Established connections stay lenient so
	// that a short route flap does not end them.
	strict atomic.Bool
}

// routeReporter is a mesh socket that can report local routing failures.
type routeReporter interface {
	SendTo(p []byte, addr net.Addr) (int, error)
}

func newPacketConn(pc mesh.PacketConn) *packetConn { return &packetConn{PacketConn: pc} }

// ReadFrom reports net.ErrClosed once we closed the socket, whatever the
// node returns, so that quic-go's read loop always ends on close.
func (p *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := p.PacketConn.ReadFrom(b)
	if err != nil && p.closed.Load() {
		return 0, nil, net.ErrClosed
	}
	return n, addr, err
}

// WriteTo refuses datagrams that an upstream receiver would truncate; the
// QUIC configuration keeps packets at MaxDatagram, so this is a safety net.
func (p *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if len(b) > maxReadDatagram {
		return 0, fmt.Errorf("stream: QUIC datagram of %d bytes to %s exceeds %d", len(b), addr, maxReadDatagram)
	}
	if rr, ok := p.PacketConn.(routeReporter); ok && p.strict.Load() {
		n, err := rr.SendTo(b, addr)
		if errors.Is(err, mesh.ErrNoRoute) {
			return 0, mesh.ErrNoRoute
		}
		if err != nil && !errors.Is(err, net.ErrClosed) && n > 0 {
			return n, nil // other local drops stay silent, as in WriteTo
		}
		return n, err
	}
	return p.PacketConn.WriteTo(b, addr)
}

func (p *packetConn) Close() error {
	p.closed.Store(true)
	return p.PacketConn.Close()
}

func (p *packetConn) SetReadBuffer(int) error  { return nil }
func (p *packetConn) SetWriteBuffer(int) error { return nil }

// toMeshAddr converts an address reported by a mesh socket or quic-go into
// a mesh.Addr ("node:service"; node IDs contain no ':').
func toMeshAddr(a net.Addr) mesh.Addr {
	m, _ := mesh.AddrOf(a) // a label only: the best reading will do
	return m
}
