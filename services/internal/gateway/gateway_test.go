package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testControl answers GetStatus, maps GetWork unit IDs to catalogue errors,
// echoes CreateWork's stdin size, and streams three result chunks, each
// only after the test allows it through proceed.
type testControl struct {
	controlv1.UnimplementedControlServiceServer
	proceed chan struct{}
}

func (testControl) GetStatus(ctx context.Context, _ *controlv1.GetStatusRequest) (*controlv1.GetStatusResponse, error) {
	// The node ID is "nodea", or the principal the gateway relayed when
	// the caller identified itself.
	id := "nodea"
	if pr := authz.FromContext(ctx); pr.Kind != authz.KindAnonymous {
		id = pr.String()
	}
	return &controlv1.GetStatusResponse{Status: &meshv1.NodeStatus{NodeId: id, SystemCpuCount: 2}}, nil
}

func (testControl) GetWork(_ context.Context, req *controlv1.GetWorkRequest) (*controlv1.GetWorkResponse, error) {
	switch id := req.GetUnitId(); id {
	case "missing":
		return nil, apierr.NotFound("unknown work unit " + id)
	case "denied":
		return nil, apierr.SignatureRejected("could not verify signature: signature is empty")
	case "bad":
		return nil, apierr.InvalidArgument("unit_id", "must not be bad")
	case "noagent":
		return nil, apierr.NoWorkAgent()
	case "slow":
		return nil, apierr.MeshFailure("nodeb", "timeout")
	case "reload":
		return nil, apierr.ReloadFailed("no configuration file was provided, reload function not set", 4)
	case "bug":
		return nil, apierr.Internal(errors.New("disk on fire"))
	default:
		return &controlv1.GetWorkResponse{Status: &workv1.UnitStatus{UnitId: id}}, nil
	}
}

func (testControl) CreateWork(_ context.Context, req *controlv1.CreateWorkRequest) (*controlv1.CreateWorkResponse, error) {
	return &controlv1.CreateWorkResponse{Result: &workv1.SubmitResult{UnitId: fmt.Sprintf("stdin%d", len(req.GetStdin()))}}, nil
}

