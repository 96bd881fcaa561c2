package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// forwarder accepts connections on ln and bridges each one to a fresh
// connection from dial. It is the engine of all four stream proxies: a
// local listener with a mesh dialer (*-server) or a mesh listener with a
// local dialer (*-client).
type forwarder struct {
	ln   net.Listener
	dial func(ctx context.Context) (net.Conn, error)
	opts Options
	log  *slog.Logger
	// onStop runs after the listener closed and every connection ended
	// (the unix-socket-server releases its lock there).
	onStop func()
	// serve, when set, handles each accepted connection instead of dial
	// and Bridge (the command-service runs a command for it).
	serve func(ctx context.Context, c net.Conn)
}

// acceptRetry is the pause after an unexpected Accept error (e.g. out of
// file descriptors) so the loop does not spin.
const acceptRetry = 100 * time.Millisecond

// start serves until ctx ends; the returned wait blocks until everything
// it started has stopped.
func (f *forwarder) start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { _ = f.ln.Close() })
	wg.Go(func() { f.acceptLoop(ctx, &wg) })
	return func() {
		wg.Wait()
		stop()
		_ = f.ln.Close()
		if f.onStop != nil {
			f.onStop()
		}
	}
}

func (f *forwarder) acceptLoop(ctx context.Context, wg *sync.WaitGroup) {
	slots := make(chan struct{}, f.opts.MaxConns)
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				f.log.Error("proxy: listener closed", "listener", f.ln.Addr(), "err", err)
				return
			}
			f.log.Warn("proxy: accept failed", "listener", f.ln.Addr(), "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(acceptRetry):
			}
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			f.log.Warn("proxy: connection limit reached, closing new connection",
				"listener", f.ln.Addr(), "from", c.RemoteAddr(), "limit", f.opts.MaxConns)
			_ = c.Close()
			settle(ctx, c)
			continue
		}
		// Dials run concurrently so one slow or failing dial does not
		// hold up later clients (upstream dials inside the accept loop).
		wg.Go(func() {
			defer func() { <-slots }()
			f.handle(ctx, c)
		})
	}
}

func (f *forwarder) handle(ctx context.Context, in net.Conn) {
	defer settle(ctx, in)
	if f.serve != nil {
		f.serve(ctx, in)
		return
	}
	dctx, cancel := context.WithTimeout(ctx, f.opts.DialTimeout)
	out, err := f.dial(dctx)
	cancel()
	if err != nil {
		// Closing the accepted side tells the client at once (upstream
		// leaves it open and silent, docs/protocol.md §11.2).
		if ctx.Err() == nil {
			f.log.Warn("proxy: dial failed, closing accepted connection", "from", in.RemoteAddr(), "err", err)
		}
		_ = in.Close()
		return
	}
	defer settle(ctx, out)
	inToOut, outToIn, err := Bridge(ctx, in, out)
	if err != nil {
		f.log.Warn("proxy: connection failed", "from", in.RemoteAddr(), "to", out.RemoteAddr(), "err", err)
	}
	f.log.Debug("proxy: connection done", "from", in.RemoteAddr(), "to", out.RemoteAddr(),
		"bytes_in", inToOut, "bytes_out", outToIn)
}

// ender is implemented by mesh streams, whose QUIC connection outlives
// Close briefly while the peer acknowledges our last data.
type ender interface {
	Done() <-chan struct{}
	CloseConnection() error
}

// settle waits until a closed connection has released everything it
// holds; when ctx has ended it cuts a mesh stream's lingering short.
func settle(ctx context.Context, c net.Conn) {
	e, ok := c.(ender)
	if !ok {
		return
	}
	select {
	case <-e.Done():
		return
	case <-ctx.Done():
	}
	_ = e.CloseConnection()
	<-e.Done()
}
