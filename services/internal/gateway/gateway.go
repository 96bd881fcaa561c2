// Package gateway is the REST/JSON face of ControlService: grpc-gateway in
// proxy mode over a client connection to our own gRPC server (so streaming
// calls work), the OpenAPI document at /openapi.json, bounded request
// bodies, and an HTTP server with timeouts and graceful shutdown.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	"github.com/receptor-mesh/receptor/gen/openapi"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
)

// DefaultMaxBodyBytes bounds request bodies: a CreateWork with 4 MiB of
// stdin is about 5.4 MiB once base64-encoded in JSON.
const DefaultMaxBodyBytes = 8 << 20

// Options configure New.
type Options struct {
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes bounds request bodies; larger ones get 413. 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Policy resolves bearer tokens to principals (required). The gRPC
	// server behind conn authorizes each call for that principal.
	Policy *authz.Policy
	// TLS says the gateway serves HTTPS (same-origin checks compare the
	// scheme).
	TLS bool
	// Listen is the gateway's listen address; its host is an allowed Host
	// name.
	Listen string
	// AllowedHosts are further accepted Host names ("*": any); IP
	// literals and localhost are always accepted.
	AllowedHosts []string
	// AllowOrigins are browser origins allowed to call cross-site (CORS).
	AllowOrigins []string
	// Metrics, when set, is served at GET /metrics; it authorizes the
	// caller itself (metrics.Handler) from the principal the guard put in
	// the request's context.
	Metrics http.Handler
}

// New returns the REST handler for ControlService over conn: the routes of
// proto/receptor/control/v1/control_http.yaml, GET /openapi.json and GET
// /healthz (the gRPC health of the server behind conn). JSON uses the
// lowerCamelCase field names of the OpenAPI document, emits unset fields
// (so a status shows its zero values), and rejects unknown fields in
// request bodies (a misspelt "force" must not be ignored). Requests pass
// the guard first (Host, Origin, Content-Type, authentication; guard.go);
// calls carry the caller's principal in grpcserve.PrincipalMetadataKey, so
// conn must be the in-process connection, the only one whose server
// believes it. /healthz and /openapi.json need the reader role, like
// every other route. Errors map to HTTP codes as grpc-gateway's
// defaults (401 Unauthenticated, 403 PermissionDenied, 429
// ResourceExhausted), except 413 for requests too large (an oversized body,
// apierr.PayloadTooLarge such as CreateWork's stdin over 4 MiB), with a
// google.rpc.Status body (code, message, details) on every route: a
// results stream refused before its first chunk answers like a unary
// route (restClient); only an error after output began comes as the
// stream's last line, {"error": <Status>}.
// The web view is served at UIPath (ui.go), behind the same guard.
// ctx is the registration context of the generated handlers. conn is a
// *grpc.ClientConn in the router; the package's fuzz targets pass a
// connection that calls the service directly (directconn_test.go).
func New(ctx context.Context, conn grpc.ClientConnInterface, opts Options) (http.Handler, error) {
	if conn == nil {
		return nil, errors.New("creating REST gateway: nil gRPC client connection")
	}
	if opts.Policy == nil {
		return nil, errors.New("creating REST gateway: no access policy")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	limit := opts.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
				UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
			},
		}),
		runtime.WithErrorHandler(errorHandler(limit)),
		// Errors of streaming routes after output began (those before are
		// returned by the client, see restClient) become the same Status
		// as unary routes' errors; the 200 is sent by then, so they come as
		// the stream's last line, {"error": <Status>}.
		runtime.WithStreamErrorHandler(func(_ context.Context, err error) *status.Status { return errorStatus(err) }),
		runtime.WithHealthzEndpoint(healthpb.NewHealthClient(conn)),
		// Relay the principal the guard authenticated; the in-process
		// gRPC server authorizes it. No HTTP header becomes gRPC metadata,
		// so a client cannot name a principal itself.
		runtime.WithMetadata(func(ctx context.Context, _ *http.Request) metadata.MD {
			return metadata.Pairs(grpcserve.PrincipalMetadataKey, authz.FromContext(ctx).String())
		}),
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
	)
	if err := controlv1.RegisterControlServiceHandlerClient(ctx, mux, &restClient{controlv1.NewControlServiceClient(conn)}); err != nil {
		return nil, fmt.Errorf("registering ControlService REST handlers: %w", err)
	}
	if err := mux.HandlePath(http.MethodGet, "/openapi.json", serveOpenAPI(mux, opts.Policy)); err != nil {
		return nil, fmt.Errorf("registering /openapi.json: %w", err)
	}
	if opts.Metrics != nil {
		if err := mux.HandlePath(http.MethodGet, "/metrics", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			opts.Metrics.ServeHTTP(w, r)
		}); err != nil {
			return nil, fmt.Errorf("registering /metrics: %w", err)
		}
	}
	opts.Logger = logger
	api := sse{&bodyLimiter{mux: mux, limit: limit, logger: logger}}
	ui := newUIHandler(mux, opts.Policy)
	return newGuard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, UIPath):
			ui.ServeHTTP(w, r)
		case r.URL.Path == strings.TrimSuffix(UIPath, "/"):
			http.Redirect(w, r, UIPath, http.StatusMovedPermanently)
		default:
			api.ServeHTTP(w, r)
		}
	}), mux, opts), nil
}

