package meshclient_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/meshapi"
	"github.com/receptor-mesh/receptor/services/internal/meshapi/apitest"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/meshclient"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// env is a mesh a - b (- c) with a MeshService server on node a.
type env struct {
	mesh   *apitest.Mesh
	srv    *meshapi.Server
	client *meshclient.Client
	calls  *apitest.Calls
}

func newEnv(t testing.TB, ids ...string) *env {
	if len(ids) == 0 {
		ids = []string{"a", "b"}
	}
	m := apitest.NewMesh(t, ids...)
	srv, cc, calls := apitest.ServeCalls(t, meshapi.Options{Node: m.Nodes["a"]})
	return &env{mesh: m, srv: srv, client: meshclient.New(cc), calls: calls}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// serveMesh runs handler for every connection of a stream listener on
// node's service until the test ends.
func serveMesh(t testing.TB, node *mesh.Node, service string, handler func(*stream.Conn)) {
	t.Helper()
	l, err := stream.Listen(context.Background(), node, service, stream.ListenOptions{Logger: apitest.QuietLogger})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.AcceptContext(context.Background())
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				handler(c)
			})
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
}

// echo copies everything back and half-closes after the peer's EOF.
func echo(c *stream.Conn) {
	_, _ = io.Copy(c, c)
	_ = c.CloseWrite()
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// roundTrip writes payload, half-closes and reads everything back.
func roundTrip(t testing.TB, c net.Conn, payload []byte) []byte {
	t.Helper()
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() {
		if _, werr = c.Write(payload); werr == nil {
			werr = c.(interface{ CloseWrite() error }).CloseWrite()
		}
	})
	got, err := io.ReadAll(c)
	wg.Wait()
	if werr != nil {
		t.Fatalf("write: %v", werr)
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return got
}

func TestDialEchoByteExact(t *testing.T) {
	e := newEnv(t)
	serveMesh(t, e.mesh.Nodes["b"], "echo", echo)
	for _, size := range []int{0, 1, 1 << 20, 10 << 20} {
		payload := randomBytes(t, size)
		c, err := e.client.Dial(testCtx(t), "b", "echo", meshclient.DialOptions{})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		got := roundTrip(t, c, payload)
		if !bytes.Equal(got, payload) {
			t.Errorf("size %d: echoed %d bytes, not byte-exact", size, len(got))
		}
		if la := c.LocalAddr().(mesh.Addr); la.Node != "a" || la.Service == "" {
			t.Errorf("LocalAddr = %v, want a:<ephemeral>", la)
		}
		if ra := c.RemoteAddr(); ra != (mesh.Addr{Node: "b", Service: "echo"}) {
			t.Errorf("RemoteAddr = %v", ra)
		}
		_ = c.Close()
	}
}

func TestDialLocalhost(t *testing.T) {
	e := newEnv(t)
	serveMesh(t, e.mesh.Nodes["a"], "echo", echo)
	c, err := e.client.Dial(testCtx(t), "LocalHost", "echo", meshclient.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := roundTrip(t, c, []byte("hi")); string(got) != "hi" {
		t.Errorf("got %q", got)
	}
}

func TestHalfClose(t *testing.T) {
	e := newEnv(t)
	// Client half-closes first: the mesh peer sees EOF, then answers.
	serveMesh(t, e.mesh.Nodes["b"], "count", func(c *stream.Conn) {
		n, _ := io.Copy(io.Discard, c)
		_, _ = c.Write([]byte{byte(n)})
		_ = c.CloseWrite()
	})
	// The mesh peer half-closes first: the client reads EOF.
	serveMesh(t, e.mesh.Nodes["b"], "hello", func(c *stream.Conn) {
		_, _ = c.Write([]byte("hello"))
		_ = c.CloseWrite()
		_, _ = io.Copy(io.Discard, c)
	})
	ctx := testCtx(t)

	c, err := e.client.Dial(ctx, "b", "count", meshclient.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := roundTrip(t, c, []byte("seven b")); !bytes.Equal(got, []byte{7}) {
		t.Errorf("client half-close: got %v, want [7]", got)
	}
	_ = c.Close()

	c, err = e.client.Dial(ctx, "b", "hello", meshclient.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello" {
		t.Errorf("peer half-close: got %q, %v", got, err)
	}
	_ = c.Close()
}

func TestDialUnknownServiceFails(t *testing.T) {
	e := newEnv(t)
	_, err := e.client.Dial(testCtx(t), "b", "nothing", meshclient.DialOptions{})
	if status.Code(err) != codes.Unavailable || apierr.Text(err) != mesh.ProblemServiceUnknown {
		t.Fatalf("dial unknown service: %v (code %v), want Unavailable %q", err, status.Code(err), mesh.ProblemServiceUnknown)
	}
}

func TestDialUnknownTLSConfig(t *testing.T) {
	e := newEnv(t)
	_, err := e.client.Dial(testCtx(t), "b", "echo", meshclient.DialOptions{TLSClient: "nope"})
	if status.Code(err) != codes.NotFound || apierr.Text(err) != "unknown TLS config nope" {
		t.Fatalf("got %v", err)
	}
}

func TestListenAcceptSlowConnDoesNotBlockOther(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	l, err := e.client.Listen(ctx, "svc", meshclient.ListenOptions{Advertise: true, Tags: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Addr() != (mesh.Addr{Node: "a", Service: "svc"}) {
		t.Errorf("Addr = %v", l.Addr())
	}
	b := e.mesh.Nodes["b"]

	// The first connection floods data that its accepter never reads.
	slow, err := stream.DialConn(ctx, b, "a", "svc", stream.DialOptions{Logger: apitest.QuietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	floodDone := make(chan struct{})
	go func() {
		defer close(floodDone)
		chunk := make([]byte, 64<<10)
		for {
			if _, err := slow.Write(chunk); err != nil {
				return
			}
		}
	}()
	slowAcc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	if ra := slowAcc.RemoteAddr().(mesh.Addr); ra.Node != "b" {
		t.Errorf("accepted RemoteAddr = %v", ra)
	}

	fast, err := stream.DialConn(ctx, b, "a", "svc", stream.DialOptions{Logger: apitest.QuietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	fastAcc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(fastAcc, fastAcc)
		_ = fastAcc.(*meshclient.Conn).CloseWrite()
	})
	// The mesh peer half-closes at once; the accepted side still echoes.
	payload := randomBytes(t, 256<<10)
	wg.Go(func() {
		if _, err := fast.Write(payload); err == nil {
			_ = fast.CloseWrite()
		}
	})
	got, err := io.ReadAll(fast)
	if err != nil || !bytes.Equal(got, payload) {
		t.Errorf("fast connection: %d bytes, %v", len(got), err)
	}
	wg.Wait()
	_ = fastAcc.Close()
	_ = slowAcc.Close()
	_ = slow.Close()
	<-floodDone
}

func TestAcceptOutlivesListen(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	l, err := e.client.Listen(ctx, "svc", meshclient.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := stream.DialConn(ctx, e.mesh.Nodes["b"], "a", "svc", stream.DialOptions{Logger: apitest.QuietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	acc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer acc.Close()
	_ = l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	go func() {
		_, _ = io.Copy(acc, acc)
		_ = acc.(*meshclient.Conn).CloseWrite()
	}()
	if _, err := d.Write([]byte("still here")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("still here"))
	if _, err := io.ReadFull(d, got); err != nil || string(got) != "still here" {
		t.Errorf("after Listen ended: got %q, %v", got, err)
	}
}

func TestPacketRoundTripAndUnreachable(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	pc, err := e.client.ListenPacket(ctx, "pa", meshclient.ListenPacketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	remote, err := e.mesh.Nodes["b"].ListenPacket("pb")
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()

	if _, err := pc.WriteTo([]byte("ping"), mesh.Addr{Node: "b", Service: "pb"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	_ = remote.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, from, err := remote.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "ping" || from != (mesh.Addr{Node: "a", Service: "pa"}) {
		t.Fatalf("remote got %q from %v, %v", buf[:n], from, err)
	}
	if _, err := remote.WriteTo([]byte("pong"), from); err != nil {
		t.Fatal(err)
	}
	_ = pc.SetReadDeadline(time.Now().Add(20 * time.Second))
	n, from, err = pc.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "pong" || from != (mesh.Addr{Node: "b", Service: "pb"}) {
		t.Fatalf("client got %q from %v, %v", buf[:n], from, err)
	}

	if _, err := pc.WriteTo([]byte("x"), mesh.Addr{Node: "b", Service: "none"}); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-pc.Unreachable():
		want := mesh.Unreachable{ReportedBy: "b", FromNode: "a", ToNode: "b", FromService: "pa", ToService: "none",
			Problem: mesh.ProblemServiceUnknown}
		if u != want {
			t.Errorf("unreachable = %+v, want %+v", u, want)
		}
	case <-ctx.Done():
		t.Fatal("no unreachable notice")
	}
}

func TestPingTracerouteStatus(t *testing.T) {
	e := newEnv(t, "a", "b", "c")
	ctx := testCtx(t)
	res, err := e.client.Ping(ctx, "c", meshclient.PingOptions{})
	if err != nil || res.From != "c" {
		t.Fatalf("ping c: %+v, %v", res, err)
	}
	res, err = e.client.Ping(ctx, "localhost", meshclient.PingOptions{})
	if err != nil || res.From != "a" {
		t.Fatalf("ping localhost: %+v, %v", res, err)
	}
	hops, err := e.client.Traceroute(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	var from []string
	for i, h := range hops {
		if h.Hop != i || h.Err != nil {
			t.Errorf("hop %d = %+v", i, h)
		}
		from = append(from, h.From)
	}
	if len(from) != 3 || from[0] != "a" || from[1] != "b" || from[2] != "c" {
		t.Errorf("traceroute via %v, want [a b c]", from)
	}
	st, err := e.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetNodeId() != "a" || st.GetRoutingTable()["c"] != "b" || len(st.GetConnections()) != 1 {
		t.Errorf("status = %v", st)
	}
	cmds := []mesh.WorkCommand{{WorkType: "echo"}, {WorkType: "signed", Secure: true}}
	if err := e.client.SetWorkCommands(ctx, cmds); err != nil {
		t.Fatal(err)
	}
	if got := e.srv.WorkCommands(); len(got) != 2 || got[0] != cmds[0] || got[1] != cmds[1] {
		t.Errorf("stored work commands = %v", got)
	}
}

func TestDeadlines(t *testing.T) {
	e := newEnv(t)
	serveMesh(t, e.mesh.Nodes["b"], "echo", echo)
	c, err := e.client.Dial(testCtx(t), "b", "echo", meshclient.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	isTimeout := func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 10)); !isTimeout(err) {
		t.Errorf("read with nothing to read: %v, want timeout", err)
	}
	_ = c.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := c.Write([]byte("x")); !isTimeout(err) {
		t.Errorf("write after deadline: %v, want timeout", err)
	}
	// Clearing the deadlines makes the connection usable again.
	_ = c.SetDeadline(time.Time{})
	if got := roundTrip(t, c, []byte("again")); string(got) != "again" {
		t.Errorf("after deadlines cleared: %q", got)
	}
}

func TestCloseMidStream(t *testing.T) {
	e := newEnv(t)
	peerDone := make(chan error, 1)
	serveMesh(t, e.mesh.Nodes["b"], "sink", func(c *stream.Conn) {
		_, err := io.Copy(io.Discard, c)
		peerDone <- err
	})
	c, err := e.client.Dial(testCtx(t), "b", "sink", meshclient.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(randomBytes(t, 1<<20)); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
	select {
	case <-peerDone: // the mesh connection ended too (goleak checks the rest)
	case <-time.After(20 * time.Second):
		t.Fatal("mesh peer still connected after the client closed")
	}
}

// connectPeer connects a Conn to a mesh peer on node b running handler:
// by Dial, or by Accept of the peer's dial ("accept"; "accept, no listener"
// closes the Listener right after the Accept). The channel gets what the
// peer read.
func connectPeer(t *testing.T, e *env, kind string, handler func(*stream.Conn) []byte) (*meshclient.Conn, <-chan []byte) {
	t.Helper()
	ctx := testCtx(t)
	got := make(chan []byte, 1)
	switch kind {
	case "dial":
		serveMesh(t, e.mesh.Nodes["b"], "peer", func(c *stream.Conn) { got <- handler(c) })
		c, err := e.client.DialConn(ctx, "b", "peer", meshclient.DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return c, got
	case "accept", "accept, no listener":
		l, err := e.client.Listen(ctx, "peer", meshclient.ListenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		var wg sync.WaitGroup
		wg.Go(func() {
			d, err := stream.DialConn(ctx, e.mesh.Nodes["b"], "a", "peer", stream.DialOptions{Logger: apitest.QuietLogger})
			if err != nil {
				got <- nil
				return
			}
			defer d.Close()
			got <- handler(d)
		})
		t.Cleanup(wg.Wait)
		c, err := l.AcceptContext(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if kind == "accept, no listener" {
			_ = l.Close()
		}
		return c, got
	}
	t.Fatalf("unknown kind %q", kind)
	return nil, nil
}

// TestPeerHalfClosesFirst: a service that greets, half-closes and then
// reads the request (TCP semantics across the router).
func TestPeerHalfClosesFirst(t *testing.T) {
	greetThenRead := func(c *stream.Conn) []byte {
		_, _ = c.Write([]byte("hello"))
		_ = c.CloseWrite()
		b, _ := io.ReadAll(c)
		return b
	}
	tests := []struct {
		name       string
		closeWrite bool // CloseWrite before Close; otherwise Close alone is orderly after EOF
	}{
		{"CloseWrite then Close", true},
		{"Close after EOF", false},
	}
	for _, kind := range []string{"dial", "accept", "accept, no listener"} {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t)
				c, peerGot := connectPeer(t, e, kind, greetThenRead)
				greeting, err := io.ReadAll(c)
				if err != nil || string(greeting) != "hello" {
					t.Fatalf("read %q, %v; want hello and EOF", greeting, err)
				}
				if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
					t.Errorf("read after EOF: %d, %v", n, err)
				}
				payload := randomBytes(t, 1<<20)
				if _, err := c.Write(payload); err != nil {
					t.Fatalf("write after the peer's EOF: %v", err)
				}
				if tt.closeWrite {
					if err := c.CloseWrite(); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
				select {
				case got := <-peerGot:
					if !bytes.Equal(got, payload) {
						t.Errorf("peer read %d bytes, want %d byte-exact", len(got), len(payload))
					}
				case <-time.After(20 * time.Second):
					t.Fatal("peer did not get EOF")
				}
			})
		}
	}
}

// TestPeerStopsReadingAfterEOF: writes the peer refuses after its EOF fail
// Write or Close instead of vanishing.
func TestPeerStopsReadingAfterEOF(t *testing.T) {
	e := newEnv(t)
	c, peerDone := connectPeer(t, e, "dial", func(c *stream.Conn) []byte {
		_ = c.CloseWrite()
		_ = c.Close() // stops reading
		return nil
	})
	if _, err := io.ReadAll(c); err != nil {
		t.Fatal(err)
	}
	<-peerDone
	chunk := make([]byte, 16<<10)
	var err error
	apitest.Eventually(t, 20*time.Second, func() bool {
		_, err = c.Write(chunk)
		return err != nil
	}, "a write fails")
	if status.Code(err) != codes.Unavailable {
		t.Errorf("write error %v, want Unavailable", err)
	}
	if err := c.Close(); err == nil {
		t.Error("close: nil, want the delivery failure")
	}
}

func TestCloseMidStreamEndsAccept(t *testing.T) {
	e := newEnv(t)
	c, peerDone := connectPeer(t, e, "accept", func(c *stream.Conn) []byte {
		b, _ := io.ReadAll(c)
		return b
	})
	if _, err := c.Write(randomBytes(t, 1<<20)); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	select {
	case <-peerDone:
	case <-time.After(20 * time.Second):
		t.Fatal("mesh peer still connected after the client closed")
	}
	// Only the Listen call is left on the router.
	apitest.Eventually(t, 20*time.Second, func() bool { return e.calls.Running() == 1 }, "Accept handler returns")
}
