package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
)

// FuzzGateway sends arbitrary request bodies and unit IDs through the
// handler, over an in-process gRPC server: whatever arrives, the answer is a
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
	h := fuzzHandler(f, Options{MaxBodyBytes: 512, Policy: openPolicy(f)})
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
			if auth != "Bearer "+testToken && strings.TrimSpace(strings.TrimPrefix(auth, "Bearer ")) != testToken {
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

// fuzzHandler serves the test ControlService in-process, as the router
// does, and returns the gateway in front of it; everything stops when the
// fuzz target ends.
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