// serveOpenAPI serves the API document to any caller allowed to read the
// node's status.
func serveOpenAPI(mux *runtime.ServeMux, policy *authz.Policy) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		if err := policy.Authorize(r.Context(), authz.ActionStatus, "rest"); err != nil {
			_, out := runtime.MarshalerForRequest(mux, r)
			runtime.HTTPError(r.Context(), mux, out, w, r, apierr.Denied(err))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.SwaggerJSON())
	}
}

// bodyLimiter bounds request bodies. A declared length over the limit is
// refused before the gateway runs; a chunked body is cut at the limit and
// the gateway's decode error is turned into 413 by errorHandler, which
// finds the overflow flag in the request context.
type bodyLimiter struct {
	mux    *runtime.ServeMux // serves the request, and renders the 413 its way
	limit  int64
	logger *slog.Logger
}

type overflowKey struct{}

// overflow records that a request body hit the limit.
type overflow struct{ hit bool }

func (b *bodyLimiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > b.limit {
		b.logger.Debug("REST request body too large", "method", r.Method, "path", r.URL.Path, "length", r.ContentLength)
		_, out := runtime.MarshalerForRequest(b.mux, r)
		runtime.HTTPError(r.Context(), b.mux, out, w, r, tooLarge(b.limit))
		return
	}
	if !validUTF8Request(r) {
		// Path parameters and query values become proto string fields,
		// which gRPC refuses to marshal unless they are UTF-8: without
		// this check the caller's mistake came back as a 500.
		_, out := runtime.MarshalerForRequest(b.mux, r)
		runtime.HTTPError(r.Context(), b.mux, out, w, r, apierr.BadRequest("request path and query must be valid UTF-8"))
		return
	}
	o := &overflow{}
	r = r.WithContext(context.WithValue(r.Context(), overflowKey{}, o))
	body := r.Body
	if body == nil {
		// net/http's server always sets a body; a handler called
		// directly (http.NewRequest without one) may not.
		body = http.NoBody
	}
	r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, body, b.limit), o: o}
	b.mux.ServeHTTP(w, r)
}

// validUTF8Request reports whether the request's path and query, once
// unescaped, are UTF-8.
func validUTF8Request(r *http.Request) bool {
	if !utf8.ValidString(r.URL.Path) {
		return false
	}
	q, _ := url.ParseQuery(r.URL.RawQuery) // malformed pairs are the gateway's to report
	for k, vs := range q {
		if !utf8.ValidString(k) {
			return false
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}

type limitedBody struct {
	io.ReadCloser
	o *overflow
}

func (l *limitedBody) Read(p []byte) (int, error) {
	n, err := l.ReadCloser.Read(p)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		// The gateway reads the body on the request's goroutine before it
		// reports the error, so this needs no lock.
		l.o.hit = true
	}
	return n, err
}

func tooLarge(limit int64) error {
	return &runtime.HTTPStatusError{
		HTTPStatus: http.StatusRequestEntityTooLarge,
		Err:        apierr.LimitReached(fmt.Sprintf("request body exceeds the limit of %d bytes", limit)),
	}
}

// errorHandler is grpc-gateway's default, except that a failure caused by
// an oversized body, or refused for its size (apierr.PayloadTooLarge), is
// 413. The body is the google.rpc.Status JSON of errorStatus.
func errorHandler(limit int64) runtime.ErrorHandlerFunc {
	return func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
		if o, ok := r.Context().Value(overflowKey{}).(*overflow); ok && o.hit {
			err = tooLarge(limit)
		}
		var hse *runtime.HTTPStatusError
		if !errors.As(err, &hse) && apierr.IsPayloadTooLarge(err) {
			err = &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: err}
		}
		runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
	}
}

// errorStatus is the Status an error is reported as, on unary and
// streaming routes alike (what DefaultHTTPErrorHandler sends).
func errorStatus(err error) *status.Status {
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		err = hse.Err
	}
	return status.Convert(err)
}
