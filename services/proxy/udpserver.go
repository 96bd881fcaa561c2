package proxy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// UDPServer is a udp-server proxy (docs/protocol.md §11.3): it listens on local UDP;
// each local source gets its own unadvertised mesh socket on a fresh
// ephemeral service, which sends that source's datagrams to
// (RemoteNode, RemoteService) and returns the replies from exactly there.
type UDPServer struct {
	network mesh.PacketNetwork
	cfg     config.UDPServer
	addr    string
	remote  mesh.Addr // with "localhost" resolved, to match reply origins
	opts    Options
	bound   atomic.Value
	relay   atomic.Pointer[relay]
}

// NewUDPServer checks cfg; nothing is bound until Start.
func NewUDPServer(network mesh.PacketNetwork, cfg config.UDPServer, opts Options) (*UDPServer, error) {
	if err := checkRemote(cfg.RemoteNode, cfg.RemoteService); err != nil {
		return nil, fmt.Errorf("udp-server port %d: %w", cfg.Port, err)
	}
	return &UDPServer{
		network: network, cfg: cfg, addr: net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Port)),
		remote: mesh.Addr{Node: resolveNode(network, cfg.RemoteNode), Service: cfg.RemoteService},
		opts:   opts.withDefaults(),
	}, nil
}

// Kind implements Proxy.
func (s *UDPServer) Kind() string { return "udp-server" }

// Addr is the bound local address once Start succeeded, else nil.
func (s *UDPServer) Addr() net.Addr { return loadAddr(&s.bound) }

// Start implements Proxy.
func (s *UDPServer) Start(ctx context.Context) (func(), error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("udp-server: listen on %s: %w", s.addr, err)
	}
	s.bound.Store(pc.LocalAddr())
	log := s.opts.Logger.With("proxy", s.Kind(), "listen", pc.LocalAddr().String(), "remote", s.remote)
	open := func(net.Addr) (backend, error) {
		mpc, err := s.network.ListenPacket("")
		if err != nil {
			return nil, fmt.Errorf("bind ephemeral mesh service: %w", err)
		}
		return &meshBackend{pc: mpc, remote: s.remote}, nil
	}
	r := newRelay(pc, open, s.opts, log)
	s.relay.Store(r)
	return r.start(ctx), nil
}

// meshBackend is a udp-server session: one ephemeral mesh socket.
type meshBackend struct {
	pc     mesh.PacketConn
	remote mesh.Addr
}

func (b *meshBackend) send(p []byte) error {
	_, err := b.pc.WriteTo(p, b.remote)
	return err
}

// recv drops datagrams from anyone but the configured remote service.
// Upstream compares the configured node name, which drops every reply
// with remotenode=localhost; we compare the resolved node ID.
func (b *meshBackend) recv(buf []byte) (int, bool, error) {
	n, from, err := b.pc.ReadFrom(buf)
	if err != nil {
		return 0, false, err
	}
	a, ok := from.(mesh.Addr)
	return n, !ok || a != b.remote, nil
}

func (b *meshBackend) setReadDeadline(t time.Time) error { return b.pc.SetReadDeadline(t) }
func (b *meshBackend) close()                            { _ = b.pc.Close() }
