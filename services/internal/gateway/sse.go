package gateway

import (
	"bytes"
	"net/http"
	"strings"
)

// sseRoutes are the streaming routes a browser may read as Server-Sent
// Events (Accept: text/event-stream): the watches of ControlService.
var sseRoutes = map[string]bool{"/v1/mesh/watch": true, "/v1/work/watch": true}

// wantsSSE reports whether r asks a watch route for Server-Sent Events.
func wantsSSE(r *http.Request) bool {
	return r.Method == http.MethodGet && sseRoutes[r.URL.Path] &&
		strings.Contains(strings.ToLower(r.Header.Get("Accept")), "text/event-stream")
}

// sseWriter turns grpc-gateway's newline-delimited JSON stream into
// Server-Sent Events: each line becomes one "data:" event, flushed at
// once. The JSON is the same as the line form's ({"result": ...}, or
// {"error": ...} as the last event).
type sseWriter struct {
	w       http.ResponseWriter
	buf     []byte
	started bool
}

func (s *sseWriter) Header() http.Header { return s.w.Header() }

func (s *sseWriter) WriteHeader(code int) {
	if s.started {
		return
	}
	s.started = true
	if code == http.StatusOK {
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Del("Content-Length")
	}
	s.w.WriteHeader(code)
}

func (s *sseWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.WriteHeader(http.StatusOK)
	}
	if s.w.Header().Get("Content-Type") != "text/event-stream" {
		return s.w.Write(p) // an error before the stream began: plain JSON
	}
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSpace(s.buf[:i])
		s.buf = s.buf[i+1:]
		if len(line) == 0 {
			continue
		}
		var ev []byte
		ev = append(ev, "data: "...)
		ev = append(ev, line...)
		ev = append(ev, "\n\n"...)
		if _, err := s.w.Write(ev); err != nil {
			return 0, err
		}
	}
	s.Flush()
	return len(p), nil
}

func (s *sseWriter) Flush() {
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// sse serves watch routes as Server-Sent Events when asked.
type sse struct{ next http.Handler }

func (h sse) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !wantsSSE(r) {
		h.next.ServeHTTP(w, r)
		return
	}
	r.Header.Set("Accept", "application/json")
	h.next.ServeHTTP(&sseWriter{w: w}, r)
}
