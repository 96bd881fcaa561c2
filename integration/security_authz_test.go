package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/control/client"
)

// The attacks on the faces upstream never had (REST, gRPC over TCP) and on
// work signing, each against real binaries: every refusal is asserted,
// and so is that the node keeps serving.

// writeToken writes a bearer token file (mode 0600) and returns its path.
func writeToken(t *testing.T, dir, name, token string) string {
	t.Helper()
	path := filepath.Join(dir, name+".token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const operatorToken = "operator-token-for-tests-0123456789"

// restCall makes one REST call and returns the status code and body.
func restCall(t *testing.T, method, url string, hdr map[string]string, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := workHTTPClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// TestRESTRefusals: with the default configuration the REST gateway
// refuses callers without a token, text/plain and form posts (CSRF), a
// foreign Host (DNS rebinding), a cross-site Origin, and signwork from an
// operator; the admin token it created works.
func TestRESTRefusals(t *testing.T) {
	t.Parallel()
	n := NewNode(t, "nodea")
	tokDir := shortTempDir(t)
	opPath := writeToken(t, tokDir, "ops", operatorToken)
	n.Start(Spec{Bin: workAllInOneBin, Config: func(n *Node) string {
		return nodeYAML(n, nil,
			entity("http-gateway", "tcplisten", n.Addr("http")),
			entity("access", "role", "operator", "tokenfile", opPath),
			workCommandEntity("cat", "cat", "", false),
			"- local-only\n")
	}})
	st, err := os.Stat(filepath.Join(filepath.Dir(n.Socket), "http-gateway.token"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated token file: %v, mode %v; want mode 0600", err, st.Mode())
	}
	admin := gatewayToken(t, n)
	base := "http://" + n.Addr("http")
	submit := `{"params":{"workType":"cat","node":"nodea"},"stdin":"aGkK"}`
	signed := `{"params":{"workType":"cat","node":"nodea","signWork":true},"stdin":"aGkK"}`
	ctJSON := "application/json"
	for _, tc := range []struct {
		name         string
		method, path string
		hdr          map[string]string
		body         string
		want         int
		contains     string
	}{
		{"no token", "GET", "/v1/status", nil, "", 401, "authentication required"},
		{"no token, submit", "POST", "/v1/work", map[string]string{"Content-Type": ctJSON}, submit, 401, ""},
		{"bad token", "GET", "/v1/status", map[string]string{"Authorization": "Bearer not-the-token-0123456789"}, "", 401, "unknown bearer token"},
		{"text/plain post", "POST", "/v1/work", map[string]string{"Authorization": "Bearer " + admin, "Content-Type": "text/plain"}, submit, 415, "application/json"},
		{"form post", "POST", "/v1/work", map[string]string{"Authorization": "Bearer " + admin, "Content-Type": "application/x-www-form-urlencoded"}, "a=b", 415, ""},
		{"foreign Host", "GET", "/v1/status", map[string]string{"Authorization": "Bearer " + admin, "Host": "rebind.attacker.example"}, "", 403, "allowedhosts"},
		{"cross-site Origin", "POST", "/v1/work", map[string]string{"Authorization": "Bearer " + admin, "Content-Type": ctJSON, "Origin": "https://evil.example"}, submit, 403, "cross-origin"},
		{"operator signwork", "POST", "/v1/work", map[string]string{"Authorization": "Bearer " + operatorToken, "Content-Type": ctJSON}, signed, 403, "may not signwork"},
		{"operator reload", "POST", "/v1/reload", map[string]string{"Authorization": "Bearer " + operatorToken, "Content-Type": ctJSON}, "{}", 403, "may not reload"},
		{"operator submit", "POST", "/v1/work", map[string]string{"Authorization": "Bearer " + operatorToken, "Content-Type": ctJSON}, submit, 200, "unitId"},
		{"admin status", "GET", "/v1/status", map[string]string{"Authorization": "Bearer " + admin}, "", 200, `"nodeId":"nodea"`},
	} {
		code, body := restCall(t, tc.method, base+tc.path, tc.hdr, tc.body)
		if code != tc.want || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %s %s = %d %s; want %d containing %q", tc.name, tc.method, tc.path, code, body, tc.want, tc.contains)
		}
	}
	stillServes(t, n)
}

// grpcTLSClient dials a gRPC TCP endpoint with a client certificate.
func grpcTLSClient(t *testing.T, addr string, ca *testCA, cert nodeCert) *grpc.ClientConn {
	t.Helper()
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(ca.Cert)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("reading CA: %v", err)
	}
	pair, err := tls.LoadX509KeyPair(cert.Cert, cert.Key)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{pair}, ServerName: "localhost", MinVersion: tls.VersionTLS12,
	})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestGRPCTCPRefusals: gRPC over TCP refuses to start without clientcas;
// a certificate from another CA gets no session; a valid certificate with
// the reader role may read but not submit or open mesh sockets.
func TestGRPCTCPRefusals(t *testing.T) {
	t.Parallel()
	ca, other := newCA(t), newCA(t)
	nc := ca.issue(t, "nodea")
	reader, stranger := ca.issue(t, "dashboard"), other.issue(t, "dashboard")

	// No clientcas: refused at start with a clear error.
	bad := NewNode(t, "nodea")
	dir := bad.Dir
	cfg := nodeYAML(bad, nil,
		entity("tls-server", "name", "nocas", "cert", nc.Cert, "key", nc.Key),
		entity("grpc-server", "tcplisten", bad.Addr("grpc"), "tls", "nocas"),
		"- local-only\n")
	if err := os.WriteFile(filepath.Join(dir, "nocas.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runCommand(t, dir, routerBin, "", "-c", filepath.Join(dir, "nocas.yaml"))
	if res.Code == 0 || !strings.Contains(res.Out, "clientcas") {
		t.Errorf("grpc-server without clientcas: exit %d, want an error naming clientcas\n%s", res.Code, res.Out)
	}

	n := NewNode(t, "nodea")
	n.Start(Spec{Config: func(n *Node) string {
		return nodeYAML(n, nil, append(ca.tlsItems(nc),
			entity("grpc-server", "tcplisten", n.Addr("grpc"), "tls", "srv"),
			entity("access", "role", "reader", "principals", "[cert:dashboard]"),
			workCommandEntity("cat", "cat", "", false),
			"- local-only\n")...)
	}})
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()

	// Another CA's certificate: the handshake fails.
	_, err := controlv1.NewControlServiceClient(grpcTLSClient(t, n.Addr("grpc"), ca, stranger)).
		GetStatus(ctx, &controlv1.GetStatusRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("unknown-CA client certificate: %v, want Unavailable (handshake refused)", err)
	}

	// The reader may read...
	cc := controlv1.NewControlServiceClient(grpcTLSClient(t, n.Addr("grpc"), ca, reader))
	if st, err := cc.GetStatus(ctx, &controlv1.GetStatusRequest{}, grpc.WaitForReady(true)); err != nil || st.GetStatus().GetNodeId() != "nodea" {
		t.Fatalf("reader GetStatus: %v %v", st, err)
	}
	// ...but not submit, reload or sign.
	_, err = cc.CreateWork(ctx, &controlv1.CreateWorkRequest{Params: &workv1.SubmitParams{WorkType: "cat", Node: "nodea"}, Stdin: []byte("x")})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "cert:dashboard") {
		t.Errorf("reader CreateWork: %v, want PermissionDenied naming cert:dashboard", err)
	}
	if _, err = cc.Reload(ctx, &controlv1.ReloadRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("reader Reload: %v, want PermissionDenied", err)
	}
	stillServes(t, n)
}

// TestSignWorkFromMesh: a mesh peer asks this node's control service to
// sign a submission (signwork): refused, since mesh nodes are operators;
// the same node may still submit unsigned work. A plaintext TCP control
// client, anonymous, may do nothing.
func TestSignWorkFromMesh(t *testing.T) {
	t.Parallel()
	a, b := NewNode(t, "nodea"), NewNode(t, "nodeb")
	a.Start(Spec{Bin: workAllInOneBin, Config: func(n *Node) string {
		return nodeYAML(n, nil, asYAML(tcpTransport.listener(n)),
			entity("control-service", "service", "plain", "tcplisten", n.Addr("ctl")),
			workCommandEntity("cat", "cat", "", false))
	}})
	b.Start(Spec{Args: func(n *Node) []string { return append(nodeArgs(n), asArgs(tcpTransport.peer(a))...) }})
	b.WaitRoutes(map[string]string{"nodea": "nodea"})
	a.WaitOwnService("control")

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	// From nodeb's socket (admin there), bridge to nodea's control service:
	// nodea sees the caller as node:nodeb.
	viaMesh := func() *client.Conn {
		local, err := b.Dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = local.Close() })
		raw, err := local.Connect(ctx, "nodea", "control", "")
		if err != nil {
			t.Fatal(err)
		}
		remote, err := client.NewConn(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		return remote
	}
	_, err := viaMesh().SubmitWork(ctx, map[string]string{"node": "nodea", "worktype": "cat", "signwork": "true"}, bytes.NewReader([]byte("x")))
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), "node:nodeb") {
		t.Errorf("signwork from the mesh: %v, want permission denied for node:nodeb", err)
	}
	if res, err := viaMesh().SubmitWork(ctx, map[string]string{"node": "nodea", "worktype": "cat"}, bytes.NewReader([]byte("x"))); err != nil || res.UnitID == "" {
		t.Errorf("unsigned submit from the mesh: %+v %v", res, err)
	}
	if out, err := viaMesh().Command(ctx, "reload"); err == nil || !strings.Contains(err.Error(), "may not reload") {
		t.Errorf("reload from the mesh: %s %v, want permission denied", out, err)
	}

	// Plain TCP control: anonymous, no role.
	tc, err := client.Dial(ctx, "tcp:"+a.Addr("ctl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	if _, err := tc.Command(ctx, "status"); err == nil || !strings.Contains(err.Error(), "authentication required") {
		t.Errorf("anonymous TCP status: %v, want authentication required", err)
	}
	stillServes(t, a)
}

