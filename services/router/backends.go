package router

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// backendSpec is one configured backend with the session options the node
// applies to it.
type backendSpec struct {
	// name is the entity and its address, for errors ("tcp-listener 2222");
	// key is the entity's kind and canonical parameters: reload keeps a
	// running backend whose key is unchanged.
	name, key string
	backend   backends.Backend
	opts      mesh.BackendOptions
}

// buildBackends turns the backend entities of cfg into backends, in the
// order of the configuration. Nothing is bound or dialed yet.
func buildBackends(cfg *config.Config, store *tlsconf.Store, log *slog.Logger) ([]backendSpec, error) {
	var specs []backendSpec
	var name, key string // of the entity at hand, set before add
	add := func(b backends.Backend, opts mesh.BackendOptions) {
		specs = append(specs, backendSpec{name: name, key: key, backend: b, opts: opts})
	}
	entity := func(kind, addr string, v any) { name, key = kind+" "+addr, kind+" "+entityKey(v) }

	for _, l := range cfg.TCPListeners {
		entity("tcp-listener", strconv.Itoa(l.Port), l)
		tlsCfg, err := store.Server(l.TLS)
		if err != nil {
			return nil, fmt.Errorf("tcp-listener %d: %w", l.Port, err)
		}
		b, err := backends.NewTCPListener(backends.TCPListenerOptions{
			Address: hostPort(l.BindAddr, l.Port), TLS: tlsCfg, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("tcp-listener %d: %w", l.Port, err)
		}
		add(b, listenerOptions(l.Cost, l.NodeCost, l.AllowedPeers, l.TLS, cfg))
	}
	for _, p := range cfg.TCPPeers {
		entity("tcp-peer", p.Address, p)
		host, _, err := net.SplitHostPort(p.Address)
		if err != nil {
			return nil, fmt.Errorf("tcp-peer %s: %w", p.Address, err)
		}
		tlsCfg, err := store.ClientForHost(p.TLS, host)
		if err != nil {
			return nil, fmt.Errorf("tcp-peer %s: %w", p.Address, err)
		}
		b, err := backends.NewTCPDialer(backends.TCPDialerOptions{
			Address: p.Address, Redial: p.Redial, TLS: tlsCfg, Logger: log,
			CurrentTLS: currentClient(store, p.TLS, host),
		})
		if err != nil {
			return nil, fmt.Errorf("tcp-peer %s: %w", p.Address, err)
		}
		add(b, mesh.BackendOptions{Cost: p.Cost, AllowedPeers: p.AllowedPeers})
	}
	for _, l := range cfg.UDPListeners {
		entity("udp-listener", strconv.Itoa(l.Port), l)
		b, err := backends.NewUDPListener(backends.UDPListenerOptions{
			Address: hostPort(l.BindAddr, l.Port), Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("udp-listener %d: %w", l.Port, err)
		}
		add(b, mesh.BackendOptions{Cost: l.Cost, NodeCost: l.NodeCost, AllowedPeers: l.AllowedPeers})
	}
	for _, p := range cfg.UDPPeers {
		entity("udp-peer", p.Address, p)
		b, err := backends.NewUDPDialer(backends.UDPDialerOptions{Address: p.Address, Redial: p.Redial, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("udp-peer %s: %w", p.Address, err)
		}
		add(b, mesh.BackendOptions{Cost: p.Cost, AllowedPeers: p.AllowedPeers})
	}
	for _, l := range cfg.WSListeners {
		entity("ws-listener", strconv.Itoa(l.Port), l)
		tlsCfg, err := store.Server(l.TLS)
		if err != nil {
			return nil, fmt.Errorf("ws-listener %d: %w", l.Port, err)
		}
		b, err := backends.NewWebsocketListener(backends.WebsocketListenerOptions{
			Address: hostPort(l.BindAddr, l.Port), Path: l.Path, TLS: tlsCfg, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("ws-listener %d: %w", l.Port, err)
		}
		add(b, listenerOptions(l.Cost, l.NodeCost, l.AllowedPeers, l.TLS, cfg))
	}
	for _, p := range cfg.WSPeers {
		entity("ws-peer", p.Address, p)
		u, err := url.Parse(p.Address)
		if err != nil {
			return nil, fmt.Errorf("ws-peer %s: %w", p.Address, err)
		}
		tlsCfg, err := store.ClientForHost(p.TLS, u.Hostname())
		if err != nil {
			return nil, fmt.Errorf("ws-peer %s: %w", p.Address, err)
		}
		b, err := backends.NewWebsocketDialer(backends.WebsocketDialerOptions{
			URL: p.Address, Redial: p.Redial, TLS: tlsCfg, ExtraHeader: p.ExtraHeader, Logger: log,
			CurrentTLS: currentClient(store, p.TLS, u.Hostname()),
		})
		if err != nil {
			return nil, fmt.Errorf("ws-peer %s: %w", p.Address, err)
		}
		add(b, mesh.BackendOptions{Cost: p.Cost, AllowedPeers: p.AllowedPeers})
	}
	return specs, nil
}

// currentClient asks store for the named client config at each dial, so a
// peer's redial uses certificates and CA bundles reloaded since.
func currentClient(store *tlsconf.Store, name, host string) func() *tls.Config {
	if name == "" {
		return nil
	}
	return func() *tls.Config {
		cfg, err := store.ClientForHost(name, host)
		if err != nil {
			return nil
		}
		return cfg
	}
}

// listenerOptions binds a peer's node ID to its certificate (beyond
// upstream, its issue #417) whenever the listener requires client
// certificates: then every peer has a verified identity to compare with.
func listenerOptions(cost float64, nodeCost map[string]float64, allowed []string, tlsName string, cfg *config.Config) mesh.BackendOptions {
	opts := mesh.BackendOptions{Cost: cost, NodeCost: nodeCost, AllowedPeers: allowed}
	if s, ok := cfg.TLSServerByName(tlsName); ok && s.RequireClientCert {
		opts.BindPeerToCertificate = true
	}
	return opts
}

func hostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}
