package httprules

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a ControlService that remembers the last request it got and
// answers with data derived from it, so a wrong binding shows in the reply too.
type recorder struct {
	controlv1.UnimplementedControlServiceServer

	mu   sync.Mutex
	last proto.Message
}

func (r *recorder) record(m proto.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = proto.Clone(m)
}

func (r *recorder) lastRequest() proto.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

func (r *recorder) GetStatus(_ context.Context, req *controlv1.GetStatusRequest) (*controlv1.GetStatusResponse, error) {
	r.record(req)
	return &controlv1.GetStatusResponse{Status: &meshv1.NodeStatus{NodeId: "nodea", SystemCpuCount: 2}}, nil
}

func (r *recorder) GetVersion(_ context.Context, req *controlv1.GetVersionRequest) (*controlv1.GetVersionResponse, error) {
	r.record(req)
	return &controlv1.GetVersionResponse{Version: &meshv1.VersionInfo{Version: "1.5.0"}}, nil
}

func (r *recorder) Ping(_ context.Context, req *controlv1.PingRequest) (*controlv1.PingResponse, error) {
	r.record(req)
	return &controlv1.PingResponse{Result: &meshv1.PingResult{FromNode: req.GetNode(), Rtt: durationpb.New(1500)}}, nil
}

func (r *recorder) Traceroute(req *controlv1.TracerouteRequest, stream grpc.ServerStreamingServer[controlv1.TracerouteResponse]) error {
	r.record(req)
	for i, node := range []string{"nodea", req.GetNode()} {
		hop := &meshv1.TracerouteHop{Index: uint32(i), FromNode: node}
		if err := stream.Send(&controlv1.TracerouteResponse{Hop: hop}); err != nil {
			return err
		}
	}
	return nil
}

func (r *recorder) Reload(_ context.Context, req *controlv1.ReloadRequest) (*controlv1.ReloadResponse, error) {
	r.record(req)
	return &controlv1.ReloadResponse{}, nil
}

func (r *recorder) CreateWork(_ context.Context, req *controlv1.CreateWorkRequest) (*controlv1.CreateWorkResponse, error) {
	r.record(req)
	status := &workv1.UnitStatus{UnitId: "u1", WorkType: req.GetParams().GetWorkType()}
	return &controlv1.CreateWorkResponse{Result: &workv1.SubmitResult{UnitId: "u1", Started: true, Status: status}}, nil
}

func (r *recorder) ListWork(_ context.Context, req *controlv1.ListWorkRequest) (*controlv1.ListWorkResponse, error) {
	r.record(req)
	return &controlv1.ListWorkResponse{Units: []*workv1.UnitStatus{{UnitId: req.GetUnitId()}}}, nil
}

func (r *recorder) GetWork(_ context.Context, req *controlv1.GetWorkRequest) (*controlv1.GetWorkResponse, error) {
	r.record(req)
	return &controlv1.GetWorkResponse{Status: &workv1.UnitStatus{UnitId: req.GetUnitId(), State: workv1.UnitState_UNIT_STATE_RUNNING}}, nil
}

func (r *recorder) GetWorkResults(req *controlv1.GetWorkResultsRequest, stream grpc.ServerStreamingServer[controlv1.GetWorkResultsResponse]) error {
	r.record(req)
	for _, chunk := range []*controlv1.GetWorkResultsResponse{
		{Offset: req.GetOffset()},
		{Offset: req.GetOffset(), Data: []byte("out")},
	} {
		if err := stream.Send(chunk); err != nil {
			return err
		}
	}
	return nil
}

func (r *recorder) CancelWork(_ context.Context, req *controlv1.CancelWorkRequest) (*controlv1.CancelWorkResponse, error) {
	r.record(req)
	return &controlv1.CancelWorkResponse{UnitId: req.GetUnitId()}, nil
}

func (r *recorder) ReleaseWork(_ context.Context, req *controlv1.ReleaseWorkRequest) (*controlv1.ReleaseWorkResponse, error) {
	r.record(req)
	return &controlv1.ReleaseWorkResponse{UnitId: req.GetUnitId(), Pending: req.GetForce()}, nil
}

// startGateway serves rec over an in-memory gRPC connection and puts the
// generated gateway, in proxy mode, in front of it.
func startGateway(t *testing.T, rec *recorder) *httptest.Server {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	controlv1.RegisterControlServiceServer(srv, rec)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("create gRPC client over bufconn: %v", err)
	}
	mux := runtime.NewServeMux()
	if err := controlv1.RegisterControlServiceHandler(context.Background(), mux, conn); err != nil {
		t.Fatalf("register ControlService gateway: %v", err)
	}
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		hs.Close()
		_ = conn.Close()
		srv.Stop()
		<-served
	})
	return hs
}

