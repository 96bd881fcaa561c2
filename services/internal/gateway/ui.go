package gateway

import (
	"bytes"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/receptor-mesh/receptor/gen/webui"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// UIPath is where the gateway serves the web view.
const UIPath = "/ui/"

// uiSecurityHeaders go with every file of the web view. The page runs only
// its own script and style and talks only to this gateway (no inline code,
// nothing from elsewhere), cannot be framed (no clickjacking of its cancel
// buttons), and sends no Referer.
var uiSecurityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
		"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Cache-Control":                "no-cache",
}

// uiHandler serves the embedded web view (gen/webui) under UIPath: GET and
// HEAD only, index.html for the directory. It runs behind the guard like
// every route (Host and Origin checks; an unknown bearer token is refused)
// and asks the policy for authz.ActionWebView, which every caller has:
// the files are the same public code for everyone and hold no node data.
// Everything the page shows it reads through the API routes with the
// token the user gives it, each authorized as usual; without one it shows
// only its sign-in form.
type uiHandler struct {
	files  fs.FS
	mux    *runtime.ServeMux // renders errors as the gateway does
	policy *authz.Policy
	start  time.Time // Last-Modified of every file: the binary's start
}

func newUIHandler(mux *runtime.ServeMux, policy *authz.Policy) *uiHandler {
	return &uiHandler{files: webui.FS(), mux: mux, policy: policy, start: time.Now()}
}

func (u *uiHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) {
		_, out := runtime.MarshalerForRequest(u.mux, r)
		runtime.HTTPError(r.Context(), u.mux, out, w, r, err)
	}
	if err := u.policy.Authorize(r.Context(), authz.ActionWebView, "rest"); err != nil {
		fail(apierr.Denied(err))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		fail(&runtime.HTTPStatusError{HTTPStatus: http.StatusMethodNotAllowed,
			Err: apierr.BadRequest("the web view is read with GET")})
		return
	}
	name := strings.TrimPrefix(r.URL.Path, UIPath)
	if name == "" {
		name = "index.html"
	}
	// fs.FS names are clean and slash-separated; anything else (.., //,
	// a trailing slash) is not a file of the view.
	if !fs.ValidPath(name) || path.Clean(name) != name {
		http.NotFound(w, r)
		return
	}
	b, err := fs.ReadFile(u.files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	for k, v := range uiSecurityHeaders {
		h.Set(k, v)
	}
	http.ServeContent(w, r, name, u.start, bytes.NewReader(b))
}
