package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"sync/atomic"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/unixsock"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// UnixSocketServer is a unix-socket-server proxy (docs/protocol.md §11.2): it listens
// on a Unix socket file and bridges every accepted connection to a new mesh
// stream to (RemoteNode, RemoteService).
type UnixSocketServer struct {
	network mesh.PacketNetwork
	cfg     config.UnixSocketServer
	mesh    *tls.Config
	opts    Options
	bound   atomic.Value
}

// NewUnixSocketServer checks cfg and resolves its TLS name; nothing is
// created until Start.
func NewUnixSocketServer(network mesh.PacketNetwork, store *tlsconf.Store, cfg config.UnixSocketServer, opts Options) (*UnixSocketServer, error) {
	fail := func(err error) (*UnixSocketServer, error) {
		return nil, fmt.Errorf("unix-socket-server %s: %w", cfg.Filename, err)
	}
	if cfg.Filename == "" {
		return fail(errors.New("filename is empty"))
	}
	if cfg.Permissions < 0 || cfg.Permissions > 0o7777 {
		return fail(fmt.Errorf("permissions %#o: not a file mode", cfg.Permissions))
	}
	if err := checkRemote(cfg.RemoteNode, cfg.RemoteService); err != nil {
		return fail(err)
	}
	meshTLS, err := clientTLSForNode(store, cfg.TLS, resolveNode(network, cfg.RemoteNode))
	if err != nil {
		return fail(err)
	}
	return &UnixSocketServer{network: network, cfg: cfg, mesh: meshTLS, opts: opts.withDefaults()}, nil
}

// Kind implements Proxy.
func (s *UnixSocketServer) Kind() string { return "unix-socket-server" }

// Addr is the bound socket address once Start succeeded, else nil.
func (s *UnixSocketServer) Addr() net.Addr { return loadAddr(&s.bound) }

// Start implements Proxy. As upstream, it holds an exclusive lock on
// <filename>.lock while running (a second proxy on the same file fails),
// replaces an existing file of that name and applies Permissions to the
// socket (only the 0777 bits take effect).
func (s *UnixSocketServer) Start(ctx context.Context) (func(), error) {
	name := s.cfg.Filename
	ln, err := unixsock.Listen(name, fs.FileMode(s.cfg.Permissions)&fs.ModePerm)
	if err != nil {
		return nil, fmt.Errorf("unix-socket-server: %w", err)
	}
	s.bound.Store(ln.Addr())
	log := s.opts.Logger.With("proxy", s.Kind(), "filename", name,
		"remote", mesh.Addr{Node: s.cfg.RemoteNode, Service: s.cfg.RemoteService})
	f := &forwarder{
		ln: ln, opts: s.opts, log: log,
		dial: meshDialer(s.network, s.cfg.RemoteNode, s.cfg.RemoteService, s.mesh, s.opts),
	}
	return f.start(ctx), nil
}
