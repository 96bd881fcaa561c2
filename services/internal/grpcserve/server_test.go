package grpcserve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	"github.com/receptor-mesh/receptor/services/internal/authz"
)

func TestInterceptorChain(t *testing.T) {
	rec := &recorder{}
	client, _, _ := startUnix(t, Options{Metrics: rec.observe})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	streamErr := func(s grpc.ClientStream, err error) error {
		if err != nil {
			return err
		}
		for {
			if err := s.RecvMsg(new(controlv1.TracerouteResponse)); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	}
	tests := []struct {
		name     string
		call     func() error
		method   string
		wantCode codes.Code
		wantText string
	}{
		{
			name:     "unary ok",
			call:     func() error { _, err := client.GetStatus(ctx, &controlv1.GetStatusRequest{}); return err },
			method:   "GetStatus",
			wantCode: codes.OK,
		},
		{
			name:     "unary panic becomes Internal",
			call:     func() error { _, err := client.GetVersion(ctx, &controlv1.GetVersionRequest{}); return err },
			method:   "GetVersion",
			wantCode: codes.Internal,
			wantText: "internal error: handler of /receptor.control.v1.ControlService/GetVersion panicked",
		},
		{
			name:     "server still up after a panic",
			call:     func() error { _, err := client.GetStatus(ctx, &controlv1.GetStatusRequest{}); return err },
			method:   "GetStatus",
			wantCode: codes.OK,
		},
		{
			name:     "catalogue error passes through",
			call:     func() error { _, err := client.Ping(ctx, &controlv1.PingRequest{Node: "nodeb"}); return err },
			method:   "Ping",
			wantCode: codes.Unavailable,
			wantText: "no route to node",
		},
		{
			name:     "plain error is Unknown",
			call:     func() error { _, err := client.ListWork(ctx, &controlv1.ListWorkRequest{}); return err },
			method:   "ListWork",
			wantCode: codes.Unknown,
			wantText: "not a status",
		},
		{
			name: "stream panic becomes Internal",
			call: func() error {
				s, err := client.Traceroute(ctx, &controlv1.TracerouteRequest{Node: "x"})
				return streamErr(s, err)
			},
			method:   "Traceroute",
			wantCode: codes.Internal,
			wantText: "internal error: handler of /receptor.control.v1.ControlService/Traceroute panicked",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.wantCode)
			}
			if tt.wantText != "" && status.Convert(err).Message() != tt.wantText {
				t.Errorf("message = %q, want %q", status.Convert(err).Message(), tt.wantText)
			}
			want := call{"/receptor.control.v1.ControlService/" + tt.method, tt.wantCode}
			if got := rec.last(); got != want {
				t.Errorf("metrics hook last saw %+v, want %+v", got, want)
			}
		})
	}
}

func TestHealthAndReflection(t *testing.T) {
	_, conn, _ := startUnix(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	health := healthpb.NewHealthClient(conn)
	for _, tt := range []struct {
		service  string
		wantCode codes.Code
		want     healthpb.HealthCheckResponse_ServingStatus
	}{
		{"", codes.OK, healthpb.HealthCheckResponse_SERVING},
		{"receptor.control.v1.ControlService", codes.OK, healthpb.HealthCheckResponse_SERVING},
		{"receptor.work.v1.WorkService", codes.NotFound, 0},
	} {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: tt.service})
		if status.Code(err) != tt.wantCode {
			t.Errorf("health %q: %v, want code %v", tt.service, err, tt.wantCode)
			continue
		}
		if err == nil && resp.GetStatus() != tt.want {
			t.Errorf("health %q = %v, want %v", tt.service, resp.GetStatus(), tt.want)
		}
	}

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.CloseSend() }()
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	list := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range list.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"receptor.control.v1.ControlService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
	// grpcurl needs the descriptors, not only the names.
	files := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "receptor.control.v1.ControlService",
	}})
	if n := len(files.GetFileDescriptorResponse().GetFileDescriptorProto()); n == 0 {
		t.Errorf("no file descriptors for ControlService: %v", files)
	}
}

func TestUnixSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "api.sock")
	// A stale regular file where the socket goes is removed.
	if err := os.WriteFile(path, []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, perm := range []os.FileMode{0o600, 0o660} {
		lis, err := ListenUnix(path, perm)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != perm {
			t.Errorf("socket mode = %v, want socket with %#o", fi.Mode(), perm)
		}
		// A second listener on the same path fails while the first holds
		// the lock, and leaves the live socket alone.
		if _, err := ListenUnix(path, perm); err == nil || !strings.Contains(err.Error(), "held by another process") {
			t.Errorf("second ListenUnix: %v, want lock error", err)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("live socket removed by the refused listener: %v", err)
		}
		if err := lis.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ListenUnix("", 0o600); err == nil {
		t.Error("ListenUnix with empty path succeeded")
	}
}

// serveUnix serves srv on a Unix socket at path until ctx is done.
func serveUnix(ctx context.Context, srv *Server, path string) error {
	lis, err := ListenUnix(path, 0o600)
	if err != nil {
		return err
	}
	return Serve(ctx, srv, lis)
}

func TestServeUnixUntilCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	policy, err := authz.New(authz.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	srv := New(Options{Logger: quietLogger(), ShutdownTimeout: 50 * time.Millisecond, Policy: policy, Face: FaceUnix})
	controlv1.RegisterControlServiceServer(srv, testControl{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveUnix(ctx, srv, path) }()

	conn, err := Dial("unix:"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := controlv1.NewControlServiceClient(conn)
	callCtx, callCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer callCancel()
	resp, err := client.GetStatus(callCtx, &controlv1.GetStatusRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.GetStatus().GetNodeId(), fmt.Sprintf("uid:%d", os.Getuid()); got != want {
		t.Errorf("principal over a Unix socket: handler saw %q, want %q", got, want)
	}
	// A call that never ends on its own is cut off after the shutdown
	// timeout, and Serve returns.
	stream, err := client.GetWorkResults(callCtx, &controlv1.GetWorkResultsRequest{UnitId: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("long call after shutdown: %v, want Unavailable", err)
	}
}

func TestReconnectAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "api.sock")
	conn, err := Dial("unix://"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := controlv1.NewControlServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 2 {
		srv := New(Options{Logger: quietLogger()})
		controlv1.RegisterControlServiceServer(srv, testControl{})
		srvCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- serveUnix(srvCtx, srv, path) }()
		if _, err := client.GetStatus(ctx, &controlv1.GetStatusRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("server start %d: %v", i, err)
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestMutualTLS(t *testing.T) {
	pki := newTestPKI(t)
	serverConf := &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool, MinVersion: tls.VersionTLS12}
	lis, err := ListenTCP(context.Background(), "127.0.0.1:0", serverConf, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	startServer(t, Options{TLS: serverConf}, lis)
	if serverConf.ClientAuth != tls.NoClientCert {
		t.Errorf("New modified the caller's TLS config: ClientAuth = %v", serverConf.ClientAuth)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		name     string
		certs    []tls.Certificate
		wantCode codes.Code
	}{
		{"client certificate accepted", []tls.Certificate{pki.client}, codes.OK},
		{"no client certificate refused", nil, codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := Dial(lis.Addr().String(), &tls.Config{RootCAs: pki.pool, Certificates: tt.certs, MinVersion: tls.VersionTLS12})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			resp, err := controlv1.NewControlServiceClient(conn).GetStatus(ctx, &controlv1.GetStatusRequest{})
			if status.Code(err) != tt.wantCode {
				t.Fatalf("GetStatus: %v, want %v", err, tt.wantCode)
			}
			// Without a Policy the server identifies nobody.
			if err == nil && resp.GetStatus().GetNodeId() != "anonymous" {
				t.Errorf("TCP call seen as %q, want anonymous", resp.GetStatus().GetNodeId())
			}
		})
	}
}

func TestRequireClientCertPerConnection(t *testing.T) {
	base := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven}, nil
	}}
	got := requireClientCert(base)
	if got.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("ClientAuth = %v", got.ClientAuth)
	}
	per, err := got.GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil || per.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("per-connection config: %v, %v; want RequireAndVerifyClientCert", per, err)
	}
}

func TestListenTCPPolicy(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		addr    string
		tls     *tls.Config
		wantErr string
	}{
		{"loopback without tls", "127.0.0.1:0", nil, ""},
		{"localhost without tls", "localhost:0", nil, ""},
		{"any address without tls", "0.0.0.0:0", nil, "set tls"},
		{"bare port means all interfaces", "0", nil, "set tls"},
		{"other host without tls", "192.0.2.1:0", nil, "non-loopback"},
		{"empty host without tls", ":0", nil, "non-loopback"},
		{"malformed", "127.0.0.1:0:0", nil, "too many colons"},
		{"loopback with tls", "127.0.0.1:0", &tls.Config{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lis, err := ListenTCP(ctx, tt.addr, tt.tls, quietLogger())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ListenTCP(%q): %v", tt.addr, err)
				}
				_ = lis.Close()
				return
			}
			if err == nil {
				_ = lis.Close()
				t.Fatalf("ListenTCP(%q) succeeded, want error with %q", tt.addr, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.addr) {
				t.Errorf("ListenTCP(%q) = %v, want it to name the address and say %q", tt.addr, err, tt.wantErr)
			}
		})
	}
}

