package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// Defaults for Options (zero values select them).
const (
	DefaultMaxConns       = 1024
	DefaultDialTimeout    = 20 * time.Second
	DefaultMaxUDPSessions = 1024
	DefaultUDPIdleTimeout = 5 * time.Minute
)

// Proxy is one configured proxy entity.
type Proxy interface {
	// Kind names the entity, e.g. "tcp-server".
	Kind() string
	// Start binds the proxy's listener or socket and returns at once: an
	// error if it cannot (busy port, service already bound, lock held),
	// else it serves in goroutines of its own until ctx ends. wait blocks
	// until, after ctx ended, the listener and every bridged connection or
	// session is closed and every goroutine has exited.
	Start(ctx context.Context) (wait func(), err error)
}

// Options are shared by every proxy kind.
type Options struct {
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// MaxConns bounds the concurrently bridged connections of one stream
	// proxy; further connections are closed at once (default 1024).
	MaxConns int
	// DialTimeout bounds each outbound dial including its TLS handshake:
	// the mesh stream of a *-server, the local socket of a *-client
	// (default 20 s; upstream has no local connect timeout).
	DialTimeout time.Duration
	// MaxUDPSessions bounds the per-source sessions of one UDP proxy;
	// datagrams from new sources are dropped while it is full (default 1024).
	MaxUDPSessions int
	// UDPIdleTimeout expires a UDP session with no traffic in either
	// direction for this long (default 5 min; upstream never expires them).
	UDPIdleTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.MaxUDPSessions <= 0 {
		o.MaxUDPSessions = DefaultMaxUDPSessions
	}
	if o.UDPIdleTimeout <= 0 {
		o.UDPIdleTimeout = DefaultUDPIdleTimeout
	}
	return o
}

// serverTLS looks up a named tls-server config; "" means no TLS.
func serverTLS(store *tlsconf.Store, name string) (*tls.Config, error) {
	if name == "" {
		return nil, nil
	}
	if store == nil {
		return nil, fmt.Errorf("tls-server %q: no TLS configurations loaded", name)
	}
	return store.Server(name)
}

// clientTLSForNode looks up a named tls-client config verifying node
// nodeID (docs/protocol.md §9.3); "" means no user TLS.
func clientTLSForNode(store *tlsconf.Store, name, nodeID string) (*tls.Config, error) {
	if name == "" {
		return nil, nil
	}
	if store == nil {
		return nil, fmt.Errorf("tls-client %q: no TLS configurations loaded", name)
	}
	return store.ClientForNode(name, nodeID)
}

// clientTLSForHost looks up a named tls-client config verifying host.
func clientTLSForHost(store *tlsconf.Store, name, host string) (*tls.Config, error) {
	if name == "" {
		return nil, nil
	}
	if store == nil {
		return nil, fmt.Errorf("tls-client %q: no TLS configurations loaded", name)
	}
	return store.ClientForHost(name, host)
}
