package meshapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
)

// StreamConn is one mesh stream connection.
type StreamConn interface {
	net.Conn
	// CloseWrite half-closes: the peer reads EOF, our reads continue.
	CloseWrite() error
}

// StreamListener accepts mesh stream connections on one service.
type StreamListener interface {
	Accept(ctx context.Context) (StreamConn, error)
	Addr() net.Addr
	// Close stops accepting and ends every connection it accepted.
	Close() error
}

// ListenConfig configures Streams.Listen.
type ListenConfig struct {
	Advertise bool
	Tags      map[string]string
	TLS       *tls.Config // nil: the mesh's built-in self-signed TLS
}

// Streams opens mesh streams. MeshStreams is the implementation over
// package services/mesh/stream.
type Streams interface {
	// Dial connects to service on node; tlsConf nil means the built-in
	// TLS without peer verification.
	Dial(ctx context.Context, node, service string, tlsConf *tls.Config) (StreamConn, error)
	Listen(ctx context.Context, service string, cfg ListenConfig) (StreamListener, error)
}

// MeshStreams returns Streams carried by QUIC over network's datagrams.
func MeshStreams(network mesh.PacketNetwork, log *slog.Logger) Streams {
	return meshStreams{network: network, log: log}
}

type meshStreams struct {
	network mesh.PacketNetwork
	log     *slog.Logger
}

func (m meshStreams) Dial(ctx context.Context, node, service string, tlsConf *tls.Config) (StreamConn, error) {
	c, err := stream.DialConn(ctx, m.network, node, service, stream.DialOptions{TLS: tlsConf, Logger: m.log})
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (m meshStreams) Listen(ctx context.Context, service string, cfg ListenConfig) (StreamListener, error) {
	l, err := stream.Listen(ctx, m.network, service, stream.ListenOptions{
		TLS: cfg.TLS, Advertise: cfg.Advertise, Tags: cfg.Tags, Logger: m.log,
	})
	if err != nil {
		return nil, err
	}
	return meshListener{l}, nil
}

type meshListener struct{ l *stream.Listener }

func (m meshListener) Accept(ctx context.Context) (StreamConn, error) {
	c, err := m.l.AcceptContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("accept: %w", err)
	}
	return c, nil
}

func (m meshListener) Addr() net.Addr { return m.l.Addr() }
func (m meshListener) Close() error   { return m.l.Close() }
