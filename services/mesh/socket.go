package mesh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

// Socket errors.
var (
	ErrServiceTaken    = errors.New("service already bound")
	ErrServiceReserved = errors.New("service name is reserved")
	ErrServiceName     = errors.New("service name longer than 8 bytes")
	ErrSocketClosed    = net.ErrClosed
	ErrPayloadTooLarge = errors.New("datagram payload too large")
)

type datagram struct {
	from    Addr
	payload []byte
	raw     []byte // the received message payload aliases, if the node owns it; released once read
}

// Socket is a datagram socket bound to a service on the local node. It
// implements PacketConn.
type Socket struct {
	n          *Node
	service    string
	advertised bool
	hops       atomic.Uint32

	recv chan datagram

	mu       sync.Mutex // guards closed and sends on unreach
	closed   bool
	unreach  chan Unreachable
	done     chan struct{}
	deadline deadline
}

// socket is the internal name; *Socket is what callers get.
type socket = Socket

var _ PacketConn = (*Socket)(nil)

// ListenPacket binds service on this node ("" picks an ephemeral name).
func (n *Node) ListenPacket(service string) (PacketConn, error) {
	return n.listen(service, nil)
}

// ListenPacketAndAdvertise binds service and advertises it until the
// socket is closed, when a Cancel is flooded (docs/protocol.md §7.2).
func (n *Node) ListenPacketAndAdvertise(service string, ad ServiceAd) (PacketConn, error) {
	if service == "" {
		return nil, errors.New("listen and advertise: empty service name")
	}
	return n.listen(service, &ad)
}

// ListenSocket is ListenPacket returning the concrete type, which also
// allows SetHopsToLive.
func (n *Node) ListenSocket(service string) (*Socket, error) {
	return n.listen(service, nil)
}

func (n *Node) listen(service string, ad *ServiceAd) (*Socket, error) {
	if len(service) > wire.MaxServiceLen {
		return nil, fmt.Errorf("listen on service %q: %w", service, ErrServiceName)
	}
	if service == servicePing || service == serviceUnreach || service == n.probeService {
		return nil, fmt.Errorf("listen on service %q: %w", service, ErrServiceReserved)
	}
	s := &Socket{
		n: n, advertised: ad != nil,
		recv:    make(chan datagram, n.opts.SocketQueueLen),
		unreach: make(chan Unreachable, unreachQueueLen),
		done:    make(chan struct{}),
	}
	s.deadline.init()
	s.hops.Store(DefaultHopsToLive)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if service == "" {
		for {
			service = wire.RandomName()
			if _, taken := n.sockets[service]; !taken && service != n.probeService {
				break
			}
		}
	} else if _, taken := n.sockets[service]; taken {
		return nil, fmt.Errorf("listen on service %q: %w", service, ErrServiceTaken)
	}
	s.service = service
	n.sockets[service] = s
	if ad != nil {
		n.ownAds[service] = n.withWorkCommandsLocked(*ad)
		n.requestAdsLocked()
	}
	return s, nil
}

// Service returns the bound service name.
func (s *Socket) Service() string { return s.service }

// SetHopsToLive sets the HopsToLive of datagrams sent from this socket.
func (s *Socket) SetHopsToLive(h byte) { s.hops.Store(uint32(h)) }

// deliver queues a datagram; false means the socket is closed (so the
// service counts as unbound). A full queue drops the datagram: a slow
// reader must never stall the session that carried it. raw, when not nil,
// is the received message that payload aliases and the node owns: it is
// queued without a copy and its buffer released once read.
func (s *Socket) deliver(from Addr, payload, raw []byte) bool {
	if raw == nil {
		payload = append([]byte(nil), payload...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	select {
	case s.recv <- datagram{from: from, payload: payload, raw: raw}:
		s.n.stats.datagramsDelivered.Add(1)
	default:
		s.n.stats.drop(DropSocketFull)
		s.n.log.Debug("mesh socket queue full; dropping datagram", "service", s.service, "from", from)
		backends.ReleaseMessage(raw)
	}
	return true
}

// take copies d into p and releases d's buffer.
func (d datagram) take(p []byte) int {
	n := copy(p, d.payload)
	backends.ReleaseMessage(d.raw)
	return n
}

func (s *Socket) notify(u Unreachable) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	select {
	case s.unreach <- u:
	default:
	}
}

// Unreachable implements PacketConn.
func (s *Socket) Unreachable() <-chan Unreachable { return s.unreach }

// ReadFrom implements net.PacketConn.
func (s *Socket) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-s.recv:
		return d.take(p), d.from, nil
	default:
	}
	select {
	case d := <-s.recv:
		return d.take(p), d.from, nil
	case <-s.done:
		return 0, nil, ErrSocketClosed
	case <-s.deadline.wait():
		return 0, nil, os.ErrDeadlineExceeded
	}
}