func TestInProcess(t *testing.T) {
	p := NewInProcess()
	startServer(t, Options{}, p.Listener())
	conn, err := p.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := controlv1.NewControlServiceClient(conn).GetStatus(ctx, &controlv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetStatus().GetNodeId(); got != "anonymous" {
		t.Errorf("in-process call without a Policy seen as %q, want anonymous", got)
	}
}

func TestDialRejects(t *testing.T) {
	for _, addr := range []string{"", "unix:", "unix://", "unix:///", "unix://host/path", "nodeb", "10.0.0.1:80", ":80", "host:"} {
		if conn, err := Dial(addr, nil); err == nil {
			_ = conn.Close()
			t.Errorf("Dial(%q) succeeded, want error", addr)
		}
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		addr, want string
		unix       bool
	}{
		{"unix:///run/receptor/api.sock", "unix:///run/receptor/api.sock", true},
		{"unix:api.sock", "unix:api.sock", true},
		{"unix:/abs.sock", "unix:/abs.sock", true},
		{"localhost:7323", "passthrough:///localhost:7323", false},
		{"[::1]:7323", "passthrough:///[::1]:7323", false},
	}
	for _, tt := range tests {
		got, unix, err := parseTarget(tt.addr)
		if err != nil || got != tt.want || unix != tt.unix {
			t.Errorf("parseTarget(%q) = %q, %v, %v; want %q, %v", tt.addr, got, unix, err, tt.want, tt.unix)
		}
	}
}

// FuzzParseTarget checks that any configured address is either rejected or
// turned into a target grpc accepts, without panicking.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"unix:///a", "unix:a", "unix://", "127.0.0.1:1", "[::1]:2", "::::", "unix:\x00", "a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		target, unixSocket, err := parseTarget(addr)
		if err != nil {
			return
		}
		if unixSocket != strings.HasPrefix(target, "unix:") {
			t.Fatalf("parseTarget(%q) = %q, unix %v", addr, target, unixSocket)
		}
		if !unixSocket {
			if _, _, err := net.SplitHostPort(strings.TrimPrefix(target, "passthrough:///")); err != nil {
				t.Fatalf("parseTarget(%q) = %q, not host:port: %v", addr, target, err)
			}
		}
	})
}

func TestIdentify(t *testing.T) {
	tcpPeer := &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}}
	unixPeer := &peer.Peer{Addr: &net.UnixAddr{Net: "unix"}, AuthInfo: unixPeerInfo{principal: authz.Principal{Kind: authz.KindUnix, Name: "1000"}}}
	relayed := func(v ...string) metadata.MD {
		md := metadata.MD{}
		for _, x := range v {
			md.Append(PrincipalMetadataKey, x)
		}
		return md
	}
	tests := []struct {
		name string
		face Face
		p    *peer.Peer
		md   metadata.MD
		want string
	}{
		{"in-process, no relay: the node itself", FaceInProcess, nil, nil, "internal:self"},
		{"in-process relay of a token", FaceInProcess, nil, relayed("token:ci"), "token:ci"},
		{"in-process relay cannot claim internal", FaceInProcess, nil, relayed("internal:self"), "anonymous"},
		{"in-process relay of garbage", FaceInProcess, nil, relayed("nonsense"), "anonymous"},
		{"in-process relay twice", FaceInProcess, nil, relayed("token:a", "uid:0"), "anonymous"},
		{"unix peer", FaceUnix, unixPeer, nil, "uid:1000"},
		{"unix peer naming another principal in metadata", FaceUnix, unixPeer, relayed("token:ci"), "uid:1000"},
		{"tcp without a certificate", FaceTCP, tcpPeer, nil, "anonymous"},
		{"tcp claiming a principal in metadata", FaceTCP, tcpPeer, relayed("uid:0"), "anonymous"},
		{"unix face without peer info", FaceUnix, tcpPeer, nil, "anonymous"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.p != nil {
				ctx = peer.NewContext(ctx, tt.p)
			}
			if tt.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tt.md)
			}
			if got := identify(ctx, tt.face).String(); got != tt.want {
				t.Errorf("identify = %q, want %q", got, tt.want)
			}
		})
	}
}
