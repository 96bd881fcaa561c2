package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// UnixSocketClient is a unix-socket-client proxy (docs/protocol.md §11.2): it listens
// on an advertised mesh stream service and bridges every accepted stream to
// a new connection to the Unix socket Filename (not checked at startup).
type UnixSocketClient struct {
	network mesh.PacketNetwork
	cfg     config.UnixSocketClient
	meshTLS *tls.Config
	opts    Options
}

// NewUnixSocketClient checks cfg and resolves its TLS name; nothing is
// bound until Start.
func NewUnixSocketClient(network mesh.PacketNetwork, store *tlsconf.Store, cfg config.UnixSocketClient, opts Options) (*UnixSocketClient, error) {
	fail := func(err error) (*UnixSocketClient, error) {
		return nil, fmt.Errorf("unix-socket-client %s: %w", cfg.Service, err)
	}
	if err := checkService(cfg.Service); err != nil {
		return fail(err)
	}
	if cfg.Filename == "" {
		return fail(errors.New("filename is empty"))
	}
	meshTLS, err := serverTLS(store, cfg.TLS)
	if err != nil {
		return fail(err)
	}
	return &UnixSocketClient{network: network, cfg: cfg, meshTLS: meshTLS, opts: opts.withDefaults()}, nil
}

// Kind implements Proxy.
func (c *UnixSocketClient) Kind() string { return "unix-socket-client" }

// Start implements Proxy.
func (c *UnixSocketClient) Start(ctx context.Context) (func(), error) {
	ln, err := stream.Listen(ctx, c.network, c.cfg.Service, stream.ListenOptions{
		TLS: c.meshTLS, Advertise: true, Logger: c.opts.Logger,
		Tags: map[string]string{"filename": c.cfg.Filename, "type": "Unix Proxy"},
	})
	if err != nil {
		return nil, fmt.Errorf("unix-socket-client: listen on mesh service %q: %w", c.cfg.Service, err)
	}
	log := c.opts.Logger.With("proxy", c.Kind(), "service", c.cfg.Service, "filename", c.cfg.Filename)
	f := &forwarder{ln: ln, opts: c.opts, log: log, dial: localDialer("unix", c.cfg.Filename, nil)}
	return f.start(ctx), nil
}
