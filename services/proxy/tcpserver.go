package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// TCPServer is a tcp-server proxy (docs/protocol.md §11.2): it listens on local TCP and
// bridges every accepted connection to a new mesh stream to
// (RemoteNode, RemoteService).
type TCPServer struct {
	network mesh.PacketNetwork
	cfg     config.TCPServer
	addr    string
	local   *tls.Config // TLS on the local listener, nil for plain TCP
	mesh    *tls.Config // user TLS on the mesh stream, nil for the insecure scheme
	opts    Options
	bound   atomic.Value // net.Addr of the listener, set by Start
}

// NewTCPServer checks cfg and resolves its TLS names; nothing is bound
// until Start.
func NewTCPServer(network mesh.PacketNetwork, store *tlsconf.Store, cfg config.TCPServer, opts Options) (*TCPServer, error) {
	fail := func(err error) (*TCPServer, error) { return nil, fmt.Errorf("tcp-server port %d: %w", cfg.Port, err) }
	if err := checkRemote(cfg.RemoteNode, cfg.RemoteService); err != nil {
		return fail(err)
	}
	local, err := serverTLS(store, cfg.TLSServer)
	if err != nil {
		return fail(err)
	}
	meshTLS, err := clientTLSForNode(store, cfg.TLSClient, resolveNode(network, cfg.RemoteNode))
	if err != nil {
		return fail(err)
	}
	return &TCPServer{
		network: network, cfg: cfg, addr: net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Port)),
		local: local, mesh: meshTLS, opts: opts.withDefaults(),
	}, nil
}

// Kind implements Proxy.
func (s *TCPServer) Kind() string { return "tcp-server" }

// Start implements Proxy.
func (s *TCPServer) Start(ctx context.Context) (func(), error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("tcp-server: listen on %s: %w", s.addr, err)
	}
	s.bound.Store(ln.Addr())
	if s.local != nil {
		// The handshake runs on first I/O, inside the bridge.
		ln = tls.NewListener(ln, s.local)
	}
	log := s.opts.Logger.With("proxy", s.Kind(), "listen", ln.Addr().String(),
		"remote", mesh.Addr{Node: s.cfg.RemoteNode, Service: s.cfg.RemoteService})
	f := &forwarder{ln: ln, opts: s.opts, log: log, dial: meshDialer(s.network, s.cfg.RemoteNode, s.cfg.RemoteService, s.mesh, s.opts)}
	return f.start(ctx), nil
}

// Addr is the bound local address once Start succeeded, else nil.
func (s *TCPServer) Addr() net.Addr { return loadAddr(&s.bound) }

func loadAddr(v *atomic.Value) net.Addr {
	a, _ := v.Load().(net.Addr)
	return a
}

// meshDialer opens one mesh stream per call.
func meshDialer(network mesh.PacketNetwork, node, service string, tlsCfg *tls.Config, opts Options) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		return stream.Dial(ctx, network, node, service, stream.DialOptions{TLS: tlsCfg, Logger: opts.Logger})
	}
}

// resolveNode maps "localhost" to our own node ID, as the mesh does when
// sending (docs/protocol.md §11.1).
func resolveNode(network mesh.PacketNetwork, node string) string {
	if strings.EqualFold(node, "localhost") {
		return network.NodeID()
	}
	return node
}

func checkRemote(node, service string) error {
	if node == "" {
		return fmt.Errorf("remotenode is empty")
	}
	if service == "" || len(service) > wire.MaxServiceLen {
		return fmt.Errorf("remoteservice %q: must be 1 to 8 bytes", service)
	}
	return nil
}
