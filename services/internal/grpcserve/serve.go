package grpcserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/receptor-mesh/receptor/services/internal/loopback"
	"github.com/receptor-mesh/receptor/services/internal/unixsock"
)

// Serve serves srv on lis until ctx is done or serving fails, then stops
// the whole server: health turns NOT_SERVING, running calls get the
// server's shutdown timeout to finish, and are cut off after it. Several
// listeners may share one server; stopping through any of them stops all.
// Serve owns lis from here on and closes it.
func Serve(ctx context.Context, srv *Server, lis net.Listener) error {
	srv.markAllServing()
	errc := make(chan error, 1)
	go func() { errc <- srv.Server.Serve(lis) }()
	select {
	case err := <-errc:
		if err == nil || errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
		return fmt.Errorf("serving gRPC on %s %s: %w", lis.Addr().Network(), lis.Addr(), err)
	case <-ctx.Done():
	}
	srv.stop()
	<-errc
	return nil
}

// stop stops gracefully within the shutdown timeout, then forcibly.
// Streaming calls (mesh connections, listeners, result streams) may last
// forever, so they are cut short at once (Unavailable "server is stopping")
// instead of holding the graceful stop until its timeout; unary calls
// finish.
func (s *Server) stop() {
	s.health.Shutdown()
	s.stopStreams()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.GracefulStop()
	}()
	timer := time.NewTimer(s.shutdownTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.Stop()
		<-done
	}
}

// ListenUnix listens on a Unix socket at path with file mode perm for Serve.
// As for the control service's socket, it first takes an exclusive lock on
// "<path>.lock" (so a second process fails instead of stealing a live
// socket), then removes whatever is at path; the socket and lock files stay
// behind at exit (see unixsock.Listen).
func ListenUnix(path string, perm os.FileMode) (net.Listener, error) {
	lis, err := unixsock.Listen(path, perm)
	if err != nil {
		return nil, fmt.Errorf("listening on Unix socket %s: %w", path, err)
	}
	return lis, nil
}

// ListenTCP opens the TCP listener of a grpc-server's or http-gateway's
// tcplisten; errors start with "tcplisten", for the caller to prefix with
// its entity. addr is
// "host:port", or a bare port bound on all IPv4 interfaces as upstream's
// tcplisten. Without TLS (tlsConf nil) only a loopback host (127.0.0.0/8,
// ::1, localhost) is allowed, with a warning, since the API would be open
// to anyone who can reach the port; any other address is an error. With
// TLS the listener is plain TCP: the server built by New with the same
// config (Options.TLS) does the handshake and requires client certificates.
func ListenTCP(ctx context.Context, addr string, tlsConf *tls.Config, logger *slog.Logger) (net.Listener, error) {
	if logger == nil {
		logger = slog.Default()
	}
	hostPort := tcpAddress(addr)
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil, fmt.Errorf("tcplisten %q: %w", addr, err)
	}
	if tlsConf == nil {
		if !loopback.Host(host) {
			return nil, fmt.Errorf("tcplisten %q: refusing to serve the API without TLS on a non-loopback address; set tls to a tls-server name", addr)
		}
		logger.Warn("listening on TCP without TLS; any local user can call this API", "address", hostPort)
	}
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", hostPort)
	if err != nil {
		return nil, fmt.Errorf("tcplisten %q: %w", addr, err)
	}
	return lis, nil
}

// tcpAddress applies upstream's tcplisten rule: no colon means a port on
// 0.0.0.0.
func tcpAddress(addr string) string {
	if !strings.Contains(addr, ":") {
		return net.JoinHostPort("0.0.0.0", addr)
	}
	return addr
}
