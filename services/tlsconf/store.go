package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
)

// DefaultClientName is the built-in client config (min TLS 1.2, system
// roots) that exists unless a tls-client of that name is configured.
const DefaultClientName = "default"

// Store holds a node's named TLS configurations. Reload re-reads their
// certificates, keys and CA bundles; what Server and Client hand out
// follows it without being asked again (see Server and Client), so a
// listener or connection that outlives a reload needs no restart and its
// established connections are not touched.
type Store struct {
	nodeID string
	log    *slog.Logger
	state  atomic.Pointer[storeState]
}

// storeState is one generation of the store: every named config built from
// the files as they were when it was read.
type storeState struct {
	servers map[string]*named
	clients map[string]*named
}

// named is one built configuration; digest covers its options and the
// bytes of every file it read, so an unchanged one is kept by Reload.
type named struct {
	cfg    *tls.Config
	digest [sha256.Size]byte
}

// NewStore builds every tls-server and tls-client entity for node nodeID.
// The first failing entity aborts with its error. As upstream, a later
// entity replaces an earlier one of the same name (logged as a warning).
func NewStore(nodeID string, servers []ServerOptions, clients []ClientOptions, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{nodeID: nodeID, log: logger}
	st, err := s.build(servers, clients, nil, true)
	if err != nil {
		return nil, err
	}
	s.state.Store(st)
	return s, nil
}

// Reload re-reads every configuration from servers and clients (the same
// names and options as before, with files that may have changed) and, if
// all of them build, makes them current; on an error the store is
// unchanged. It returns the names ("tls-server NAME", "tls-client NAME")
// whose files or options changed.
func (s *Store) Reload(servers []ServerOptions, clients []ClientOptions) ([]string, error) {
	old := s.state.Load()
	st, err := s.build(servers, clients, old, false)
	if err != nil {
		return nil, err
	}
	var changed []string
	for name, n := range st.servers {
		if old.servers[name] != n {
			changed = append(changed, "tls-server "+name)
		}
	}
	for name, n := range st.clients {
		if old.clients[name] != n && name != DefaultClientName {
			changed = append(changed, "tls-client "+name)
		}
	}
	slices.Sort(changed)
	s.state.Store(st)
	return changed, nil
}

// build makes a generation; entries whose digest equals old's are reused.
func (s *Store) build(servers []ServerOptions, clients []ClientOptions, old *storeState, warn bool) (*storeState, error) {
	st := &storeState{
		servers: make(map[string]*named, len(servers)),
		clients: map[string]*named{DefaultClientName: {cfg: NewBaseConfig()}},
	}
	if old != nil {
		st.clients[DefaultClientName] = old.clients[DefaultClientName]
	}
	reuse := func(prev *named, digest [sha256.Size]byte) *named {
		if prev != nil && prev.digest == digest {
			return prev
		}
		return nil
	}
	for _, o := range servers {
		if o.Name == "" {
			return nil, errors.New("error preparing tls server config: must provide a name")
		}
		digest := optionsDigest(o, o.Cert, o.Key, o.ClientCAs)
		var prev *named
		if old != nil {
			prev = reuse(old.servers[o.Name], digest)
		}
		if prev == nil {
			cfg, err := NewServerConfig(o, s.nodeID)
			if err != nil {
				return nil, err
			}
			prev = &named{cfg: cfg, digest: digest}
		}
		if _, dup := st.servers[o.Name]; dup && warn {
			s.log.Warn("tls-server defined twice; the later one wins", "name", o.Name)
		}
		st.servers[o.Name] = prev
	}
	userClients := make(map[string]bool, len(clients))
	for _, o := range clients {
		if o.Name == "" {
			return nil, errors.New("error preparing tls client config: must provide a name")
		}
		digest := optionsDigest(o, o.Cert, o.Key, o.RootCAs)
		var prev *named
		if old != nil {
			prev = reuse(old.clients[o.Name], digest)
		}
		if prev == nil {
			cfg, err := NewClientConfig(o, s.nodeID)
			if err != nil {
				return nil, err
			}
			prev = &named{cfg: cfg, digest: digest}
		}
		if userClients[o.Name] && warn {
			s.log.Warn("tls-client defined twice; the later one wins", "name", o.Name)
		}
		userClients[o.Name] = true
		st.clients[o.Name] = prev
	}
	return st, nil
}

// optionsDigest hashes opts and the contents of files (a file that cannot
// be read hashes its error: building the config then reports it).
func optionsDigest(opts any, files ...string) [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%#v\n", opts)
	for _, f := range files {
		if f == "" {
			h.Write([]byte{0})
			continue
		}
		data, err := readBounded(f)
		if err != nil {
			fmt.Fprintf(h, "error %v\n", err)
			continue
		}
		fmt.Fprintf(h, "%d\n", len(data))
		h.Write(data)
	}
	var d [sha256.Size]byte
	h.Sum(d[:0])
	return d
}

// Server returns a copy of the named server config. The empty name means
// "no TLS" and returns (nil, nil), so a tls= parameter can be passed through.
//
// The copy follows Reload: once the named config has changed, each new
// handshake gets the current one from GetConfigForClient. A caller that
// adjusts the copy for its protocol (ALPN, cipher suites...) must do it
// with Derive, so that the adjustment also applies to those.
func (s *Store) Server(name string) (*tls.Config, error) {
	if name == "" {
		return nil, nil
	}
	n, ok := s.state.Load().servers[name]
	if !ok {
		return nil, fmt.Errorf("unknown TLS config %s", name)
	}
	cfg := n.cfg.Clone()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cur := s.state.Load().servers[name]
		if cur == nil || cur == n {
			return nil, nil // unchanged: the config itself
		}
		return cur.cfg.Clone(), nil
	}
	return cfg, nil
}

// Client returns a copy of the named client config, usable as the base for
// ForHost and ForNode. The empty name returns (nil, nil) like Server.
//
// The copy presents the current client certificate of the name at every
// handshake (after a Reload too); its trusted roots and pins are those of
// the call: callers that keep a config across dials should ask again per
// dial to follow a changed CA bundle.
func (s *Store) Client(name string) (*tls.Config, error) {
	if name == "" {
		return nil, nil
	}
	n, ok := s.state.Load().clients[name]
	if !ok {
		return nil, fmt.Errorf("unknown TLS config %s", name)
	}
	cfg := n.cfg.Clone()
	if len(cfg.Certificates) > 0 {
		cfg.Certificates = nil
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cur := s.state.Load().clients[name]
			if cur == nil || len(cur.cfg.Certificates) == 0 {
				cur = n
			}
			cert := cur.cfg.Certificates[0]
			return &cert, nil
		}
	}
	return cfg, nil
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

// Derive returns a copy of cfg with adjust applied, also to the configs
// that cfg's GetConfigForClient chooses per connection (Store.Server's
// copies choose the current config after a Reload). Every caller that
// adjusts a server config it got from a Store uses it; adjust must not set
// GetConfigForClient.
func Derive(cfg *tls.Config, adjust func(*tls.Config)) *tls.Config {
	c := cloneOrEmpty(cfg)
	adjust(c)
	if cfg != nil && cfg.GetConfigForClient != nil && c.GetConfigForClient != nil {
		get := cfg.GetConfigForClient
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			per, err := get(hello)
			if err != nil || per == nil {
				return per, err
			}
			per = per.Clone()
			adjust(per)
			return per, nil
		}
	}
	return c
}
