package backends

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

func newWSListener(t *testing.T, path string, cfg *tls.Config) (*WebsocketListener, *running) {
	t.Helper()
	l, err := NewWebsocketListener(WebsocketListenerOptions{Address: "127.0.0.1:0", Path: path, TLS: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return l, start(t, l)
}

func wsURL(l *WebsocketListener, scheme, path string) string {
	return scheme + "://" + l.Addr().String() + path
}

func TestWebsocketRoundTrip(t *testing.T) {
	pki := newTestPKI(t)
	cases := []struct {
		name      string
		scheme    string
		serverTLS *tls.Config
		clientTLS *tls.Config
	}{
		{"ws", "ws", nil, nil},
		{"wss", "wss", pki.serverConfig(), pki.clientConfig()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, lr := newWSListener(t, "/", tc.serverTLS)
			d, err := NewWebsocketDialer(WebsocketDialerOptions{URL: wsURL(l, tc.scheme, "/mesh"), Redial: true,
				TLS: tc.clientTLS, Backoff: fastBackoff()})
			if err != nil {
				t.Fatal(err)
			}
			dr := start(t, d)
			ds, ls := dr.next(), lr.next()
			exchange(t, ds, ls, []int{1, 1000, MaxMessageSize})
			for _, s := range []Session{ds, ls} {
				if err := s.Send(nil); !errors.Is(err, ErrEmptyMessage) {
					t.Fatalf("empty Send = %v", err)
				}
				if err := s.Send(make([]byte, MaxMessageSize+1)); !errors.Is(err, ErrMessageTooLarge) {
					t.Fatalf("oversized Send = %v", err)
				}
			}
			if tc.serverTLS == nil {
				return
			}
			if got := nodeIDs(t, ls); !slices.Equal(got, []string{"client-node"}) {
				t.Fatalf("listener sees %q", got)
			}
			if got := nodeIDs(t, ds); !slices.Equal(got, []string{"server-node"}) {
				t.Fatalf("dialer sees %q", got)
			}
		})
	}
}

// rawDial upgrades with gorilla directly, to control the request.
func rawDial(t *testing.T, url string, header http.Header) (*websocket.Conn, int) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial(url, header)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	if err != nil {
		return nil, status
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, status
}

func TestWebsocketPathMatching(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          int
	}{
		{"/", "/", http.StatusSwitchingProtocols},
		{"/", "/any/thing", http.StatusSwitchingProtocols},
		{"/x", "/x", http.StatusSwitchingProtocols},
		{"/x", "/x/y", http.StatusNotFound},
		{"/x", "/y", http.StatusNotFound},
		{"/x/", "/x/y", http.StatusSwitchingProtocols},
		{"/x/", "/y", http.StatusNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.pattern+" "+tc.path, func(t *testing.T) {
			l, lr := newWSListener(t, tc.pattern, nil)
			_, status := rawDial(t, wsURL(l, "ws", tc.path), nil)
			if status != tc.want {
				t.Fatalf("status %d, want %d", status, tc.want)
			}
			if tc.want == http.StatusSwitchingProtocols {
				lr.next()
			}
		})
	}
}

func TestWebsocketListenerRejectsBadPaths(t *testing.T) {
	for _, p := range []string{"x", "/{", "GET /x y"} {
		if _, err := NewWebsocketListener(WebsocketListenerOptions{Address: "127.0.0.1:0", Path: p}); err == nil {
			t.Errorf("path %q accepted", p)
		}
	}
}

func TestWebsocketOrigin(t *testing.T) {
	l, lr := newWSListener(t, "/", nil)
	host := l.Addr().String()
	cases := []struct {
		name   string
		origin string
		want   int
	}{
		{"absent", "", http.StatusSwitchingProtocols},
		{"same host", "http://" + host, http.StatusSwitchingProtocols},
		{"same host, other scheme and case", "HTTPS://" + strings.ToUpper(host), http.StatusSwitchingProtocols},
		{"other host", "http://evil.example", http.StatusForbidden},
		{"other port", "http://127.0.0.1:1", http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			_, status := rawDial(t, wsURL(l, "ws", "/"), h)
			if status != tc.want {
				t.Fatalf("status %d, want %d", status, tc.want)
			}
			if tc.want == http.StatusSwitchingProtocols {
				lr.next()
			}
		})
	}
}

func TestWebsocketEmptyAndTextMessages(t *testing.T) {
	l, lr := newWSListener(t, "/", nil)
	c, _ := rawDial(t, wsURL(l, "ws", "/"), nil)
	if c == nil {
		t.Fatal("dial failed")
	}
	ls := lr.next()
	if err := c.WriteMessage(websocket.BinaryMessage, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("text")); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, recv(t, ls), []byte("text"))
	if err := ls.Send([]byte{1, 2}); err != nil {
		t.Fatal(err)
	}
	kind, msg, err := c.ReadMessage()
	if err != nil || kind != websocket.BinaryMessage {
		t.Fatalf("read = %d, %v; want a binary message", kind, err)
	}
	mustEqual(t, msg, []byte{1, 2})
}

