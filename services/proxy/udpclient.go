package proxy

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// UDPClient is a udp-client proxy (docs/protocol.md §11.3): it binds an advertised
// mesh datagram service; each mesh source gets its own connected local UDP
// socket to Address, and what that socket receives goes back to the source.
type UDPClient struct {
	network mesh.PacketNetwork
	cfg     config.UDPClient
	opts    Options
	relay   atomic.Pointer[relay]
}

// NewUDPClient checks cfg; the address is resolved and the service bound
// by Start.
func NewUDPClient(network mesh.PacketNetwork, cfg config.UDPClient, opts Options) (*UDPClient, error) {
	if err := checkService(cfg.Service); err != nil {
		return nil, fmt.Errorf("udp-client %s: %w", cfg.Service, err)
	}
	return &UDPClient{network: network, cfg: cfg, opts: opts.withDefaults()}, nil
}

// Kind implements Proxy.
func (c *UDPClient) Kind() string { return "udp-client" }

// Start implements Proxy. The address is resolved once, here, as upstream.
func (c *UDPClient) Start(ctx context.Context) (func(), error) {
	raddr, err := net.ResolveUDPAddr("udp", c.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("udp-client %s: resolve %q: %w", c.cfg.Service, c.cfg.Address, err)
	}
	pc, err := c.network.ListenPacketAndAdvertise(c.cfg.Service, mesh.ServiceAd{
		ConnType: mesh.ConnTypeDatagram,
		Tags:     map[string]string{"address": c.cfg.Address, "type": "UDP Proxy"},
	})
	if err != nil {
		return nil, fmt.Errorf("udp-client: bind mesh service %q: %w", c.cfg.Service, err)
	}
	log := c.opts.Logger.With("proxy", c.Kind(), "service", c.cfg.Service, "address", c.cfg.Address)
	open := func(net.Addr) (backend, error) {
		uc, err := net.DialUDP("udp", nil, raddr)
		if err != nil {
			return nil, fmt.Errorf("dial udp %s: %w", raddr, err)
		}
		return &udpBackend{c: uc}, nil
	}
	r := newRelay(pc, open, c.opts, log)
	c.relay.Store(r)
	return r.start(ctx), nil
}

// udpBackend is a udp-client session: one connected local UDP socket.
type udpBackend struct{ c *net.UDPConn }

func (b *udpBackend) send(p []byte) error {
	_, err := b.c.Write(p)
	return err
}

func (b *udpBackend) recv(buf []byte) (int, bool, error) {
	n, err := b.c.Read(buf)
	return n, false, err
}

func (b *udpBackend) setReadDeadline(t time.Time) error { return b.c.SetReadDeadline(t) }
func (b *udpBackend) close()                            { _ = b.c.Close() }