func TestControlHTTPRules(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		// wantReq is the request the gRPC method must receive.
		wantReq proto.Message
		// wantBody are substrings of the HTTP response body.
		wantBody []string
	}{
		{
			name: "status unwraps NodeStatus", method: http.MethodGet, path: "/v1/status",
			wantReq:  &controlv1.GetStatusRequest{},
			wantBody: []string{`"nodeId":"nodea"`, `"systemCpuCount":"2"`},
		},
		{
			name: "version unwraps VersionInfo", method: http.MethodGet, path: "/v1/version",
			wantReq:  &controlv1.GetVersionRequest{},
			wantBody: []string{`{"version":"1.5.0"`},
		},
		{
			name: "ping binds node from path and options from body", method: http.MethodPost,
			path: "/v1/nodes/nodeb:ping", body: `{"hopsToLive":3,"timeout":"2s"}`,
			wantReq:  &controlv1.PingRequest{Node: "nodeb", HopsToLive: proto.Uint32(3), Timeout: durationpb.New(2e9)},
			wantBody: []string{`"fromNode":"nodeb"`, `"rtt":"0.000001500s"`},
		},
		{
			name: "traceroute streams hops", method: http.MethodGet, path: "/v1/nodes/nodec/traceroute",
			wantReq:  &controlv1.TracerouteRequest{Node: "nodec"},
			wantBody: []string{`"fromNode":"nodea"`, `"index":1,"fromNode":"nodec"`},
		},
		{
			name: "reload", method: http.MethodPost, path: "/v1/reload", body: `{}`,
			wantReq:  &controlv1.ReloadRequest{},
			wantBody: []string{`{}`},
		},
		{
			name: "list all work", method: http.MethodGet, path: "/v1/work",
			wantReq:  &controlv1.ListWorkRequest{},
			wantBody: []string{`"units":[`},
		},
		{
			name: "list one unit by query", method: http.MethodGet, path: "/v1/work?unitId=abc123",
			wantReq:  &controlv1.ListWorkRequest{UnitId: "abc123"},
			wantBody: []string{`"unitId":"abc123"`},
		},
		{
			name: "create work takes params and base64 stdin", method: http.MethodPost, path: "/v1/work",
			body: `{"params":{"workType":"echo","node":"localhost","params":{"params":"-n"}},"stdin":"aGVsbG8="}`,
			wantReq: &controlv1.CreateWorkRequest{
				Params: &workv1.SubmitParams{WorkType: "echo", Node: "localhost", Params: map[string]string{"params": "-n"}},
				Stdin:  []byte("hello"),
			},
			wantBody: []string{`"started":true`, `"workType":"echo"`},
		},
		{
			name: "get work unwraps UnitStatus", method: http.MethodGet, path: "/v1/work/abc123",
			wantReq:  &controlv1.GetWorkRequest{UnitId: "abc123"},
			wantBody: []string{`{"unitId":"abc123","state":"UNIT_STATE_RUNNING"`},
		},
		{
			name: "results with offset and signature from query", method: http.MethodGet,
			path:     "/v1/work/abc123/results?offset=7&signature=jwt",
			wantReq:  &controlv1.GetWorkResultsRequest{UnitId: "abc123", Offset: 7, Signature: "jwt"},
			wantBody: []string{`"data":"b3V0"`, `"offset":"7"`},
		},
		{
			name: "cancel", method: http.MethodPost, path: "/v1/work/abc123:cancel", body: `{"signature":"jwt"}`,
			wantReq:  &controlv1.CancelWorkRequest{UnitId: "abc123", Signature: "jwt"},
			wantBody: []string{`"unitId":"abc123"`},
		},
		{
			name: "release", method: http.MethodDelete, path: "/v1/work/abc123",
			wantReq:  &controlv1.ReleaseWorkRequest{UnitId: "abc123"},
			wantBody: []string{`"unitId":"abc123"`},
		},
		{
			name: "force release by query", method: http.MethodDelete, path: "/v1/work/abc123?force=true",
			wantReq:  &controlv1.ReleaseWorkRequest{UnitId: "abc123", Force: true},
			wantBody: []string{`"pending":true`},
		},
	}
	rec := &recorder{}
	hs := startGateway(t, rec)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tc.method, hs.URL+tc.path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatalf("build %s %s: %v", tc.method, tc.path, err)
			}
			resp, err := hs.Client().Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.method, tc.path, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read response of %s %s: %v", tc.method, tc.path, err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s: HTTP %d: %s", tc.method, tc.path, resp.StatusCode, body)
			}
			if got := rec.lastRequest(); !proto.Equal(got, tc.wantReq) {
				t.Errorf("%s %s: gRPC request = %v, want %v", tc.method, tc.path, got, tc.wantReq)
			}
			compact := strings.Join(strings.Fields(string(body)), "")
			for _, want := range tc.wantBody {
				if !strings.Contains(compact, want) {
					t.Errorf("%s %s: response %s lacks %s", tc.method, tc.path, compact, want)
				}
			}
		})
	}
}

// Server-streaming routes answer with one JSON object per line, each wrapping a
// message in "result"; clients of GET /v1/work/{id}/results rely on this.
func TestResultsStreamIsNewlineDelimited(t *testing.T) {
	hs := startGateway(t, &recorder{})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, hs.URL+"/v1/work/u1/results?offset=3", nil)
	if err != nil {
		t.Fatalf("build results request: %v", err)
	}
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatalf("GET results: %v", err)
	}
	defer resp.Body.Close()
	var chunks []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var line struct {
			Result struct {
				Data   []byte `json:"data"`
				Offset string `json:"offset"`
			} `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("decode stream line %q: %v", sc.Text(), err)
		}
		if line.Result.Offset != "3" {
			t.Errorf("chunk offset = %q, want \"3\"", line.Result.Offset)
		}
		chunks = append(chunks, string(line.Result.Data))
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read results stream: %v", err)
	}
	if want := []string{"", "out"}; strings.Join(chunks, "|") != strings.Join(want, "|") {
		t.Errorf("chunks = %q, want %q", chunks, want)
	}
}
