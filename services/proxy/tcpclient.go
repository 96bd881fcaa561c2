package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// TCPClient is a tcp-client proxy (docs/protocol.md §11.2): it listens on an
// advertised mesh stream service and bridges every accepted stream to a
// new local TCP connection to Address.
type TCPClient struct {
	network mesh.PacketNetwork
	cfg     config.TCPClient
	meshTLS *tls.Config // user TLS on the mesh listener (ConnType 2), nil: ConnType 1
	local   *tls.Config // TLS on the local connection, nil for plain TCP
	opts    Options
}

// NewTCPClient checks cfg and resolves its TLS names; nothing is bound
// until Start.
func NewTCPClient(network mesh.PacketNetwork, store *tlsconf.Store, cfg config.TCPClient, opts Options) (*TCPClient, error) {
	fail := func(err error) (*TCPClient, error) { return nil, fmt.Errorf("tcp-client %s: %w", cfg.Service, err) }
	if err := checkService(cfg.Service); err != nil {
		return fail(err)
	}
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return fail(fmt.Errorf("address %q: %w", cfg.Address, err))
	}
	meshTLS, err := serverTLS(store, cfg.TLSServer)
	if err != nil {
		return fail(err)
	}
	local, err := clientTLSForHost(store, cfg.TLSClient, host)
	if err != nil {
		return fail(err)
	}
	return &TCPClient{network: network, cfg: cfg, meshTLS: meshTLS, local: local, opts: opts.withDefaults()}, nil
}

// Kind implements Proxy.
func (c *TCPClient) Kind() string { return "tcp-client" }

// Start implements Proxy.
func (c *TCPClient) Start(ctx context.Context) (func(), error) {
	ln, err := stream.Listen(ctx, c.network, c.cfg.Service, stream.ListenOptions{
		TLS: c.meshTLS, Advertise: true, Logger: c.opts.Logger,
		Tags: map[string]string{"address": c.cfg.Address, "type": "TCP Proxy"},
	})
	if err != nil {
		return nil, fmt.Errorf("tcp-client: listen on mesh service %q: %w", c.cfg.Service, err)
	}
	log := c.opts.Logger.With("proxy", c.Kind(), "service", c.cfg.Service, "address", c.cfg.Address)
	f := &forwarder{ln: ln, opts: c.opts, log: log, dial: localDialer("tcp", c.cfg.Address, c.local)}
	return f.start(ctx), nil
}

// localDialer dials network/address per call (resolving it each time, as
// upstream), with an optional TLS client handshake bounded by ctx.
func localDialer(network, address string, tlsCfg *tls.Config) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, fmt.Errorf("dial %s %s: %w", network, address, err)
		}
		if tlsCfg == nil {
			return conn, nil
		}
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", address, err)
		}
		return tc, nil
	}
}

func checkService(service string) error {
	if service == "" || len(service) > wire.MaxServiceLen {
		return fmt.Errorf("service %q: must be 1 to 8 bytes", service)
	}
	return nil
}