func (c testControl) GetWorkResults(req *controlv1.GetWorkResultsRequest, stream grpc.ServerStreamingServer[controlv1.GetWorkResultsResponse]) error {
	if err := stream.Send(&controlv1.GetWorkResultsResponse{Offset: req.GetOffset()}); err != nil {
		return err
	}
	for i := range 3 {
		select {
		case <-c.proceed:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
		chunk := []byte(fmt.Sprintf("chunk%d", i))
		if err := stream.Send(&controlv1.GetWorkResultsResponse{Data: chunk, Offset: int64(i * len(chunk))}); err != nil {
			return err
		}
	}
	return nil
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type env struct {
	base    string
	client  *http.Client
	proceed chan struct{}
	token   string // sent as a bearer token when set
}

// testToken is the admin token of the default test policy.
const testToken = "test-admin-token-0123456789"

// openPolicy makes anonymous callers admin, so tests of the REST mapping
// need no token; guard tests pass policies of their own.
func openPolicy(t testing.TB) *authz.Policy {
	p, err := authz.New(authz.Options{Logger: quietLogger(), Rules: []authz.Rule{
		{Role: authz.RoleAdmin, Principals: []string{"anonymous"}},
		{Role: authz.RoleAdmin, Token: testToken, TokenName: "admin"},
		{Role: authz.RoleReader, Token: "test-reader-token-0123456789", TokenName: "reader"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs a real gRPC server on a Unix socket, a client connection to it,
// and the gateway on 127.0.0.1.
func start(t *testing.T, opts Options, tlsConf *tls.Config) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stops []chan error
	t.Cleanup(func() {
		cancel()
		for _, done := range stops {
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		}
	})
	proceed := make(chan struct{})
	if opts.Policy == nil {
		opts.Policy = openPolicy(t)
	}
	// As in the router: the gateway reaches an in-process server that
	// authorizes the principal it relays.
	srv := grpcserve.New(grpcserve.Options{Logger: quietLogger(), Policy: opts.Policy, Face: grpcserve.FaceInProcess})
	controlv1.RegisterControlServiceServer(srv, testControl{proceed: proceed})
	pipe := grpcserve.NewInProcess()
	grpcDone := make(chan error, 1)
	go func() { grpcDone <- grpcserve.Serve(ctx, srv, pipe.Listener()) }()

	conn, err := pipe.Dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	opts.Logger = quietLogger()
	h, err := New(ctx, conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	hlis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	httpDone := make(chan error, 1)
	go func() { httpDone <- Serve(ctx, h, hlis, tlsConf, quietLogger()) }()
	// The HTTP server stops first: its streams hold gRPC calls open.
	stops = append(stops, httpDone, grpcDone)

	transport := &http.Transport{}
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
		transport.TLSClientConfig = &tls.Config{RootCAs: trustServed(tlsConf), MinVersion: tls.VersionTLS12}
		transport.ForceAttemptHTTP2 = true
	}
	client := &http.Client{Transport: transport, Timeout: 20 * time.Second}
	t.Cleanup(transport.CloseIdleConnections)
	return &env{base: scheme + "://" + hlis.Addr().String(), client: client, proceed: proceed}
}

func (e *env) do(t *testing.T, method, path string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestStatusJSON(t *testing.T) {
	e := start(t, Options{}, nil)
	code, body := e.do(t, http.MethodGet, "/v1/status", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/status = %d %s", code, body)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("status is not JSON: %v: %s", err, body)
	}
	// lowerCamelCase as the OpenAPI document, int64 as a string, and unset
	// fields present; the call reached the server over its Unix socket but
	// was not taken for a local client's.
	if got["nodeId"] != "nodea" || got["systemCpuCount"] != "2" {
		t.Errorf("status = %s", body)
	}
	if _, ok := got["connections"]; !ok {
		t.Errorf("unset field connections missing (EmitUnpopulated): %s", body)
	}
}

func TestHealthz(t *testing.T) {
	e := start(t, Options{}, nil)
	if code, body := e.do(t, http.MethodGet, "/healthz", nil); code != http.StatusOK || !strings.Contains(string(body), "SERVING") {
		t.Errorf("GET /healthz = %d %s", code, body)
	}
}

func TestOpenAPI(t *testing.T) {
	e := start(t, Options{}, nil)
	code, body := e.do(t, http.MethodGet, "/openapi.json", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /openapi.json = %d", code)
	}
	var doc struct {
		Swagger string                     `json:"swagger"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger = %q, want 2.0", doc.Swagger)
	}
	for _, p := range []string{"/v1/status", "/v1/work/{unitId}/results"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("openapi.json lacks path %s", p)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	const limit = 1024
	e := start(t, Options{MaxBodyBytes: limit}, nil)
	small := `{"params":{"node":"localhost","workType":"echo"},"stdin":"aGVsbG8="}`
	big := `{"params":{"node":"localhost","workType":"echo"},"stdin":"` + strings.Repeat("A", 2*limit) + `"}`
	// onlyReader hides the length so the client sends the body chunked.
	type onlyReader struct{ io.Reader }
	tests := []struct {
		name     string
		body     io.Reader
		wantCode int
		wantBody string
	}{
		{"under the limit", strings.NewReader(small), http.StatusOK, `"unitId":"stdin5"`},
		{"declared length over the limit", strings.NewReader(big), http.StatusRequestEntityTooLarge, "request body exceeds the limit of 1024 bytes"},
		{"chunked body over the limit", onlyReader{strings.NewReader(big)}, http.StatusRequestEntityTooLarge, "request body exceeds the limit of 1024 bytes"},
		{"unknown field rejected", strings.NewReader(`{"parms":{}}`), http.StatusBadRequest, "parms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.do(t, http.MethodPost, "/v1/work", tt.body)
			if code != tt.wantCode || !strings.Contains(string(body), tt.wantBody) {
				t.Fatalf("POST /v1/work = %d %s; want %d with %q", code, body, tt.wantCode, tt.wantBody)
			}
			if code != http.StatusOK {
				var st struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}
				if err := json.Unmarshal(body, &st); err != nil || st.Message == "" {
					t.Errorf("error body %s is not a JSON status: %v", body, err)
				}
			}
		})
	}
}

func TestErrorCodes(t *testing.T) {
	e := start(t, Options{}, nil)
	tests := []struct {
		unit     string
		wantCode int
		wantMsg  string
	}{
		{"ok1", http.StatusOK, ""},
		{"missing", http.StatusNotFound, "unknown work unit missing"},
		{"denied", http.StatusForbidden, "could not verify signature: signature is empty"},
		{"bad", http.StatusBadRequest, "invalid unit_id: must not be bad"},
		{"noagent", http.StatusServiceUnavailable, apierr.Text(apierr.NoWorkAgent())},
		{"slow", http.StatusGatewayTimeout, "timeout"},
		{"reload", http.StatusBadRequest, "no configuration file was provided, reload function not set ERRORCODE 4"},
		{"bug", http.StatusInternalServerError, "internal error: disk on fire"},
	}
	for _, tt := range tests {
		t.Run(tt.unit, func(t *testing.T) {
			code, body := e.do(t, http.MethodGet, "/v1/work/"+tt.unit, nil)
			if code != tt.wantCode {
				t.Fatalf("GET /v1/work/%s = %d %s, want %d", tt.unit, code, body, tt.wantCode)
			}
			if tt.wantMsg == "" {
				return
			}
			var st struct {
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &st); err != nil || st.Message != tt.wantMsg {
				t.Errorf("error body %s (%v), want message %q", body, err, tt.wantMsg)
			}
		})
	}
}

// TestResultsStream checks that chunks reach the HTTP client as they are
// produced: the server sends chunk n+1 only after the client has read chunk
// n, so a gateway that buffered the response would never finish.
func TestResultsStream(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", secure), func(t *testing.T) {
			var tlsConf *tls.Config
			if secure {
				tlsConf = testServerTLS(t)
			}
			e := start(t, Options{}, tlsConf)
			resp, err := e.client.Get(e.base + "/v1/work/u1/results?offset=0")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET results = %d", resp.StatusCode)
			}
			if secure && resp.ProtoMajor != 2 {
				t.Errorf("HTTPS served %s, want HTTP/2", resp.Proto)
			}
			lines := bufio.NewScanner(resp.Body)
			next := func() map[string]any {
				t.Helper()
				if !lines.Scan() {
					t.Fatalf("stream ended early: %v", lines.Err())
				}
				var m map[string]any
				if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
					t.Fatalf("stream line %q: %v", lines.Bytes(), err)
				}
				return m
			}
			first := next()
			if data := first["result"].(map[string]any)["data"]; data != "" {
				t.Errorf("first chunk data = %v, want empty", data)
			}
			var got bytes.Buffer
			for range 3 {
				select {
				case e.proceed <- struct{}{}:
				case <-time.After(20 * time.Second):
					t.Fatal("results handler stopped waiting for the client")
				}
				data := next()["result"].(map[string]any)["data"].(string)
				got.WriteString(data)
			}
			// base64 of chunk0, chunk1, chunk2 (JSON bytes fields).
			if want := "Y2h1bmswY2h1bmsxY2h1bmsy"; got.String() != want {
				t.Errorf("data = %q, want %q", got.String(), want)
			}
			if lines.Scan() {
				t.Errorf("unexpected line after the last chunk: %s", lines.Bytes())
			}
		})
	}
}

func TestNewRejectsNilConn(t *testing.T) {
	if _, err := New(context.Background(), nil, Options{}); err == nil {
		t.Error("New with nil conn succeeded")
	}
}

// TestGuard: the gateway refuses foreign Host names, cross-site origins,
// non-JSON posts and unknown tokens before anything runs, and relays the
// principal of a good token to the gRPC server, which authorizes it.
func TestGuard(t *testing.T) {
	t.Parallel()
	policy, err := authz.New(authz.Options{Logger: quietLogger(), Rules: []authz.Rule{
		{Role: authz.RoleAdmin, Token: testToken, TokenName: "admin"},
		{Role: authz.RoleReader, Token: "test-reader-token-0123456789", TokenName: "reader"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, Options{Policy: policy, AllowOrigins: []string{"https://ui.example"}}, nil)
	tests := []struct {
		name            string
		method, path    string
		host, origin    string
		token, ctype    string
		body            string
		want            int
		wantBodyContain string
	}{
		{"no token", "GET", "/v1/status", "", "", "", "", "", http.StatusUnauthorized, "authentication required"},
		{"unknown token", "GET", "/v1/status", "", "", "wrong-token-0123456789", "", "", http.StatusUnauthorized, "unknown bearer token"},
		{"admin token", "GET", "/v1/status", "", "", testToken, "", "", http.StatusOK, "token:admin"},
		{"reader may read", "GET", "/v1/status", "", "", "test-reader-token-0123456789", "", "", http.StatusOK, "token:reader"},
		{"reader may not submit", "POST", "/v1/work", "", "", "test-reader-token-0123456789", "application/json", `{"params":{"workType":"echo"}}`, http.StatusForbidden, "may not work submit"},
		{"text/plain post", "POST", "/v1/work", "", "", testToken, "text/plain", `{"params":{"workType":"echo"}}`, http.StatusUnsupportedMediaType, "application/json"},
		{"form post", "POST", "/v1/work", "", "", testToken, "application/x-www-form-urlencoded", "a=b", http.StatusUnsupportedMediaType, "application/json"},
		{"foreign Host (DNS rebinding)", "GET", "/v1/status", "attacker.example:8080", "", testToken, "", "", http.StatusForbidden, "allowedhosts"},
		{"localhost Host", "GET", "/v1/status", "localhost:8080", "", testToken, "", "", http.StatusOK, ""},
		{"cross-site Origin", "POST", "/v1/work", "", "http://evil.example", testToken, "application/json", `{}`, http.StatusForbidden, "cross-origin"},
		{"allowed Origin", "GET", "/v1/status", "", "https://ui.example", testToken, "", "", http.StatusOK, ""},
		{"openapi needs a principal", "GET", "/openapi.json", "", "", "", "", "", http.StatusUnauthorized, ""},
		{"healthz needs a principal", "GET", "/healthz", "", "", "", "", "", http.StatusUnauthorized, ""},
		{"healthz with a token", "GET", "/healthz", "", "", "test-reader-token-0123456789", "", "", http.StatusOK, "SERVING"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, e.base+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.host != "" {
				req.Host = tt.host
			}
			for k, v := range map[string]string{"Origin": tt.origin, "Content-Type": tt.ctype} {
				if v != "" {
					req.Header.Set(k, v)
				}
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.wantBodyContain) {
				t.Fatalf("%s %s = %d %s, want %d containing %q", tt.method, tt.path, resp.StatusCode, b, tt.want, tt.wantBodyContain)
			}
			if tt.want == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" && tt.path == "/v1/status" {
				t.Errorf("401 without WWW-Authenticate")
			}
			if tt.name == "allowed Origin" && resp.Header.Get("Access-Control-Allow-Origin") != tt.origin {
				t.Errorf("allowed origin: Access-Control-Allow-Origin = %q", resp.Header.Get("Access-Control-Allow-Origin"))
			}
		})
	}
}

// TestSlowBody: a client that announces a body and then trickles it is cut
// off at the body deadline instead of holding its connection.
func TestSlowBody(t *testing.T) {
	old := bodyReadTimeout
	bodyReadTimeout = 300 * time.Millisecond
	t.Cleanup(func() { bodyReadTimeout = old })
	e := start(t, Options{}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = io.WriteString(conn, "POST /v1/work HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"+
		"Authorization: Bearer "+testToken+"\r\nContent-Length: 100000\r\n\r\n{")
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	b, _ := io.ReadAll(conn) // ends when the server gives up on the body
	if time.Since(start) > 8*time.Second {
		t.Fatalf("server held a trickling body for %v", time.Since(start))
	}
	if !strings.Contains(string(b), "HTTP/1.1 4") && len(b) != 0 {
		t.Errorf("reply to an unfinished body: %q", b)
	}
}
