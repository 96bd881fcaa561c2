package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/receptor-mesh/receptor/services/mesh"
)

// DialOptions configures Dial.
type DialOptions struct {
	// TLS is the user TLS client config for a ConnType 2 service, including
	// its node-ID verification for the target; ALPN is forced to netceptor.
	// Nil selects the insecure scheme (ConnType 1).
	TLS *tls.Config
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// ErrServiceUnknown is wrapped by Dial's error when the target node reported
// that nothing listens on the service.
var ErrServiceUnknown = errors.New(mesh.ProblemServiceUnknown)

// Dial opens a stream to service on node. It binds a fresh ephemeral
// service for this one connection and releases it when the connection ends.
// The returned net.Conn is a *Conn.
func Dial(ctx context.Context, network mesh.PacketNetwork, node, service string, opts DialOptions) (net.Conn, error) {
	c, err := DialConn(ctx, network, node, service, opts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialConn is Dial returning the concrete *Conn.
func DialConn(ctx context.Context, network mesh.PacketNetwork, node, service string, opts DialOptions) (*Conn, error) {
	target := mesh.Addr{Node: node, Service: service}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	fail := func(err error) (*Conn, error) { return nil, fmt.Errorf("mesh: dial %s: %w", target, err) }
	done, err := acquireHandshake(ctx, network, node)
	if err != nil {
		return fail(err)
	}
	defer done()
	var tlsConf *tls.Config
	if opts.TLS == nil {
		tlsConf = insecureClientTLS(network.NodeID())
	} else {
		tlsConf = userClientTLS(opts.TLS)
	}
	mpc, err := network.ListenPacket("")
	if err != nil {
		return fail(err)
	}
	pc := newPacketConn(mpc)
	tr, err := newTransport(pc)
	if err != nil {
		_ = pc.Close()
		return fail(err)
	}

	// The watcher owns the socket's unreachable channel for the whole
	// connection: during the dial it aborts on "service unknown" for the
	// target; afterwards it ends the connection for the same reason.
	dctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu      sync.Mutex
		onGone  func() // set once the connection is established
		watchWG sync.WaitGroup
		stop    = make(chan struct{})
	)
	watchWG.Go(func() {
		for {
			select {
			case <-stop:
				return
			case u, ok := <-mpc.Unreachable():
				if !ok {
					return
				}
				if u.Problem != mesh.ProblemServiceUnknown || u.ToNode != node || u.ToService != service {
					continue
				}
				cancel(ErrServiceUnknown)
				mu.Lock()
				gone := onGone
				mu.Unlock()
				if gone != nil {
					gone()
				}
			}
		}
	})
	release := func() {
		close(stop)
		_ = pc.Close()
		_ = tr.Close()
		watchWG.Wait()
	}
	cause := func(err error) error {
		if c := context.Cause(dctx); c != nil {
			return c
		}
		return err
	}

	pc.strict.Store(true)
	qc, err := tr.Dial(dctx, target, tlsConf, quicConfig(true))
	if err != nil {
		release()
		return fail(cause(err))
	}
	qs, err := qc.OpenStreamSync(dctx)
	if err != nil {
		err = cause(err)
		_ = qc.CloseWithError(codeError, err.Error())
		release()
		return fail(err)
	}
	// The 0x00 byte makes the listener accept the stream (docs/protocol.md §10.4).
	if _, err := qs.Write([]byte{0}); err != nil {
		err = cause(err)
		_ = qc.CloseWithError(codeError, err.Error())
		release()
		return fail(err)
	}
	pc.strict.Store(false)
	conn := newConn(qc, qs, toMeshAddr(mpc.LocalAddr()), target, log, true, release)
	mu.Lock()
	onGone = func() {
		log.Warn("stream: remote service is unreachable, closing connection", "remote", target.String())
		conn.abort(codeError, reasonServiceUnknown)
	}
	mu.Unlock()
	return conn, nil
}
