package meshclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/mesh"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ListenOptions configure Listen.
type ListenOptions struct {
	// Advertise the service to the mesh, with Tags.
	Advertise bool
	Tags      map[string]string
	// TLSServer names a tls-server configuration on the router; empty
	// means the mesh's built-in self-signed certificate.
	TLSServer string
	// Logger for skipped connections; nil means slog.Default().
	Logger *slog.Logger
}

// Listener accepts mesh connections through the router: each announced
// connection is taken over by its own Accept call. It implements
// net.Listener.
type Listener struct {
	c      *Client
	s      meshv1.MeshService_ListenClient
	cancel context.CancelFunc
	addr   mesh.Addr
	log    *slog.Logger

	incoming chan *meshv1.IncomingConnection
	done     chan struct{} // closed when the Listen call ended
	err      error         // why; valid after done
	closing  chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
}

var _ net.Listener = (*Listener)(nil)

// Listen opens a listener on service ("" picks an ephemeral name). ctx
// bounds the setup only; the listener lives until Close.
func (c *Client) Listen(ctx context.Context, service string, opts ListenOptions) (*Listener, error) {
	fail := func(err error) (*Listener, error) {
		return nil, fmt.Errorf("meshclient: listen on %q: %w", service, err)
	}
	cctx, cancel, setupDone := callContext(ctx)
	s, err := c.mc.Listen(cctx, &meshv1.ListenRequest{
		Service: service, Advertise: opts.Advertise, Tags: opts.Tags, TlsServer: opts.TLSServer,
	})
	if err != nil {
		cancel()
		return fail(setupErr(ctx, err))
	}
	resp, err := s.Recv()
	if err == nil && resp.GetListening() == nil {
		err = errors.New("router did not answer with listening")
	}
	if err != nil || !setupDone() {
		cancel()
		return fail(setupErr(ctx, err))
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	l := &Listener{
		c: c, s: s, cancel: cancel, log: log,
		addr:     mesh.Addr{Node: resp.GetListening().GetNode(), Service: resp.GetListening().GetService()},
		incoming: make(chan *meshv1.IncomingConnection),
		done:     make(chan struct{}),
		closing:  make(chan struct{}),
	}
	l.wg.Go(l.readLoop)
	return l, nil
}

// readLoop hands announcements to Accept one at a time; until Accept takes
// one, the router keeps further connections in its bounded backlog.
func (l *Listener) readLoop() {
	defer close(l.done)
	for {
		resp, err := l.s.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the router ended the listener")
			}
			l.err = err
			return
		}
		inc := resp.GetIncoming()
		if inc == nil {
			continue
		}
		select {
		case l.incoming <- inc:
		case <-l.closing:
			return
		}
	}
}

// Accept implements net.Listener; the returned net.Conn is a *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptContext(context.Background())
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptContext waits for the next connection and takes it over. A
// connection that expired before its Accept call is skipped.
func (l *Listener) AcceptContext(ctx context.Context) (*Conn, error) {
	for {
		var inc *meshv1.IncomingConnection
		select {
		case inc = <-l.incoming:
		case <-l.closing:
			return nil, l.opError(net.ErrClosed)
		case <-l.done:
			if isClosed(l.closing) {
				// Close ends the call too; report the Close, not its effect.
				return nil, l.opError(net.ErrClosed)
			}
			return nil, l.opError(l.err)
		case <-ctx.Done():
			return nil, l.opError(context.Cause(ctx))
		}
		conn, err := l.c.accept(ctx, inc, l.addr)
		if status.Code(err) == codes.NotFound {
			l.log.Debug("meshclient: incoming connection expired before Accept", "id", inc.GetConnectionId(), "err", err)
			continue
		}
		if err != nil {
			return nil, l.opError(err)
		}
		return conn, nil
	}
}

// Close ends the Listen call: the router closes the listener and the
// connections not yet accepted; accepted ones stay open.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.closing)
		l.cancel()
		l.wg.Wait()
	})
	return nil
}

// Addr is the listener's mesh address.
func (l *Listener) Addr() net.Addr { return l.addr }

func (l *Listener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: mesh.Network, Addr: l.addr, Err: err}
}

// accept takes over one announced connection with its own Accept call.
func (c *Client) accept(ctx context.Context, inc *meshv1.IncomingConnection, local mesh.Addr) (*Conn, error) {
	cctx, cancel, setupDone := callContext(ctx)
	s, err := c.mc.Accept(cctx)
	if err != nil {
		cancel()
		return nil, setupErr(ctx, err)
	}
	if err := s.Send(&meshv1.AcceptRequest{Msg: &meshv1.AcceptRequest_Open{Open: &meshv1.AcceptOpen{
		ConnectionId: inc.GetConnectionId(), HalfClose: true,
	}}}); err != nil {
		_, rerr := s.Recv()
		cancel()
		return nil, setupErr(ctx, firstErr(rerr, err))
	}
	resp, err := s.Recv()
	if err == nil && resp.GetAccepted() == nil {
		err = errors.New("router did not answer with accepted")
	}
	if err != nil || !setupDone() {
		cancel()
		return nil, setupErr(ctx, err)
	}
	remote := mesh.Addr{Node: resp.GetAccepted().GetRemoteNode(), Service: resp.GetAccepted().GetRemoteService()}
	return newConn(newAcceptCall(s), cancel, local, remote), nil
}
