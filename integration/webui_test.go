package integration

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
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

// openWebUI starts a node serving the web view (uiNodeYAML) and a browser
// showing its sign-in form; it returns both and the view's base URL.
func openWebUI(t *testing.T, id string) (*browser, *Node, string) {
	t.Helper()
	b := newBrowser(t, 1280, 800)
	n := NewNode(t, id)
	n.Start(Spec{Config: func(n *Node) string { return uiNodeYAML(n) }})
	base := "http://" + n.Addr("http")
	b.navigate(base + "/ui/")
	b.do("open the web view", chromedp.WaitVisible(chromedp.CSS("#token")))
	return b, n, base
}

// TestWebUINoCredentials: a browser without a token gets the sign-in form
// and no data; the API refuses the page's requests without a token, and a
// wrong token is refused with a message, still showing no data.
func TestWebUINoCredentials(t *testing.T) {
	t.Parallel()
	b, n, base := openWebUI(t, "secretnode")
	b.shot("token-prompt")
	if !eval[bool](b, `document.getElementById('view-home').offsetParent === null && document.getElementById('view-unit').offsetParent === null`) {
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
	for _, path := range []string{"/v1/work", "/v1/mesh/watch", "/v1/work/watch", "/v1/access"} {
		if s := evalAwait[string](b, `fetch(`+jsString(path)+`).then(r => String(r.status))`); s != "401" {
			t.Errorf("GET %s without a token from the page = %s, want 401", path, s)
		}
	}

	b.do("sign in with a wrong token",
		chromedp.SendKeys(chromedp.CSS("#token"), "not-the-token-0123456789"),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")))
	b.waitFor("refusal shown", `document.getElementById('login-error').textContent.includes('refused')`, 10*time.Second)
	b.shot("wrong-token-refused")
	if !eval[bool](b, `document.getElementById('view-home').offsetParent === null`) {
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

// TestWebUISignInSurvivesLostRequest: when the browser fails a GET
// before any answer (as Chromium does to requests in flight when the
// machine's network changes), the page sends it again instead of showing
// the failure: the sign-in whose status check is failed twice still opens
// the view. Chromium's own Fetch interception fails the requests.
func TestWebUISignInSurvivesLostRequest(t *testing.T) {
	t.Parallel()
	b, n, _ := openWebUI(t, "lossynode")

	// Fail the first two GET /v1/status; let the later ones through. The
	// listener must never block the tab's event loop: once the test's
	// goroutine has stopped, an event finds the buffer full and is dropped.
	paused := make(chan *fetch.EventRequestPaused, 64)
	if err := chromedp.Listen(b.ctx, func(ev any) {
		if e, ok := ev.(*fetch.EventRequestPaused); ok {
			select {
			case paused <- e:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	var failed atomic.Int32
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case e := <-paused:
				var err error
				if strings.HasSuffix(e.Request.URL, "/v1/status") && failed.Load() < 2 {
					failed.Add(1)
					_, err = chromedp.Call(b.ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: e.RequestID, ErrorReason: network.ErrorReasonConnectionReset})
				} else {
					_, err = chromedp.Call(b.ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: e.RequestID})
				}
				if err != nil && b.ctx.Err() == nil {
					t.Errorf("answering the paused request %s: %v", e.Request.URL, err)
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	if _, err := chromedp.Call(b.ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{{URLPattern: "*/v1/status"}}}); err != nil {
		t.Fatal(err)
	}

	b.do("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), gatewayToken(t, n)),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")))
	b.waitFor("node name shown", `document.getElementById('node-name').textContent.includes(`+jsString(n.ID)+`)`, 20*time.Second)
	b.shot("signed-in-after-lost-requests")
	if got := failed.Load(); got != 2 {
		t.Errorf("the browser failed %d GET /v1/status, want 2", got)
	}
	if msg := eval[string](b, `document.getElementById('login-error').textContent`); msg != "" {
		t.Errorf("the sign-in showed %q", msg)
	}
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

// TestWebUIMesh drives the web view of a 5-node mesh of real binaries:
// the graph shows the 5 nodes and the right links; a killed node turns
// unreachable and is then removed; a unit submitted elsewhere appears,
// streams its output on its page and reaches Succeeded; a long unit is
// canceled from the page. Screenshots of each step are saved.
//
//	ui --- b --- d --- e
//	 \         /
//	  `-- c --'
func TestWebUIMesh(t *testing.T) {
	t.Parallel()
	b := newBrowser(t, 1280, 900)
	ui := NewNode(t, "ui")
	nodes := map[string]*Node{"ui": ui}
	for _, id := range []string{"b", "c", "d", "e"} {
		nodes[id] = NewNode(t, id)
	}
	peers := map[string][]string{"b": {"ui"}, "c": {"ui"}, "d": {"b", "c"}, "e": {"d"}}
	slowcat := workTestdata(t, "slowcat.sh")
	const readerToken = "webui-reader-token-0123456789"
	readerFile := writeToken(t, shortTempDir(t), "viewer", readerToken)
	ui.Start(Spec{Bin: workAllInOneBin, Config: func(n *Node) string {
		return uiNodeYAML(n,
			entity("access", "role", "reader", "tokenfile", readerFile),
			workCommandEntity("slowcat", slowcat, "7 0.4", false),
			workCommandEntity("sleep", "sleep", "300", false))
	}})
	for _, id := range []string{"b", "c", "d", "e"} {
		n := nodes[id]
		var items []string
		items = append(items, asYAML(tcpTransport.listener(n)))
		for _, p := range peers[id] {
			items = append(items, asYAML(tcpTransport.peer(nodes[p])))
		}
		n.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, items...) }})
	}
	ui.WaitKnownNodes("ui", "b", "c", "d", "e")
	base := "http://" + ui.Addr("http")
	token := gatewayToken(t, ui)

	b.signIn(base, token)
	b.waitFor("5 nodes and 5 links drawn", `document.querySelectorAll('#graph .node:not(.leaving)').length === 5 && `+
		`document.querySelectorAll('#graph .link:not(.leaving)').length === 5`, 30*time.Second)
	links := eval[[]string](b, `[...document.querySelectorAll('#graph .link:not(.leaving)')].map(l => l.dataset.a + '-' + l.dataset.b).sort()`)
	if want := []string{"b-d", "b-ui", "c-d", "c-ui", "d-e"}; strings.Join(links, " ") != strings.Join(want, " ") {
		t.Errorf("links drawn = %v, want %v", links, want)
	}
	ids := eval[[]string](b, `[...document.querySelectorAll('#graph .node')].map(n => n.dataset.id).sort()`)
	if strings.Join(ids, " ") != "b c d e ui" {
		t.Errorf("nodes drawn = %v", ids)
	}
	if !eval[bool](b, `document.querySelector('#graph .node[data-id="ui"]').classList.contains('local')`) {
		t.Error("the local node is not marked")
	}
	b.shot("mesh-5-nodes")

	// Keyboard: Tab reaches a node, Enter shows its details.
	b.do("select d with the keyboard",
		chromedp.Focus(chromedp.CSS(`#graph .node[data-id="d"]`)),
		chromedp.KeyEvent("\r"))
	b.waitFor("details of d", `document.getElementById('details-title').textContent === 'd'`, 10*time.Second)
	b.shot("node-details")

	// Kill e: it turns unreachable, then leaves the graph.
	nodes["e"].Kill()
	b.waitFor("e unreachable", `document.querySelector('#graph .node[data-id="e"]')?.classList.contains('gone')`, 30*time.Second)
	b.shot("node-e-unreachable")
	b.waitFor("e removed", `!document.querySelector('#graph .node[data-id="e"]') && `+
		`document.querySelectorAll('#graph .node').length === 4`, 60*time.Second)
	b.shot("node-e-removed")

	// A unit submitted through the API appears, streams and succeeds.
	var created struct {
		Result struct {
			UnitID string `json:"unitId"`
		} `json:"result"`
	}
	restJSON(t, "POST", base+"/v1/work", token, `{"params":{"workType":"slowcat","node":"ui"},"stdin":"`+
		b64("line 1\nline 2\nline 3\nline 4\nline 5\n")+`"}`, &created)
	id := created.Result.UnitID
	row := `#work-table tr[data-unit="` + id + `"]`
	b.waitFor("unit in the table", `!!document.querySelector('`+row+`')`, 20*time.Second)
	b.shot("unit-listed")
	b.do("open the unit", chromedp.Click(chromedp.CSS(row+" a")))
	b.waitFor("output streaming", `document.getElementById('unit-output').textContent.includes('line 1')`, 20*time.Second)
	b.shot("unit-output-streaming")
	b.waitFor("unit succeeded with its output", `document.getElementById('unit-meta').textContent.includes('Succeeded') && `+
		`document.getElementById('unit-output').textContent === "line 1\nline 2\nline 3\nline 4\nline 5\n"`, 30*time.Second)
	b.shot("unit-succeeded")

	// A long unit is canceled from the page (two presses: ask, confirm).
	restJSON(t, "POST", base+"/v1/work", token, `{"params":{"workType":"sleep","node":"ui"}}`, &created)
	id = created.Result.UnitID
	b.do("back to the mesh", chromedp.Click(chromedp.CSS("#nav-mesh")))
	row = `#work-table tr[data-unit="` + id + `"]`
	b.waitFor("long unit running", `document.querySelector('`+row+`')?.textContent.includes('Running')`, 20*time.Second)
	b.do("cancel", chromedp.Click(chromedp.CSS(row+` button[data-action="cancel"]`)))
	b.shot("cancel-asked")
	b.do("confirm cancel", chromedp.Click(chromedp.CSS(row+` button[data-action="cancel"]`)))
	b.waitFor("unit canceled", `document.querySelector('`+row+`')?.textContent.includes('Canceled')`, 20*time.Second)
	b.shot("unit-canceled")
	var st struct {
		StateName string `json:"stateName"`
	}
	restJSON(t, "GET", base+"/v1/work/"+id, token, "", &st)
	if st.StateName != "Canceled" {
		t.Errorf("unit %s after cancel from the page: %s", id, st.StateName)
	}

	// A reader sees the units but gets no cancel or release buttons.
	b.do("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#token")))
	b.signIn(base, readerToken)
	b.waitFor("reader sees the units", `document.querySelectorAll('#work-table tbody tr').length === 2 && `+
		`document.getElementById('who').textContent.includes('token:viewer (reader)')`, 20*time.Second)
	if n := eval[int](b, `document.querySelectorAll('#work-table button').length`); n != 0 {
		t.Errorf("a reader is offered %d cancel/release buttons", n)
	}
	b.shot("reader-no-buttons")
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
