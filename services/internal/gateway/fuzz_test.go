package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// FuzzGateway sends arbitrary request bodies and unit IDs through the
// handler, to the test service called directly: whatever arrives, the answer is a
// well-formed HTTP reply, and every error is a JSON status.
func FuzzGateway(f *testing.F) {
	for _, seed := range []struct{ unit, body string }{
		{"u1", `{"params":{"node":"localhost","workType":"echo"},"stdin":"aGk="}`},
		{"missing", `{"stdin":"not base64!"}`},
		{"bad%2Fid", `{"params":`},
		{"..", strings.Repeat("[", 300)},
		{"noagent", `{"params":{"node":1}}`},
	} {
		f.Add(seed.unit, seed.body)
	}
	h := directHandler(f, Options{MaxBodyBytes: 512, Policy: openPolicy(f)}, testControl{proceed: make(chan struct{})})
	f.Fuzz(func(t *testing.T, unit, body string) {
		post := httptest.NewRequest(http.MethodPost, "/v1/work", strings.NewReader(body))
		post.Header.Set("Content-Type", "application/json")
		for _, req := range []*http.Request{
			post,
			httptest.NewRequest(http.MethodGet, "/v1/work/"+url.PathEscape(unit), nil),
		} {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code == http.StatusOK {
				continue
			}
			var st struct {
				Code *int `json:"code"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Code == nil {
				t.Fatalf("%s %s = %d with body %q: not a JSON status (%v)", req.Method, req.URL, w.Code, w.Body.Bytes(), err)
			}
		}
	})
}

// FuzzGuard: whatever Host, Origin, Authorization and Content-Type a
// request carries, the guard answers with a JSON status or lets it through
// to the gateway, never panics, and lets no request without the admin
// token or a same-origin/IP Host reach a handler as a token principal.
func FuzzGuard(f *testing.F) {
	f.Add("127.0.0.1:8080", "", "Bearer "+testToken, "application/json", "POST")
	f.Add("evil.example:8080", "http://evil.example", "", "text/plain", "POST")
	f.Add("[::1]", "null", "Basic abc", "application/json; charset=utf-8", "DELETE")
	f.Add("localhost", "http://localhost", "Bearer", "", "OPTIONS")
	policy, err := authz.New(authz.Options{Logger: quietLogger(), Rules: []authz.Rule{
		{Role: authz.RoleAdmin, Token: testToken, TokenName: "admin"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	h := fuzzHandler(f, Options{Policy: policy, Listen: "127.0.0.1:8080"})
	f.Fuzz(func(t *testing.T, host, origin, auth, ctype, method string) {
		req, err := http.NewRequest(method, "http://127.0.0.1:8080/v1/status", strings.NewReader("{}"))
		if err != nil {
			return // not a method net/http accepts
		}
		req.Host = host
		for k, v := range map[string]string{"Origin": origin, "Authorization": auth, "Content-Type": ctype} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code == http.StatusOK {
			// The scheme name is case-insensitive (RFC 9110 §11.1).
			scheme, token, _ := strings.Cut(auth, " ")
			if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) != testToken {
				t.Fatalf("%s with Authorization %q answered 200", method, auth)
			}
			return
		}
		if w.Code == http.StatusNoContent || w.Code == http.StatusMethodNotAllowed || w.Code == http.StatusNotImplemented {
			return
		}
		var st struct {
			Code *int `json:"code"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Code == nil {
			t.Fatalf("%s Host %q Origin %q = %d with body %q: not a JSON status (%v)", method, host, origin, w.Code, w.Body.Bytes(), err)
		}
	})
}

// fuzzHandler serves the test ControlService over an in-process gRPC
// server, as the router does (authorization included), and returns the
// gateway in front of it; everything stops when the fuzz target ends.
func fuzzHandler(f *testing.F, opts Options) http.Handler {
	f.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := grpcserve.NewInProcess()
	srv := grpcserve.New(grpcserve.Options{Logger: quietLogger(), Policy: opts.Policy, Face: grpcserve.FaceInProcess})
	controlv1.RegisterControlServiceServer(srv, testControl{proceed: make(chan struct{})})
	done := make(chan error, 1)
	go func() { done <- grpcserve.Serve(ctx, srv, p.Listener()) }()
	conn, err := p.Dial()
	if err != nil {
		cancel()
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = conn.Close(); cancel(); <-done })
	opts.Logger = quietLogger()
	h, err := New(ctx, conn, opts)
	if err != nil {
		f.Fatal(err)
	}
	return h
}

// directHandler is the gateway in front of svc called directly
// (directConn: no transport, no interceptors, so opts.Policy must allow
// everything), and a real health service: ten times as many inputs per
// second as fuzzHandler for targets about request decoding.
func directHandler(f *testing.F, opts Options, svc controlv1.ControlServiceServer) http.Handler {
	f.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	conn := newDirectConn(
		directService{&controlv1.ControlService_ServiceDesc, svc},
		directService{&healthpb.Health_ServiceDesc, health.NewServer()},
	)
	opts.Logger = quietLogger()
	h, err := New(ctx, conn, opts)
	if err != nil {
		f.Fatal(err)
	}
	return h
}

// routeControl is a ControlService for FuzzGatewayRoutes: every method
// answers at once, echoing the unit ID or node it received, unless that
// starts with "!", whose next byte picks an error of the catalogue ("!x"
// the one internal error; "!l" fails a results stream after its first
// chunk).
type routeControl struct {
	controlv1.UnimplementedControlServiceServer
}

func routeError(key string) error {
	if !strings.HasPrefix(key, "!") || len(key) < 2 {
		return nil
	}
	switch key[1] {
	case 'n':
		return apierr.NotFound("unknown work unit " + key)
	case 'i':
		return apierr.InvalidArgument("unit_id", "must not be "+key)
	case 'd':
		return apierr.SignatureRejected("could not verify signature: signature is empty")
	case 'a':
		return apierr.NoWorkAgent()
	case 'm':
		return apierr.MeshFailure("nodeb", "timeout")
	case 'r':
		return apierr.ReloadFailed("reload failed", 3)
	case 'x':
		return apierr.Internal(errors.New("disk on fire"))
	}
	return nil
}

func (routeControl) GetStatus(context.Context, *controlv1.GetStatusRequest) (*controlv1.GetStatusResponse, error) {
	return &controlv1.GetStatusResponse{Status: &meshv1.NodeStatus{NodeId: "nodea"}}, nil
}

func (routeControl) GetVersion(context.Context, *controlv1.GetVersionRequest) (*controlv1.GetVersionResponse, error) {
	return &controlv1.GetVersionResponse{Version: &meshv1.VersionInfo{Version: "1.0"}}, nil
}

func (routeControl) Ping(_ context.Context, req *controlv1.PingRequest) (*controlv1.PingResponse, error) {
	if err := routeError(req.GetNode()); err != nil {
		return nil, err
	}
	return &controlv1.PingResponse{Result: &meshv1.PingResult{FromNode: req.GetNode()}}, nil
}

func (routeControl) Traceroute(req *controlv1.TracerouteRequest, stream grpc.ServerStreamingServer[controlv1.TracerouteResponse]) error {
	if err := routeError(req.GetNode()); err != nil {
		return err
	}
	for i := range 2 {
		if err := stream.Send(&controlv1.TracerouteResponse{Hop: &meshv1.TracerouteHop{Index: uint32(i), FromNode: req.GetNode()}}); err != nil {
			return err
		}
	}
	return nil
}

func (routeControl) Reload(context.Context, *controlv1.ReloadRequest) (*controlv1.ReloadResponse, error) {
	return &controlv1.ReloadResponse{}, nil
}

func (routeControl) ListWork(_ context.Context, req *controlv1.ListWorkRequest) (*controlv1.ListWorkResponse, error) {
	if err := routeError(req.GetUnitId()); err != nil {
		return nil, err
	}
	return &controlv1.ListWorkResponse{Units: []*workv1.UnitStatus{{UnitId: req.GetUnitId()}}}, nil
}

func (routeControl) GetWorkResults(req *controlv1.GetWorkResultsRequest, stream grpc.ServerStreamingServer[controlv1.GetWorkResultsResponse]) error {
	id := req.GetUnitId()
	if strings.HasPrefix(id, "!l") {
		if err := stream.Send(&controlv1.GetWorkResultsResponse{Data: []byte(id), Offset: req.GetOffset()}); err != nil {
			return err
		}
		return apierr.MeshFailure("nodeb", "timeout")
	}
	if err := routeError(id); err != nil {
		return err
	}
	for range 2 {
		if err := stream.Send(&controlv1.GetWorkResultsResponse{Data: []byte(id), Offset: req.GetOffset()}); err != nil {
			return err
		}
	}
	return nil
}

func (routeControl) CancelWork(_ context.Context, req *controlv1.CancelWorkRequest) (*controlv1.CancelWorkResponse, error) {
	if err := routeError(req.GetUnitId()); err != nil {
		return nil, err
	}
	return &controlv1.CancelWorkResponse{UnitId: req.GetUnitId()}, nil
}

func (routeControl) ReleaseWork(_ context.Context, req *controlv1.ReleaseWorkRequest) (*controlv1.ReleaseWorkResponse, error) {
	if err := routeError(req.GetUnitId()); err != nil {
		return nil, err
	}
	return &controlv1.ReleaseWorkResponse{UnitId: req.GetUnitId()}, nil
}

// gatewayRoutes are the REST routes other than work create and get; %s is
// the path parameter. The last entry stands for any method and path.
var gatewayRoutes = []struct{ method, path string }{
	{http.MethodGet, "/v1/work"},
	{http.MethodGet, "/v1/work/%s/results"},
	{http.MethodPost, "/v1/work/%s:cancel"},
	{http.MethodDelete, "/v1/work/%s"},
	{http.MethodGet, "/v1/status"},
	{http.MethodGet, "/v1/version"},
	{http.MethodPost, "/v1/nodes/%s:ping"},
	{http.MethodGet, "/v1/nodes/%s/traceroute"},
	{http.MethodPost, "/v1/reload"},
	{"", "%s"},
}

// FuzzGatewayRoutes sends fuzzed path parameters, query strings and bodies
// to every REST route but work create and get (FuzzGateway's), and
// arbitrary methods and paths, through the gateway to a ControlService
// called directly: every answer is a 2xx whose body is JSON (one value, or
// a stream of them), or a JSON status; a 500 only comes from the service's
// internal error; and a plain unit ID or node reaches the service as sent.
func FuzzGatewayRoutes(f *testing.F) {
	for _, seed := range []struct {
		route                      uint8
		param, query, body, method string
	}{
		{0, "", "unitId=abc", "", ""},
		{0, "", "unit_id=!n&x=%zz", "", ""},
		{1, "abc", "offset=5&signature=t", "", ""},
		{1, "abc", "offset=-1", "", ""},
		{1, "abc", "offset=99999999999999999999", "", ""},
		{1, "!l", "", "", ""},
		{2, "abc", "", `{"signature":"t"}`, ""},
		{2, "abc", "", `{"unitId":"other"}`, ""},
		{2, "!x", "", `{}`, ""},
		{3, "abc", "force=true", "", ""},
		{3, "abc", "force=maybe", "", ""},
		{4, "", "", "", ""},
		{5, "", "", "", ""},
		{6, "nodeb", "", `{"hopsToLive":3,"timeout":"1s"}`, ""},
		{6, "nodeb", "", `{"timeout":"forever"}`, ""},
		{7, "!m", "", "", ""},
		{8, "", "", `{}`, ""},
		{8, "", "", `[`, ""},
		{9, "/v1/work/a/b/c", "", "", "PATCH"},
		{9, "/openapi.json", "", "", "GET"},
		{9, "/healthz", "", "", "GET"},
		{9, "//v1/../v1/status", "", "", "GET"},
	} {
		f.Add(seed.route, seed.param, seed.query, seed.body, seed.method)
	}
	h := directHandler(f, Options{MaxBodyBytes: 512, Policy: openPolicy(f)}, routeControl{})
	f.Fuzz(func(t *testing.T, route uint8, param, query, body, method string) {
		r := gatewayRoutes[int(route)%len(gatewayRoutes)]
		path := param
		if r.method != "" {
			method = r.method
			path = strings.Replace(r.path, "%s", url.PathEscape(param), 1)
		}
		target := "http://127.0.0.1:8080" + path
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(method, target, strings.NewReader(body))
		if err != nil || !strings.HasPrefix(req.URL.Path, "/") {
			return // not a request net/http would send
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		what := func() string { return fmt.Sprintf("%s %s = %d with body %q", method, target, w.Code, w.Body.Bytes()) }
		if w.Code >= 200 && w.Code < 300 {
			for dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes())); ; {
				var v any
				if err := dec.Decode(&v); err == io.EOF {
					break
				} else if err != nil {
					if strings.HasPrefix(path, "/openapi") {
						break
					}
					t.Fatalf("%s: not JSON (%v)", what(), err)
				}
			}
			// A plain parameter (nothing the path grammar or the
			// catalogue switch would read) is what the service echoes.
			if r.method != "" && strings.Contains(r.path, "%s") && param != "" && !strings.ContainsAny(param, "/%:!") &&
				(route%10 == 2 || route%10 == 3 || route%10 == 6) {
				var echo struct {
					UnitID string `json:"unitId"`
					Result struct {
						FromNode string `json:"fromNode"`
					} `json:"result"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &echo); err != nil || (echo.UnitID != param && echo.Result.FromNode != param) {
					t.Fatalf("%s: the service did not get %q (%v)", what(), param, err)
				}
			}
			return
		}
		var st struct {
			Code    *int    `json:"code"`
			Message *string `json:"message"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.Code == nil || st.Message == nil {
			t.Fatalf("%s: not a JSON status (%v)", what(), err)
		}
		if w.Code == http.StatusInternalServerError && r.method != "" && !strings.HasPrefix(param, "!x") {
			t.Fatalf("%s: internal error without the service failing", what())
		}
	})
}
