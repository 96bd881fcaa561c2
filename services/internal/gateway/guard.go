package gateway

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// bodyReadTimeout bounds reading one request body, so a client that
// trickles its body (slowloris) holds a connection for a bounded time.
// A variable so that tests can shorten it.
var bodyReadTimeout = 2 * time.Minute

// guard is the gateway's front door, in this order: the Host header must
// name this gateway (no DNS rebinding), a browser's Origin must be this
// gateway's or an allowed one (no cross-site requests, no CORS unless
// configured), a POST must say it sends JSON (no form or text/plain
// posts), and the caller is authenticated: a bearer token, else a
// verified client certificate, else anonymous. The principal travels to
// the gRPC server over the in-process connection, which authorizes it
// (authz); the gateway itself never decides what a caller may do.
type guard struct {
	next    http.Handler
	mux     *runtime.ServeMux // renders errors as the gateway does
	policy  *authz.Policy
	hosts   map[string]bool // allowed Host names besides loopback and IP literals
	anyHost bool
	origins map[string]bool // allowed cross-origin callers, "scheme://host[:port]"
	tls     bool
	log     *slog.Logger
}

func newGuard(next http.Handler, mux *runtime.ServeMux, opts Options) *guard {
	g := &guard{next: next, mux: mux, policy: opts.Policy, hosts: map[string]bool{"localhost": true},
		origins: map[string]bool{}, tls: opts.TLS, log: opts.Logger}
	if host, _, err := net.SplitHostPort(opts.Listen); err == nil && host != "" {
		g.hosts[strings.ToLower(host)] = true
	}
	for _, h := range opts.AllowedHosts {
		if h == "*" {
			g.anyHost = true
		}
		g.hosts[strings.ToLower(h)] = true
	}
	for _, o := range opts.AllowOrigins {
		g.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	return g
}

func (g *guard) fail(w http.ResponseWriter, r *http.Request, err error, why string) {
	g.log.Warn("REST request refused", "reason", why, "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
	if status.Code(err) == codes.Unauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="receptor"`)
	}
	_, out := runtime.MarshalerForRequest(g.mux, r)
	runtime.HTTPError(r.Context(), g.mux, out, w, r, err)
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.hostAllowed(r.Host) {
		g.fail(w, r, apierr.Denied(errHost(r.Host)), "host")
		return
	}
	origin := r.Header.Get("Origin")
	if origin != "" && !g.sameOrigin(origin, r.Host) {
		if !g.origins[strings.ToLower(origin)] {
			g.fail(w, r, apierr.Denied(errOrigin(origin)), "origin")
			return
		}
		g.cors(w, origin)
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	if r.Method == http.MethodPost || r.Body != http.NoBody && r.ContentLength != 0 && r.Method != http.MethodGet {
		if !isJSON(r.Header.Get("Content-Type")) {
			g.fail(w, r, &runtime.HTTPStatusError{HTTPStatus: http.StatusUnsupportedMediaType,
				Err: apierr.BadRequest("request body must be sent as Content-Type: application/json")}, "content type")
			return
		}
	}
	pr, err := g.authenticate(r)
	if err != nil {
		g.fail(w, r, err, "token")
		return
	}
	if r.Body != nil && r.Body != http.NoBody {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	}
	g.next.ServeHTTP(w, r.WithContext(authz.NewContext(r.Context(), pr)))
}

// authenticate names the caller: a bearer token (an unknown one is
// refused, never taken for anonymous), else a client certificate verified
// against the tls-server's clientcas, else anonymous.
func (g *guard) authenticate(r *http.Request) (authz.Principal, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return authz.Principal{}, apierr.Unauthenticated("authentication required: use Authorization: Bearer <token>")
		}
		pr, ok := g.policy.Token(strings.TrimSpace(tok))
		if !ok {
			return authz.Principal{}, apierr.Unauthenticated("authentication failed: unknown bearer token")
		}
		return pr, nil
	}
	if r.TLS != nil {
		if pr := authz.FromTLS(*r.TLS); pr.Kind != authz.KindAnonymous {
			return pr, nil
		}
	}
	return authz.Anonymous, nil
}

// hostAllowed accepts IP literals (a rebinding attack needs a name it
// controls), localhost, the listen host and the configured names.
func (g *guard) hostAllowed(hostport string) bool {
	if g.anyHost {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return g.hosts[strings.ToLower(host)]
}

// sameOrigin reports whether a browser's Origin is this gateway itself.
func (g *guard) sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	scheme := "http"
	if g.tls {
		scheme = "https"
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, host)
}

func (g *guard) cors(w http.ResponseWriter, origin string) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Origin")
}

func isJSON(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

type guardError string

func (e guardError) Error() string { return string(e) }

func errHost(h string) error {
	return guardError("permission denied: Host " + quote(h) + " is not a name of this gateway (add it to http-gateway allowedhosts)")
}

func errOrigin(o string) error {
	return guardError("permission denied: cross-origin request from " + quote(o) + " (add it to http-gateway alloworigins to allow it)")
}

func quote(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}

// Guard puts the gateway's front door (Host, Origin, Content-Type,
// authentication: guard above) before h, for other HTTP faces of a node
// (the metrics listener). h authorizes the principal the guard puts in the
// request's context.
func Guard(h http.Handler, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return newGuard(h, runtime.NewServeMux(), opts)
}
