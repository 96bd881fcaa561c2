package stream

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
)

// memNet is an in-memory mesh for tests: nodes with datagram sockets,
// routing by node+service, "service unknown" unreachables for unbound
// services, bounded per-socket queues (drop when full, like UDP), optional
// random loss, and a record of the largest datagram seen.
type memNet struct {
	mu       sync.Mutex
	nodes    map[string]*memNode
	lossPerM atomic.Int64 // dropped datagrams per million
	maxSize  atomic.Int64
	sent     atomic.Int64
	queueLen int

	tapMu sync.Mutex
	tap   func(from, to mesh.Addr, b []byte) // sees every datagram sent, if set
}

func (n *memNet) setTap(f func(from, to mesh.Addr, b []byte)) {
	n.tapMu.Lock()
	defer n.tapMu.Unlock()
	n.tap = f
}

func newMemNet(queueLen int) *memNet {
	return &memNet{nodes: map[string]*memNode{}, queueLen: queueLen}
}

func (n *memNet) node(id string) *memNode {
	n.mu.Lock()
	defer n.mu.Unlock()
	if nd, ok := n.nodes[id]; ok {
		return nd
	}
	nd := &memNode{net: n, id: id, socks: map[string]*memSock{}, ads: map[string]mesh.ServiceAd{}}
	n.nodes[id] = nd
	return nd
}

func (n *memNet) setLoss(perMillion int64) { n.lossPerM.Store(perMillion) }

type memNode struct {
	net   *memNet
	id    string
	mu    sync.Mutex
	socks map[string]*memSock
	ads   map[string]mesh.ServiceAd
}

func (nd *memNode) NodeID() string { return nd.id }

func (nd *memNode) ListenPacket(service string) (mesh.PacketConn, error) {
	return nd.bind(service, nil)
}

func (nd *memNode) ListenPacketAndAdvertise(service string, ad mesh.ServiceAd) (mesh.PacketConn, error) {
	return nd.bind(service, &ad)
}

func (nd *memNode) advertised(service string) (mesh.ServiceAd, bool) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	ad, ok := nd.ads[service]
	return ad, ok
}

func (nd *memNode) bound(service string) bool {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	_, ok := nd.socks[service]
	return ok
}

func (nd *memNode) numBound() int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return len(nd.socks)
}

const ephemeralAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func (nd *memNode) bind(service string, ad *mesh.ServiceAd) (mesh.PacketConn, error) {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if service == "" {
		b := make([]byte, 8)
		for i := range b {
			k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(ephemeralAlphabet))))
			b[i] = ephemeralAlphabet[k.Int64()]
		}
		service = string(b)
	}
	if _, ok := nd.socks[service]; ok {
		return nil, fmt.Errorf("memnet: service %s already bound on %s", service, nd.id)
	}
	s := &memSock{
		node: nd, svc: service,
		queue:  make(chan memPacket, nd.net.queueLen),
		unr:    make(chan mesh.Unreachable, 16),
		closed: make(chan struct{}),
		dl:     make(chan struct{}),
	}
	nd.socks[service] = s
	if ad != nil {
		nd.ads[service] = *ad
	}
	return s, nil
}

type memPacket struct {
	data []byte
	from mesh.Addr
}

type memSock struct {
	node  *memNode
	svc   string
	queue chan memPacket
	unr   chan mesh.Unreachable

	closeOnce sync.Once
	closed    chan struct{}

	dlMu     sync.Mutex
	deadline time.Time
	dl       chan struct{} // replaced when the deadline changes
}

func (s *memSock) Unreachable() <-chan mesh.Unreachable { return s.unr }

func (s *memSock) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		s.dlMu.Lock()
		deadline, changed := s.deadline, s.dl
		s.dlMu.Unlock()
		var timer <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, nil, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(d)
			defer t.Stop()
			timer = t.C
		}
		select {
		case p := <-s.queue:
			return copy(b, p.data), p.from, nil
		case <-s.closed:
			return 0, nil, net.ErrClosed
		case <-timer:
			return 0, nil, os.ErrDeadlineExceeded
		case <-changed:
		}
	}
}

