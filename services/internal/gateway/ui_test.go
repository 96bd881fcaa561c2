package gateway

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// TestUI: the web view's files are served to a caller without credentials
// (the page must load to ask for a token) but nothing else is: the same
// caller is refused the API the page reads, a wrong token is refused even
// for the files, and the guard's Host and Origin checks apply to /ui/ too.
func TestUI(t *testing.T) {
	t.Parallel()
	policy, err := authz.New(authz.Options{Logger: quietLogger(), Rules: []authz.Rule{
		{Role: authz.RoleAdmin, Token: testToken, TokenName: "admin"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, Options{Policy: policy}, nil)
	noRedirect := *e.client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	tests := []struct {
		name         string
		method, path string
		host, origin string
		token, ctype string
		want         int
		wantType     string
		wantBody     string
	}{
		{"page without credentials", "GET", "/ui/", "", "", "", "", http.StatusOK, "text/html", `id="login-form"`},
		{"script", "GET", "/ui/main.js", "", "", "", "", http.StatusOK, "text/javascript", ""},
		{"style", "GET", "/ui/style.css", "", "", "", "", http.StatusOK, "text/css", ""},
		{"notices", "GET", "/ui/THIRD_PARTY_NOTICES.txt", "", "", "", "", http.StatusOK, "text/plain", "d3-force"},
		{"page with a token", "GET", "/ui/index.html", "", "", testToken, "", http.StatusOK, "text/html", ""},
		{"API without credentials", "GET", "/v1/status", "", "", "", "", http.StatusUnauthorized, "application/json", "authentication required"},
		{"work without credentials", "GET", "/v1/work", "", "", "", "", http.StatusUnauthorized, "application/json", "authentication required"},
		{"unknown token", "GET", "/ui/", "", "", "wrong-token-0123456789", "", http.StatusUnauthorized, "application/json", "unknown bearer token"},
		{"foreign Host", "GET", "/ui/", "attacker.example", "", "", "", http.StatusForbidden, "application/json", "allowedhosts"},
		{"cross-site Origin", "GET", "/ui/main.js", "", "http://evil.example", "", "", http.StatusForbidden, "application/json", "cross-origin"},
		{"missing file", "GET", "/ui/secret.txt", "", "", "", "", http.StatusNotFound, "", ""},
		{"no directory listing", "GET", "/ui/assets/", "", "", "", "", http.StatusNotFound, "", ""},
		{"POST", "POST", "/ui/", "", "", testToken, "application/json", http.StatusMethodNotAllowed, "application/json", "GET"},
		{"no trailing slash", "GET", "/ui", "", "", "", "", http.StatusMovedPermanently, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.method == "POST" {
				body = strings.NewReader("{}")
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
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.wantBody) {
				t.Fatalf("%s %s = %d %.300s, want %d containing %q", tt.method, tt.path, resp.StatusCode, b, tt.want, tt.wantBody)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Errorf("Content-Type = %q, want %s", ct, tt.wantType)
			}
			if tt.want == http.StatusOK {
				for k, v := range uiSecurityHeaders {
					if got := resp.Header.Get(k); got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
			}
			if tt.want == http.StatusMovedPermanently && resp.Header.Get("Location") != UIPath {
				t.Errorf("redirect to %q, want %s", resp.Header.Get("Location"), UIPath)
			}
		})
	}
}

// TestUIPageRefersToServedFiles: every script and stylesheet the page loads
// is one the gateway serves, and none comes from elsewhere (nothing is
// fetched from the internet at run time; the CSP would block it anyway).
func TestUIPageRefersToServedFiles(t *testing.T) {
	t.Parallel()
	e := start(t, Options{}, nil)
	code, page := e.do(t, "GET", "/ui/", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /ui/ = %d", code)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"#]+)"`).FindAllStringSubmatch(string(page), -1)
	if len(refs) < 2 {
		t.Fatalf("page refers to %d files: %s", len(refs), page)
	}
	for _, m := range refs {
		ref := m[1]
		if strings.HasPrefix(ref, "data:") {
			continue
		}
		if strings.Contains(ref, "//") || strings.HasPrefix(ref, "/") {
			t.Errorf("page loads %q, not a file of the view", ref)
			continue
		}
		if code, _ := e.do(t, "GET", "/ui/"+ref, nil); code != http.StatusOK {
			t.Errorf("page loads %q: GET = %d", ref, code)
		}
	}
}
