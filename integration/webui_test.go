package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// uiNodeYAML is a node serving the web view (http-gateway) with a tcp
// listener, plus items.
func uiNodeYAML(n *Node, items ...string) string {
	return nodeYAML(n, nil, append([]string{
		asYAML(tcpTransport.listener(n)),
		entity("http-gateway", "tcplisten", n.Addr("http")),
	}, items...)...)
}

// TestWebUINoCredentials: a browser without a token gets the sign-in form
// and no data; the API refuses the page's requests without a token, and a
// wrong token is refused with a message, still showing no data.
func TestWebUINoCredentials(t *testing.T) {
	t.Parallel()
	b := newBrowser(t, 1280, 800)
	n := NewNode(t, "secretnode")
	n.Start(Spec{Config: func(n *Node) string { return uiNodeYAML(n) }})
	base := "http://" + n.Addr("http")

	b.do("open the web view", chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.shot("token-prompt")
	if !eval[bool](b, `document.getElementById('view-home').hidden && document.getElementById('view-unit').hidden`) {
		t.Error("the mesh or unit view is shown without a token")
	}
	if text := eval[string](b, `document.body.innerText`); strings.Contains(text, n.ID) {
		t.Errorf("the page shows the node ID without a token:\n%s", text)
	}
	// What the page would get if it asked: 401, and nothing of the node.
	status := evalAwait[string](b, `fetch('/v1/status').then(async r => r.status + ' ' + (await r.text()))`)
	if !strings.HasPrefix(status, "401 ") || strings.Contains(status, n.ID) {
		t.Errorf("GET /v1/status without a token from the page = %s, want 401 without data", status)
	}
	for _, path := range []string{"/v1/work", "/v1/mesh/watch", "/v1/work/watch"} {
		if s := evalAwait[string](b, `fetch(`+jsString(path)+`).then(r => String(r.status))`); s != "401" {
			t.Errorf("GET %s without a token from the page = %s, want 401", path, s)
		}
	}

	b.do("sign in with a wrong token",
		chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token-0123456789"),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")))
	b.waitFor("refusal shown", `document.getElementById('login-error').textContent.includes('refused')`, 10*time.Second)
	b.shot("wrong-token-refused")
	if !eval[bool](b, `document.getElementById('view-home').hidden`) {
		t.Error("the mesh view is shown after a refused token")
	}
	if text := eval[string](b, `document.body.innerText`); strings.Contains(text, n.ID) {
		t.Errorf("the page shows the node ID after a refused token:\n%s", text)
	}
	if tok := eval[string](b, `sessionStorage.getItem('receptor.token') || ''`); tok != "" {
		t.Errorf("a refused token stays in sessionStorage: %q", tok)
	}

	// The right token opens the view.
	b.do("clear", chromedp.Clear(chromedp.CSS("#token")))
	b.signIn(base, gatewayToken(t, n))
	b.waitFor("node name shown", `document.getElementById('node-name').textContent.includes(`+jsString(n.ID)+`)`, 20*time.Second)
	b.shot("signed-in")
}

// restJSON sends one REST request with the bearer token (restCall) and
// decodes the JSON answer into out (when not nil); it fails the test
// unless the answer is 200.
func restJSON(t *testing.T, method, url, token, body string, out any) {
	t.Helper()
	hdr := map[string]string{"Authorization": "Bearer " + token}
	if body != "" {
		hdr["Content-Type"] = "application/json"
	}
	code, b := restCall(t, method, url, hdr, body)
	if code != http.StatusOK {
		t.Fatalf("%s %s = %d %s", method, url, code, b)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(b), out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, url, b, err)
		}
	}
}

// statusOf is the routing table of the node behind the gateway at base.
func statusOf(t *testing.T, base, token string) map[string]string {
	t.Helper()
	var st struct {
		RoutingTable map[string]string `json:"routingTable"`
	}
	restJSON(t, "GET", base+"/v1/status", token, "", &st)
	return st.RoutingTable
}
