package control

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// testTLS is a server configuration with a certificate for localhost and
// 127.0.0.1, and a client configuration trusting its CA.
func testTLS(t *testing.T) (server, clientCfg *tls.Config) {
	t.Helper()
	ca := testkit.NewCA(t)
	c := ca.Issue(t, testkit.IssueOptions{
		CommonName: "localhost", DNSNames: []string{"localhost"},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Usage: testkit.ServerOnly,
	})
	server = &tls.Config{Certificates: []tls.Certificate{c.TLS}, MinVersion: tls.VersionTLS12}
	clientCfg = &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	return server, clientCfg
}

// startTCP serves the fake node on a loopback TCP(+TLS) listener.
func startTCP(t *testing.T, opts Options, tlsCfg *tls.Config) (*fakeOps, string) {
	t.Helper()
	ops := newFakeOps()
	ln, err := ListenTCP("127.0.0.1:0", tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewServer(ops, opts).Serve(ctx, ln, OriginTCP) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ops, ln.Addr().String()
}

func TestClientOverTLSHalfCloseWithoutCloseNotify(t *testing.T) {
	serverCfg, clientCfg := testTLS(t)
	_, addr := startTCP(t, Options{}, serverCfg)
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()

	c, err := client.Dial(ctx, "tls://"+addr, clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.NodeID() != "nodea" {
		t.Fatalf("node ID %q", c.NodeID())
	}
	var st struct{ Version string }
	if err := c.CommandJSON(ctx, map[string]any{"command": "status", "requested_fields": []string{"Version"}}, &st); err != nil || st.Version != "1.5.0" {
		t.Fatalf("status: %+v %v", st, err)
	}
	// SubmitWork half-closes the TCP socket under TLS without close_notify,
	// as receptorctl does; the server must take that as the payload's end.
	res, err := c.SubmitWork(ctx, map[string]string{"node": "localhost", "worktype": "cat"}, strings.NewReader("hello world\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res != (client.SubmitResult{Result: "Job Started", UnitID: "Unit0001"}) {
		t.Fatalf("submit result %+v", res)
	}

	c2, err := client.Dial(ctx, "tls:"+addr, clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	out, err := c2.Results(ctx, "Unit0001", 6)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(out)
	if err != nil || string(b) != "world\n" {
		t.Fatalf("results %q %v", b, err)
	}
}

func TestTLSHandshakeTimeoutClosesWithoutGreeting(t *testing.T) {
	serverCfg, _ := testTLS(t)
	_, addr := startTCP(t, Options{HandshakeTimeout: 50 * time.Millisecond}, serverCfg)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(failAfter))
	b, err := io.ReadAll(c)
	if err != nil || len(b) != 0 {
		t.Fatalf("silent client got %q, %v; want EOF without greeting", b, err)
	}
}

func TestClientCommands(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	ts.ops.dial["nodea/control"] = func() (net.Conn, error) { return net.Dial("unix", ts.path) }
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	c, err := client.Dial(ctx, "unix://"+ts.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	raw, err := c.Command(ctx, "ping nodeb")
	if err != nil || !strings.Contains(string(raw), `"From":"nodeb"`) {
		t.Fatalf("ping: %s %v", raw, err)
	}
	_, err = c.Command(ctx, "doesnotexist")
	var re *client.RemoteError
	if !errors.As(err, &re) || re.Message != "Unknown command" {
		t.Fatalf("unknown command error = %v", err)
	}
	_, err = c.SubmitWork(ctx, map[string]string{"node": "localhost", "worktype": "nosuch"}, nil)
	if !errors.As(err, &re) || re.Message != "unknown work type nosuch" {
		t.Fatalf("bad submit error = %v", err)
	}
	// The session survives errors; connect then speak to the remote side.
	bridged, err := c.Connect(ctx, "localhost", "control", "")
	if err != nil {
		t.Fatal(err)
	}
	inner, err := client.NewConn(ctx, bridged)
	if err != nil {
		t.Fatal(err)
	}
	var st struct{ NodeID string }
	if err := inner.CommandJSON(ctx, map[string]any{"command": "status"}, &st); err != nil || st.NodeID != "nodea" {
		t.Fatalf("status through connect: %+v %v", st, err)
	}
}

func TestClientContextCancelInterruptsRead(t *testing.T) {
	ts := startServer(t, Options{}, OriginUnix)
	ts.ops.addUnit("Endless1", &fakeUnit{workType: "cat", state: 1, endless: true})
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	defer cancel()
	c, err := client.Dial(ctx, ts.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Nothing answers a line that is still being typed; a cancelled ctx
	// must end the wait.
	if err := c.WriteLine(ctx, ""); err != nil {
		t.Fatal(err)
	}
	short, stop := context.WithCancel(ctx)
	stop()
	if _, err := c.ReadLine(short); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadLine with cancelled ctx = %v", err)
	}
}
