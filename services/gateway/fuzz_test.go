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
	"github.com/receptor-mesh/receptor/services/grpcserve"
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
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := grpcserve.NewInProcess()
	srv := grpcserve.New(grpcserve.Options{Logger: quietLogger()})
	controlv1.RegisterControlServiceServer(srv, testControl{proceed: make(chan struct{})})
	done := make(chan error, 1)
	go func() { done <- grpcserve.Serve(ctx, srv, p.Listener()) }()
	defer func() { cancel(); <-done }()
	conn, err := p.Dial()
	if err != nil {
		f.Fatal(err)
	}
	defer conn.Close()
	h, err := New(ctx, conn, Options{Logger: quietLogger(), MaxBodyBytes: 512})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, unit, body string) {
		for _, req := range []*http.Request{
			httptest.NewRequest(http.MethodPost, "/v1/work", strings.NewReader(body)),
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