// TestPrincipalLimits: a principal may hold at most maxunits unfinished
// units and send at most maxstdin bytes per submission; releasing a unit
// frees its slot. Here the limits are set for unix-socket peers.
func TestPrincipalLimits(t *testing.T) {
	t.Parallel()
	n := NewNode(t, "nodea")
	n.Start(Spec{Bin: workAllInOneBin, Config: func(n *Node) string {
		return nodeYAML(n, nil,
			entity("access", "role", "admin", "principals", "[uid:*]", "maxunits", "2", "maxstdin", "1000"),
			workCommandEntity("sleep", "sleep", "", true),
			workCommandEntity("cat", "cat", "", false),
			"- local-only\n")
	}})
	sleep := map[string]string{"node": "nodea", "worktype": "sleep", "params": "60"}
	first, _ := workSubmit(t, n.Socket, "nodea", sleep, strings.NewReader(""))
	workSubmit(t, n.Socket, "nodea", sleep, strings.NewReader(""))
	_, _, err := workTrySubmit(n.Socket, "nodea", sleep, strings.NewReader(""))
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("third unit over maxunits=2: %v, want a limit error", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	c, err := n.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Command(ctx, "work release "+first); err != nil {
		t.Fatalf("release: %v", err)
	}
	_ = c.Close()
	// The released unit's slot is free again.
	third, _ := workSubmit(t, n.Socket, "nodea", sleep, strings.NewReader(""))
	if third == "" {
		t.Error("no unit after a release freed a slot")
	}
	// Input over maxstdin is refused (and counts for no unit).
	c, err = n.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Command(ctx, "work release "+third); err != nil {
		t.Fatalf("release: %v", err)
	}
	_ = c.Close()
	_, _, err = workTrySubmit(n.Socket, "nodea", map[string]string{"node": "nodea", "worktype": "cat"}, bytes.NewReader(make([]byte, 5000)))
	if err == nil || !strings.Contains(err.Error(), "maxstdin") {
		t.Errorf("5000 bytes of stdin over maxstdin=1000: %v, want a maxstdin error", err)
	}
	stillServes(t, n)
}
