package meshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// MaxDatagram is the largest datagram payload the mesh carries.
const MaxDatagram = 65499

// unreachQueue bounds undelivered unreachable notices; more are dropped,
// as the mesh socket does.
const unreachQueue = 16

// ListenPacketOptions configure ListenPacket.
type ListenPacketOptions struct {
	Advertise bool
	Tags      map[string]string
}

// PacketConn is a datagram socket on the router's node, carried by a
// PacketSocket call. It implements mesh.PacketConn. WriteTo never waits for
// the mesh (datagrams are unreliable); it only waits for gRPC flow control.
type PacketConn struct {
	s      meshv1.MeshService_PacketSocketClient
	cancel context.CancelFunc
	local  mesh.Addr

	packets chan *meshv1.Packet
	unreach chan mesh.Unreachable
	done    chan struct{} // the call ended
	err     error         // why; valid after done
	closing chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	deadlines
	wmu  sync.Mutex
	req  *meshv1.PacketSocketRequest
	send *meshv1.PacketSend
}

var _ mesh.PacketConn = (*PacketConn)(nil)

// ListenPacket binds a datagram socket to service ("" picks an ephemeral
// name). ctx bounds the setup only.
func (c *Client) ListenPacket(ctx context.Context, service string, opts ListenPacketOptions) (*PacketConn, error) {
	fail := func(err error) (*PacketConn, error) {
		return nil, fmt.Errorf("meshclient: listen packet on %q: %w", service, err)
	}
	cctx, cancel, setupDone := callContext(ctx)
	s, err := c.mc.PacketSocket(cctx)
	if err != nil {
		cancel()
		return fail(setupErr(ctx, err))
	}
	if err := s.Send(&meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Bind{Bind: &meshv1.PacketBind{
		Service: service, Advertise: opts.Advertise, Tags: opts.Tags,
	}}}); err != nil {
		_, rerr := s.Recv()
		cancel()
		return fail(setupErr(ctx, firstErr(rerr, err)))
	}
	resp, err := s.Recv()
	if err == nil && resp.GetBound() == nil {
		err = errors.New("router did not answer with bound")
	}
	if err != nil || !setupDone() {
		cancel()
		return fail(setupErr(ctx, err))
	}
	send := &meshv1.PacketSend{}
	p := &PacketConn{
		s: s, cancel: cancel,
		local:     mesh.Addr{Node: resp.GetBound().GetNode(), Service: resp.GetBound().GetService()},
		packets:   make(chan *meshv1.Packet),
		unreach:   make(chan mesh.Unreachable, unreachQueue),
		done:      make(chan struct{}),
		closing:   make(chan struct{}),
		deadlines: newDeadlines(),
		req:       &meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Send{Send: send}},
		send:      send,
	}
	p.wg.Go(p.readLoop)
	return p, nil
}

// readLoop takes one packet at a time; while ReadFrom is not called the
// router's bounded queue fills and then drops, never the mesh.
func (p *PacketConn) readLoop() {
	defer close(p.done)
	defer close(p.unreach)
	for {
		resp, err := p.s.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the router closed the socket")
			}
			p.err = err
			return
		}
		switch m := resp.GetMsg().(type) {
		case *meshv1.PacketSocketResponse_Packet:
			select {
			case p.packets <- m.Packet:
			case <-p.closing:
				return
			}
		case *meshv1.PacketSocketResponse_Unreachable:
			u := m.Unreachable
			select {
			case p.unreach <- mesh.Unreachable{
				ReportedBy: u.GetReportedBy(), FromNode: u.GetFromNode(), ToNode: u.GetToNode(),
				FromService: u.GetFromService(), ToService: u.GetToService(), Problem: u.GetProblem(),
			}:
			default:
			}
		}
	}
}

// ReadFrom implements net.PacketConn; addr is a mesh.Addr. A payload longer
// than b is truncated, as with UDP.
func (p *PacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if isClosed(p.closing) {
		return 0, nil, p.opError("read", nil, net.ErrClosed)
	}
	if p.rdl.passed() {
		return 0, nil, p.opError("read", nil, os.ErrDeadlineExceeded)
	}
	select {
	case pkt := <-p.packets:
		return copy(b, pkt.GetData()), mesh.Addr{Node: pkt.GetFromNode(), Service: pkt.GetFromService()}, nil
	case <-p.rdl.wait():
		return 0, nil, p.opError("read", nil, os.ErrDeadlineExceeded)
	case <-p.closing:
		return 0, nil, p.opError("read", nil, net.ErrClosed)
	case <-p.done:
		return 0, nil, p.opError("read", nil, p.err)
	}
}

// WriteTo implements net.PacketConn. addr is a mesh.Addr or any net.Addr
// whose String is "node:service". The write deadline is checked when the
// call starts.
func (p *PacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	to, err := toMeshAddr(addr)
	if err != nil {
		return 0, p.opError("write", addr, err)
	}
	if len(b) > MaxDatagram {
		return 0, p.opError("write", addr, fmt.Errorf("%d bytes exceeds the datagram limit of %d", len(b), MaxDatagram))
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	switch {
	case isClosed(p.closing):
		return 0, p.opError("write", addr, net.ErrClosed)
	case p.wdl.passed():
		return 0, p.opError("write", addr, os.ErrDeadlineExceeded)
	}
	p.send.Node, p.send.Service, p.send.Data = to.Node, to.Service, b
	err = p.s.Send(p.req)
	p.send.Data = nil
	if err != nil {
		if errors.Is(err, io.EOF) {
			<-p.done // Recv has the status that ended the call
			err = p.err
		}
		return 0, p.opError("write", addr, err)
	}
	return len(b), nil
}

// Unreachable implements mesh.PacketConn.
func (p *PacketConn) Unreachable() <-chan mesh.Unreachable { return p.unreach }

// Close ends the call; the router unbinds the service.
func (p *PacketConn) Close() error {
	p.once.Do(func() {
		close(p.closing)
		p.cancel()
		p.wg.Wait()
		p.deadlines.stop()
	})
	return nil
}

// LocalAddr is the bound mesh address.
func (p *PacketConn) LocalAddr() net.Addr { return p.local }

func (p *PacketConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: mesh.Network, Source: p.local, Addr: addr, Err: err}
}

func toMeshAddr(addr net.Addr) (mesh.Addr, error) { return mesh.AddrOf(addr) }
