package tlsconf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
)

// DefaultClientName is the built-in client config (min TLS 1.2, system
// roots) that exists unless a tls-client of that name is configured.
const DefaultClientName = "default"

// Store holds a node's named TLS configurations. It is immutable after
// NewStore; a configuration reload builds a new Store.
type Store struct {
	servers map[string]*tls.Config
	clients map[string]*tls.Config
}

// NewStore builds every tls-server and tls-client entity for node nodeID.
// The first failing entity aborts with its error. As upstream, a later
// entity replaces an earlier one of the same name (logged as a warning).
func NewStore(nodeID string, servers []ServerOptions, clients []ClientOptions, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{
		servers: make(map[string]*tls.Config, len(servers)),
		clients: map[string]*tls.Config{
			DefaultClientName: NewBaseConfig(),
		},
	}
	for _, o := range servers {
		if o.Name == "" {
			return nil, errors.New("error preparing tls server config: must provide a name")
		}
		cfg, err := NewServerConfig(o, nodeID)
		if err != nil {
			return nil, err
		}
		if _, dup := s.servers[o.Name]; dup {
			logger.Warn("tls-server defined twice; the later one wins", "name", o.Name)
		}
		s.servers[o.Name] = cfg
	}
	userClients := make(map[string]bool, len(clients))
	for _, o := range clients {
		if o.Name == "" {
			return nil, errors.New("error preparing tls client config: must provide a name")
		}
		cfg, err := NewClientConfig(o, nodeID)
		if err != nil {
			return nil, err
		}
		if userClients[o.Name] {
			logger.Warn("tls-client defined twice; the later one wins", "name", o.Name)
		}
		userClients[o.Name] = true
		s.clients[o.Name] = cfg
	}
	return s, nil
}

// Server returns a copy of the named server config. The empty name means
// "no TLS" and returns (nil, nil), so a tls= parameter can be passed through.
func (s *Store) Server(name string) (*tls.Config, error) {
	if name == "" {
		return nil, nil
	}
	cfg, ok := s.servers[name]
	if !ok {
		return nil, fmt.Errorf("unknown TLS config %s", name)
	}
	return cfg.Clone(), nil
}

// Client returns a copy of the named client config, usable as the base for
// ForHost and ForNode. The empty name returns (nil, nil) like Server.
func (s *Store) Client(name string) (*tls.Config, error) {
	if name == "" {
		return nil, nil
	}
	cfg, ok := s.clients[name]
	if !ok {
		return nil, fmt.Errorf("unknown TLS config %s", name)
	}
	return cfg.Clone(), nil
}

// ClientForNode is Client followed by ForNode: the config for a stream to a
// service on node nodeID (remote work, connect, tcp-server tlsclient=).
func (s *Store) ClientForNode(name, nodeID string) (*tls.Config, error) {
	cfg, err := s.Client(name)
	if err != nil || cfg == nil {
		return nil, err
	}
	return ForNode(cfg, nodeID), nil
}

// ClientForHost is Client followed by ForHost: the config for a TLS backend
// (tcp-peer, wss ws-peer) to host.
func (s *Store) ClientForHost(name, host string) (*tls.Config, error) {
	cfg, err := s.Client(name)
	if err != nil || cfg == nil {
		return nil, err
	}
	return ForHost(cfg, host), nil
}
