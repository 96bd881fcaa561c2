package grpcserve

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/receptor-mesh/receptor/services/internal/loopback"
)

// clientOptions are the dial options every client of ours uses: keepalive
// within the servers' enforcement policy, a reconnect backoff that finds a
// restarted peer within seconds, and the same message limits as the server.
func clientOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                30 * time.Second, // >= the servers' 10 s MinTime
			Timeout:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   5 * time.Second,
			},
			MinConnectTimeout: handshakeTimeout,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxSendMsgSize),
			grpc.MaxCallSendMsgSize(MaxRecvMsgSize),
		),
	}
}

// Dial creates a client connection to a gRPC server of ours, as the
// work-agent and router entities name it: "unix:///abs/path",
// "unix:relative/path" or "host:port". Connecting is lazy and retried with
// backoff, so the peer may start later or restart; calls made while it is
// down fail with Unavailable unless they use grpc.WaitForReady. tlsConf,
// when set, is used for TCP (it should carry a client certificate); without
// it TCP is allowed only to a loopback host. extra options are appended.
func Dial(address string, tlsConf *tls.Config, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	target, unixSocket, err := parseTarget(address)
	if err != nil {
		return nil, err
	}
	var creds credentials.TransportCredentials
	switch {
	case tlsConf != nil:
		creds = credentials.NewTLS(tlsConf.Clone())
	case unixSocket:
		creds = insecure.NewCredentials()
	default:
		host, _, _ := net.SplitHostPort(address)
		if !loopback.Host(host) {
			return nil, fmt.Errorf("dialing gRPC server %q: TLS is required for a non-loopback address", address)
		}
		creds = insecure.NewCredentials()
	}
	opts := append(clientOptions(), grpc.WithTransportCredentials(creds))
	conn, err := grpc.NewClient(target, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("dialing gRPC server %q: %w", address, err)
	}
	return conn, nil
}

// parseTarget validates an address and returns the gRPC target for it.
func parseTarget(address string) (target string, unixSocket bool, err error) {
	if rest, ok := strings.CutPrefix(address, "unix:"); ok {
		path := strings.TrimPrefix(rest, "//")
		if path == "" || path == "/" || (strings.HasPrefix(rest, "//") && !strings.HasPrefix(path, "/")) {
			return "", false, fmt.Errorf("gRPC address %q: want unix:///absolute/path or unix:relative/path", address)
		}
		return address, true, nil
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", false, fmt.Errorf("gRPC address %q: want unix:///path, unix:path or host:port: %w", address, err)
	}
	if host == "" || port == "" {
		return "", false, fmt.Errorf("gRPC address %q: %w", address, errors.New("host and port must not be empty"))
	}
	// passthrough: the dialer resolves the name on every attempt, so a peer
	// that comes back on a new address is found.
	return "passthrough:///" + address, false, nil
}