// WriteTo implements net.PacketConn. addr is an Addr, *Addr, or any
// net.Addr whose String is "node:service". Routing failures are not
// errors (datagrams are unreliable); they are logged. A write waits while
// the first hop's send queue is full, as sendto on a full UDP buffer.
func (s *Socket) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := s.SendTo(p, addr)
	if errors.Is(err, errNotSent) {
		s.n.log.Debug("mesh: datagram not sent", "from", s.service, "to", addr, "err", err)
		return n, nil
	}
	return n, err
}

// errNotSent marks SendTo's local routing failures, which WriteTo hides.
var errNotSent = errors.New("datagram not sent")

// SendTo is WriteTo that also reports local routing failures (errors.Is
// ErrNoRoute) for nodes absent from the topology, as upstream's packet
// conns do: the stream dialer uses it so that dialing an unknown node fails
// at once instead of timing out.
func (s *Socket) SendTo(p []byte, addr net.Addr) (int, error) {
	if addr == nil {
		return 0, errors.New("write to nil address")
	}
	to, err := AddrOf(addr)
	if err != nil {
		return 0, fmt.Errorf("write to %q: not a node:service address", addr.String())
	}
	select {
	case <-s.done:
		return 0, ErrSocketClosed
	default:
	}
	if len(to.Service) > wire.MaxServiceLen {
		return 0, fmt.Errorf("write to %s: %w", to, ErrServiceName)
	}
	if len(p) > wire.MaxDataPayload {
		return 0, fmt.Errorf("write %d bytes to %s: %w (max %d)", len(p), to, ErrPayloadTooLarge, wire.MaxDataPayload)
	}
	if err := s.send(p, to); err != nil {
		if errors.Is(err, ErrNoRoute) && s.n.inTopology(to.Node) {
			// A node we know of whose route is not computed yet (routes
			// follow topology changes after a short coalescing delay):
			// lost like any datagram, so a dial retransmits instead of
			// failing in that window.
			return len(p), fmt.Errorf("%w: %s: route pending", errNotSent, to.Node)
		}
		return len(p), fmt.Errorf("%w: %w", errNotSent, err)
	}
	return len(p), nil
}

// inTopology reports whether another node lists node as a neighbour in the
// known connection costs. A node's own stale entry does not count, so a node
// that went down (its neighbours dropped it) fails fast again.
func (n *Node) inTopology(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for from, conns := range n.topo {
		if _, ok := conns[node]; ok && from != node {
			return true
		}
	}
	return false
}

// send runs p through the pipeline and returns its local error (no route,
// full queue), which WriteTo only logs but ping reports as upstream does.
func (s *Socket) send(p []byte, to Addr) error {
	node := to.Node
	if strings.EqualFold(node, "localhost") {
		node = s.n.id
	}
	return s.n.pipeline(packet{fromNode: s.n.id, toNode: node, fromService: s.service, toService: to.Service,
		hops: byte(s.hops.Load()), payload: p, wait: s.done})
}

// Close unbinds the socket; an advertised one floods a Cancel.
func (s *Socket) Close() error {
	s.closeLocal(true)
	return nil
}

func (s *Socket) closeLocal(cancelAd bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	close(s.unreach)
	s.mu.Unlock()
	n := s.n
	n.mu.Lock()
	if n.sockets[s.service] == s {
		delete(n.sockets, s.service)
	}
	if s.advertised {
		ad := n.ownAds[s.service]
		delete(n.ownAds, s.service)
		if cancelAd && n.ctx.Err() == nil {
			n.cancelAdLocked(s.service, ad)
		}
	}
	n.mu.Unlock()
	s.deadline.stop()
}

// LocalAddr implements net.PacketConn.
func (s *Socket) LocalAddr() net.Addr { return Addr{Node: s.n.id, Service: s.service} }

// SetDeadline implements net.PacketConn; writes only wait for room in
// the first hop's send queue (until Close), so only the
// read deadline matters.
func (s *Socket) SetDeadline(t time.Time) error { return s.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (s *Socket) SetReadDeadline(t time.Time) error {
	s.deadline.set(t)
	return nil
}

// SetWriteDeadline implements net.PacketConn; it is ignored: a write
// waits only while the first hop's send queue is full, until Close.
func (s *Socket) SetWriteDeadline(time.Time) error { return nil }

// deadline is a resettable read deadline: wait returns a channel closed
// once the deadline has passed.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{}
}

func (d *deadline) init() { d.ch = make(chan struct{}) }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	select {
	case <-d.ch:
		d.ch = make(chan struct{}) // expired before: re-arm
	default:
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		return
	}
	ch := d.ch
	d.timer = time.AfterFunc(dur, func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.ch == ch {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
	})
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
}
