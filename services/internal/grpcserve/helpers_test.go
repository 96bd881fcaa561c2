package grpcserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/testkit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testControl is a small ControlService: GetStatus reports the caller's
// principal, GetVersion and Traceroute panic, Ping fails with
// the node's unknown-unit error, GetWorkResults blocks until the call ends.
type testControl struct {
	controlv1.UnimplementedControlServiceServer
}

func (testControl) GetStatus(ctx context.Context, _ *controlv1.GetStatusRequest) (*controlv1.GetStatusResponse, error) {
	id := authz.FromContext(ctx).String()
	return &controlv1.GetStatusResponse{Status: &meshv1.NodeStatus{NodeId: id}}, nil
}

func (testControl) GetVersion(context.Context, *controlv1.GetVersionRequest) (*controlv1.GetVersionResponse, error) {
	var m map[string]int
	m["boom"]++ // a nil-map panic, as a real bug would
	return nil, nil
}

func (testControl) Ping(_ context.Context, req *controlv1.PingRequest) (*controlv1.PingResponse, error) {
	return nil, apierr.MeshFailure(req.GetNode(), "no route to node")
}

func (testControl) Traceroute(*controlv1.TracerouteRequest, grpc.ServerStreamingServer[controlv1.TracerouteResponse]) error {
	panic("traceroute bug")
}

func (testControl) GetWorkResults(_ *controlv1.GetWorkResultsRequest, stream grpc.ServerStreamingServer[controlv1.GetWorkResultsResponse]) error {
	if err := stream.Send(&controlv1.GetWorkResultsResponse{}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return stream.Context().Err()
}

func (testControl) ListWork(context.Context, *controlv1.ListWorkRequest) (*controlv1.ListWorkResponse, error) {
	return nil, errors.New("not a status")
}

// call is one observed call.
type call struct {
	method string
	code   codes.Code
}

// recorder collects the metrics hook's observations.
type recorder struct {
	mu    sync.Mutex
	calls []call
}

func (r *recorder) observe(method string, code codes.Code, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{method, code})
}

func (r *recorder) last() call {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return call{}
	}
	return r.calls[len(r.calls)-1]
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startServer serves testControl on lis until the test ends.
func startServer(t testing.TB, opts Options, lis net.Listener) *Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	srv := New(opts)
	controlv1.RegisterControlServiceServer(srv, testControl{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, srv, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return srv
}

// startUnix serves testControl on a Unix socket and returns a client for it.
func startUnix(t testing.TB, opts Options) (controlv1.ControlServiceClient, *grpc.ClientConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "grpc.sock")
	lis, err := ListenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	startServer(t, opts, lis)
	conn, err := Dial("unix://"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return controlv1.NewControlServiceClient(conn), conn, path
}

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate.
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	ca := testkit.NewCA(t)
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}
	return &testPKI{
		pool:   ca.Pool(),
		server: ca.Issue(t, testkit.IssueOptions{CommonName: "server", IPs: loopback, Usage: testkit.ServerOnly}).TLS,
		client: ca.Issue(t, testkit.IssueOptions{CommonName: "client", IPs: loopback, Usage: testkit.ClientOnly}).TLS,
	}
}
