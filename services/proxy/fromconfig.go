package proxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// ErrIPRouterUnsupported is returned by FromConfig for ip-router entities,
// which this implementation does not provide (docs/protocol.md §11.1;
// upstream has it on Linux only, and peers do not depend on it).
var ErrIPRouterUnsupported = errors.New("ip-router is not implemented by this build")

// FromConfig builds every proxy entity of cfg: tcp-servers, tcp-clients,
// udp-servers, udp-clients, unix-socket-servers, unix-socket-clients and
// command-services, each kind in configuration order. Nothing is bound until StartAll (or each
// proxy's Start). store may be nil when cfg names no TLS configuration.
func FromConfig(network mesh.PacketNetwork, store *tlsconf.Store, cfg *config.Config, opts Options) ([]Proxy, error) {
	if len(cfg.IPRouters) > 0 {
		return nil, fmt.Errorf("ip-router %s: %w", cfg.IPRouters[0].NetworkName, ErrIPRouterUnsupported)
	}
	var out []Proxy
	add := func(p Proxy, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	}
	for _, c := range cfg.TCPServers {
		if err := add(NewTCPServer(network, store, c, opts)); err != nil {
			return nil, err
		}
	}
	for _, c := range cfg.TCPClients {
		if err := add(NewTCPClient(network, store, c, opts)); err != nil {
			return nil, err
		}
	}
	for _, c := range cfg.UDPServers {
		if err := add(NewUDPServer(network, c, opts)); err != nil {
			return nil, err
		}
	}
	for _, c := range cfg.UDPClients {
		if err := add(NewUDPClient(network, c, opts)); err != nil {
			return nil, err
		}
	}
	for _, c := range cfg.UnixSocketServers {
		if err := add(NewUnixSocketServer(network, store, c, opts)); err != nil {
			return nil, err
		}
	}
	for _, c := range cfg.UnixSocketClients {
		if err := add(NewUnixSocketClient(network, store, c, opts)); err != nil {
			return nil, err
		}
	}
	for _, c := range cfg.CommandServices {
		if err := add(NewCommandService(network, store, c, opts)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// StartAll starts proxies in order. If one fails, those already started
// are stopped (and waited for) and its error is returned, so a bad entity
// aborts startup as upstream. Otherwise the proxies run until ctx ends and
// wait blocks until all have stopped.
func StartAll(ctx context.Context, proxies []Proxy) (wait func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	waits := make([]func(), 0, len(proxies))
	waitAll := func() {
		for _, w := range waits {
			w()
		}
		cancel()
	}
	for _, p := range proxies {
		w, err := p.Start(ctx)
		if err != nil {
			cancel()
			waitAll()
			return nil, fmt.Errorf("start %s: %w", p.Kind(), err)
		}
		waits = append(waits, w)
	}
	return waitAll, nil
}