// TestWebsocketDialerRequest checks what our dialer sends: Origin and the
// extra header, against a plain gorilla server.
func TestWebsocketDialerRequest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	headers := make(chan http.Header, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers <- r.Header.Clone()
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.WriteMessage(websocket.BinaryMessage, []byte("hi"))
		_, _, _ = c.ReadMessage()
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	d, err := NewWebsocketDialer(WebsocketDialerOptions{URL: "ws://" + ln.Addr().String() + "/p",
		ExtraHeader: "x-receptor-token:  secret value "})
	if err != nil {
		t.Fatal(err)
	}
	dr := start(t, d)
	mustEqual(t, recv(t, dr.next()), []byte("hi"))
	h := <-headers
	if got, want := h.Get("Origin"), "http://"+ln.Addr().String(); got != want {
		t.Errorf("Origin %q, want %q", got, want)
	}
	if got := h.Get("X-Receptor-Token"); got != "secret value" {
		t.Errorf("extra header %q", got)
	}
	for _, k := range []string{"Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Cookie"} {
		if v := h.Get(k); v != "" {
			t.Errorf("unexpected %s: %q", k, v)
		}
	}
}

func TestWebsocketDialerOptionErrors(t *testing.T) {
	cases := []WebsocketDialerOptions{
		{URL: "http://host/"},
		{URL: "ws:///nohost"},
		{URL: "ws://user:pw@host/"},
		{URL: "ws://host/", ExtraHeader: "no colon"},
		{URL: "ws://host/", ExtraHeader: "bad name:x"},
		{URL: "ws://host/", ExtraHeader: "Name:bad\nvalue"},
	}
	for _, o := range cases {
		if _, err := NewWebsocketDialer(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

func TestWebsocketTLSALPN(t *testing.T) {
	pki := newTestPKI(t)
	srv := pki.serverConfig()
	srv.ClientAuth = tls.NoClientCert
	l, lr := newWSListener(t, "/", srv)
	// The server offers h2 like upstream's ...
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pki.pool, NextProtos: []string{"h2", "http/1.1"}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Errorf("server negotiated %q with an h2 client, want h2", p)
	}
	_ = c.Close()
	// ... so our dialer must not offer it, even if its config does.
	client := pki.clientConfig()
	client.NextProtos = []string{"h2"}
	d, err := NewWebsocketDialer(WebsocketDialerOptions{URL: wsURL(l, "wss", "/"), TLS: client})
	if err != nil {
		t.Fatal(err)
	}
	dr := start(t, d)
	exchange(t, dr.next(), lr.next(), []int{7})
}

func TestWebsocketWSSWithoutTLSConfigUsesSystemRoots(t *testing.T) {
	pki := newTestPKI(t)
	l, _ := newWSListener(t, "/", pki.serverConfig())
	d, err := NewWebsocketDialer(WebsocketDialerOptions{URL: wsURL(l, "wss", "/")})
	if err != nil {
		t.Fatal(err)
	}
	// The test CA is not a system root: the dial fails on verification
	// (upstream would not even start, docs/protocol.md §3.4).
	_, err = d.dial(t.Context(), &group{})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("dial = %v, want an unknown-authority error", err)
	}
}

// connectProxy is a minimal HTTP CONNECT proxy that sends every tunnel to
// target, recording the requested authority.
type connectProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	asked   []string
	wg      sync.WaitGroup
	closing chan struct{}
}

func newConnectProxy(t *testing.T, target string) *connectProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &connectProxy{ln: ln, target: target, closing: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		close(p.closing)
		_ = ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *connectProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.tunnel(c)
		}()
	}
}

func (p *connectProxy) tunnel(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		return
	}
	p.mu.Lock()
	p.asked = append(p.asked, req.Host)
	p.mu.Unlock()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer up.Close()
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, br); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	select {
	case <-done:
	case <-p.closing:
	}
	_ = c.Close()
	_ = up.Close()
	<-done
}

func TestWebsocketDialerUsesHTTPSProxy(t *testing.T) {
	pki := newTestPKI(t)
	srv := pki.serverConfig()
	l, lr := newWSListener(t, "/", srv)
	proxy := newConnectProxy(t, l.Addr().String())
	t.Setenv("HTTPS_PROXY", "http://"+proxy.ln.Addr().String())
	t.Setenv("HTTP_PROXY", "")
	t.Setenv("NO_PROXY", "")
	// A name, not 127.0.0.1: loopback destinations bypass proxies. Only
	// the proxy resolves it (to the listener).
	authority := testHost + ":" + strconv.Itoa(l.Addr().Port)
	d, err := NewWebsocketDialer(WebsocketDialerOptions{URL: "wss://" + authority + "/", TLS: pki.clientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	dr := start(t, d)
	exchange(t, dr.next(), lr.next(), []int{1, 1000})
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if !slices.Equal(proxy.asked, []string{authority}) {
		t.Fatalf("proxy saw CONNECT %q, want %q", proxy.asked, authority)
	}
}

func TestWebsocketDialerRedialsAndStopsOnCancel(t *testing.T) {
	l, lr := newWSListener(t, "/", nil)
	d, err := NewWebsocketDialer(WebsocketDialerOptions{URL: wsURL(l, "ws", "/"), Redial: true, Backoff: fastBackoff()})
	if err != nil {
		t.Fatal(err)
	}
	dr := start(t, d)
	first := dr.next()
	exchange(t, first, lr.next(), []int{1})
	_ = first.Close()
	exchange(t, dr.next(), lr.next(), []int{2})
	dr.stop()
	lr.stop()
}

func TestWebsocketListenerAcceptsManySessions(t *testing.T) {
	const n = 8
	l, lr := newWSListener(t, "/", nil)
	for i := range n {
		c, _ := rawDial(t, wsURL(l, "ws", "/"), nil)
		if c == nil {
			t.Fatalf("dial %d failed", i)
		}
		if err := c.WriteMessage(websocket.BinaryMessage, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range n {
		seen[string(recv(t, lr.next()))] = true
	}
	if len(seen) != n {
		t.Fatalf("distinct messages %v, want %d", seen, n)
	}
}