func (s *memSock) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-s.closed:
		return 0, net.ErrClosed
	default:
	}
	to, ok := addr.(mesh.Addr)
	if !ok {
		return 0, fmt.Errorf("memnet: address %v is not a mesh.Addr", addr)
	}
	n := s.node.net
	for {
		cur := n.maxSize.Load()
		if int64(len(b)) <= cur || n.maxSize.CompareAndSwap(cur, int64(len(b))) {
			break
		}
	}
	n.sent.Add(1)
	n.tapMu.Lock()
	tap := n.tap
	n.tapMu.Unlock()
	if tap != nil {
		tap(mesh.Addr{Node: s.node.id, Service: s.svc}, to, b)
	}
	if loss := n.lossPerM.Load(); loss > 0 {
		k, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
		if k.Int64() < loss {
			return len(b), nil
		}
	}
	n.mu.Lock()
	dst := n.nodes[to.Node]
	n.mu.Unlock()
	if dst == nil {
		return len(b), nil // no route: silently lost, never an unreachable
	}
	dst.mu.Lock()
	sock := dst.socks[to.Service]
	dst.mu.Unlock()
	from := mesh.Addr{Node: s.node.id, Service: s.svc}
	if sock == nil {
		s.node.net.unreachable(dst.id, from, to, mesh.ProblemServiceUnknown)
		return len(b), nil
	}
	p := memPacket{data: append([]byte(nil), b...), from: from}
	select {
	case sock.queue <- p:
	case <-sock.closed:
	default: // queue full: dropped, like UDP
	}
	return len(b), nil
}

// unreachable notifies the sender's socket, as the mesh's unreach service would.
func (n *memNet) unreachable(reportedBy string, from, to mesh.Addr, problem string) {
	n.mu.Lock()
	src := n.nodes[from.Node]
	n.mu.Unlock()
	if src == nil {
		return
	}
	src.mu.Lock()
	sock := src.socks[from.Service]
	src.mu.Unlock()
	if sock == nil {
		return
	}
	u := mesh.Unreachable{ReportedBy: reportedBy, FromNode: from.Node, ToNode: to.Node,
		FromService: from.Service, ToService: to.Service, Problem: problem}
	// The channel is closed together with closed; holding no lock here is
	// fine because sends only race with close through closeOnce below.
	sock.sendUnreachable(u)
}

func (s *memSock) sendUnreachable(u mesh.Unreachable) {
	s.dlMu.Lock() // serialises with Close closing unr
	defer s.dlMu.Unlock()
	select {
	case <-s.closed:
		return
	default:
	}
	select {
	case s.unr <- u:
	default:
	}
}

func (s *memSock) Close() error {
	err := net.ErrClosed
	s.closeOnce.Do(func() {
		err = nil
		s.node.mu.Lock()
		delete(s.node.socks, s.svc)
		delete(s.node.ads, s.svc)
		s.node.mu.Unlock()
		s.dlMu.Lock()
		close(s.closed)
		close(s.unr)
		s.dlMu.Unlock()
	})
	return err
}

func (s *memSock) LocalAddr() net.Addr { return mesh.Addr{Node: s.node.id, Service: s.svc} }

func (s *memSock) SetDeadline(t time.Time) error { return s.SetReadDeadline(t) }

func (s *memSock) SetReadDeadline(t time.Time) error {
	s.dlMu.Lock()
	defer s.dlMu.Unlock()
	s.deadline = t
	close(s.dl)
	s.dl = make(chan struct{})
	return nil
}

func (s *memSock) SetWriteDeadline(time.Time) error { return nil }

var _ mesh.PacketNetwork = (*memNode)(nil)
