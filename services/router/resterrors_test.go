package router

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// restError fetches path and decodes its body as the error envelope of
// unary routes: a google.rpc.Status JSON object at the top level.
func restError(t *testing.T, method, url string, body []byte) (int, map[string]any, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	_ = json.Unmarshal(bytes.TrimSpace(raw), &env)
	return resp.StatusCode, env, raw
}

// isStatusEnvelope reports whether env is a google.rpc.Status object:
// code, message and details at the top level, nothing else.
func isStatusEnvelope(env map[string]any) bool {
	_, code := env["code"].(float64)
	_, msg := env["message"].(string)
	_, details := env["details"].([]any)
	return code && msg && details && len(env) == 3
}

// TestRESTErrorEnvelope: the REST errors of the streaming results route use
// the same envelope and HTTP codes as the unary routes, and inline stdin
// over CreateWork's 4 MiB is 413 with a message naming the limit and the
// SubmitWork alternative, not gRPC's internal text.
func TestRESTErrorEnvelope(t *testing.T) {
	f := startFacesNode(t)

	code, unary, raw := restError(t, http.MethodGet, f.base+"/v1/work/nosuchunit", nil)
	if code != http.StatusNotFound || !isStatusEnvelope(unary) {
		t.Fatalf("GET /v1/work/nosuchunit = %d %s", code, raw)
	}
	code, env, raw := restError(t, http.MethodGet, f.base+"/v1/work/nosuchunit/results", nil)
	if code != http.StatusNotFound || !isStatusEnvelope(env) || env["message"] != unary["message"] || env["code"] != unary["code"] {
		t.Errorf("GET /v1/work/nosuchunit/results = %d %s, want 404 and the envelope of GET /v1/work/nosuchunit: %v", code, raw, unary)
	}

	for _, size := range []int{4<<20 + 1, 5 << 20} {
		body, err := json.Marshal(map[string]any{"params": map[string]any{"workType": "cat", "node": "a"}, "stdin": make([]byte, size)})
		if err != nil {
			t.Fatal(err)
		}
		code, env, raw := restError(t, http.MethodPost, f.base+"/v1/work", body)
		msg, _ := env["message"].(string)
		if code != http.StatusRequestEntityTooLarge || !isStatusEnvelope(env) ||
			!strings.Contains(msg, "4 MiB") || !strings.Contains(msg, "SubmitWork") || strings.Contains(msg, "grpc:") {
			t.Errorf("CreateWork with %d bytes of stdin = %d %.300s, want 413 naming the 4 MiB limit and SubmitWork", size, code, raw)
		}
	}
}
