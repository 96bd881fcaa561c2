// Package grpcserve builds and runs the gRPC servers of the router and the
// work agent, and dials them: one interceptor chain (logging, metrics,
// panic recovery), the health and reflection services, explicit limits,
// listeners for Unix sockets, TCP (mutual TLS off loopback) and an
// in-process pair, and a client with keepalive and reconnect backoff.
package grpcserve

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"

	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// Limits shared by servers and clients.
const (
	// MaxCreateStdin bounds CreateWork's inline stdin (proto docs: 4 MiB);
	// larger input goes through the SubmitWork stream.
	MaxCreateStdin = 4 << 20
	// MaxRecvMsgSize admits a CreateWork request with its 4 MiB of stdin
	// plus the submission parameters.
	MaxRecvMsgSize = MaxCreateStdin + 64<<10
	// MaxSendMsgSize bounds replies such as a long ListWork.
	MaxSendMsgSize = 16 << 20
	// DefaultMaxConcurrentStreams allows one stream per carried mesh
	// connection (Dial, Accept) for a busy work agent, and no more.
	DefaultMaxConcurrentStreams = 1024
	// DefaultShutdownTimeout is how long Serve waits for calls to finish
	// before cutting them off.
	DefaultShutdownTimeout = 5 * time.Second
	// handshakeTimeout bounds a connection's TLS and HTTP/2 handshake, as
	// the control service's 10 s TLS handshake deadline.
	handshakeTimeout = 10 * time.Second
)

// MetricsFunc observes one finished call: its full method name
// ("/pkg.Service/Method"), status code and duration.
type MetricsFunc func(method string, code codes.Code, d time.Duration)

// Options configure New. The zero value is a usable plaintext server.
type Options struct {
	// Logger receives per-call debug records, warnings for Internal and
	// Unknown statuses and panics; nil means slog.Default().
	Logger *slog.Logger
	// TLS, when set, serves TLS with client certificates required and
	// verified (the config is cloned and ClientAuth forced; the caller's
	// value is not modified). Use it for TCP listeners; leave it nil for
	// Unix sockets and in-process listeners.
	TLS *tls.Config
	// Metrics, when set, is called after every call.
	Metrics MetricsFunc
	// Prometheus, when set, counts and times every call (go-grpc-middleware's
	// Prometheus provider) in the same chain, right inside the logging
	// observer: it sees authorization refusals and recovered panics.
	Prometheus *grpcprom.ServerMetrics
	// MaxConcurrentStreams per connection; 0 means DefaultMaxConcurrentStreams.
	MaxConcurrentStreams uint32
	// ShutdownTimeout bounds the graceful stop in Serve; 0 means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Policy, when set, authorizes every call: the caller is identified as
	// Face says, put in the call's context (authz.FromContext) and checked
	// against the method's action. Nil authorizes nothing and lets every
	// call through: only for tests and embedders with their own checks.
	Policy *authz.Policy
	// Face is the listener kind the server answers on (FaceTCP is implied
	// by TLS). A unix-socket face identifies peers by their uid.
	Face Face
}

// Server is a grpc.Server with its health service. Register services on it
// as on a grpc.Server (it is a grpc.ServiceRegistrar); Serve marks every
// registered service SERVING in the health service.
type Server struct {
	*grpc.Server
	health          *health.Server
	shutdownTimeout time.Duration
	// stopStreams cuts streaming calls short when the server starts to
	// stop (see streamsEndOnStop).
	stopStreams context.CancelFunc
}

// New builds a server with the interceptor chain, limits, keepalive policy,
// health and reflection services.
func New(opts Options) *Server {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	streams := opts.MaxConcurrentStreams
	if streams == 0 {
		streams = DefaultMaxConcurrentStreams
	}
	shutdown := opts.ShutdownTimeout
	if shutdown <= 0 {
		shutdown = DefaultShutdownTimeout
	}
	obs := &observer{logger: logger, metrics: opts.Metrics}
	// Observation outermost so it sees the Internal status that recovery
	// makes of a panic, and the denials of the authorizer.
	unary := []grpc.UnaryServerInterceptor{obs.unary}
	stream := []grpc.StreamServerInterceptor{obs.stream}
	if opts.Prometheus != nil {
		unary = append(unary, opts.Prometheus.UnaryServerInterceptor())
		stream = append(stream, opts.Prometheus.StreamServerInterceptor())
	}
	unary = append(unary, recoverUnary(logger))
	stream = append(stream, recoverStream(logger))
	face := opts.Face
	if opts.TLS != nil {
		face = FaceTCP
	}
	if opts.Policy != nil {
		a := &authorizer{policy: opts.Policy, face: face}
		unary = append(unary, a.unary)
		stream = append(stream, a.stream)
	}
	stopping, stopStreams := context.WithCancel(context.Background())
	stream = append(stream, streamsEndOnStop(stopping))
	serverOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(MaxRecvMsgSize),
		grpc.MaxSendMsgSize(MaxSendMsgSize),
		grpc.MaxConcurrentStreams(streams),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		// Probe idle peers so a vanished work agent or client is noticed.
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    time.Minute,
			Timeout: 20 * time.Second,
		}),
	}
	if opts.TLS != nil {
		serverOpts = append(serverOpts, grpc.Creds(credentials.NewTLS(requireClientCert(opts.TLS))))
	} else if face == FaceUnix {
		serverOpts = append(serverOpts, grpc.Creds(unixPeerCreds{}))
	}
	srv := &Server{
		Server:          grpc.NewServer(serverOpts...),
		health:          health.NewServer(),
		shutdownTimeout: shutdown,
		stopStreams:     stopStreams,
	}
	healthpb.RegisterHealthServer(srv.Server, srv.health)
	reflection.Register(srv.Server)
	return srv
}

// SetServing reports one service (by full name, "" for the whole server)
// as serving or not in the health service.
func (s *Server) SetServing(service string, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(service, st)
}

// markAllServing marks the server and every registered service SERVING.
func (s *Server) markAllServing() {
	for name := range s.GetServiceInfo() {
		s.SetServing(name, true)
	}
	s.SetServing("", true)
}

// requireClientCert returns a copy of c that requires and verifies client
// certificates, also in configs chosen per connection.
func requireClientCert(c *tls.Config) *tls.Config {
	c = c.Clone()
	c.ClientAuth = tls.RequireAndVerifyClientCert
	if get := c.GetConfigForClient; get != nil {
		c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			per, err := get(hello)
			if err != nil || per == nil {
				return per, err
			}
			per = per.Clone()
			per.ClientAuth = tls.RequireAndVerifyClientCert
			return per, nil
		}
	}
	return c
}
