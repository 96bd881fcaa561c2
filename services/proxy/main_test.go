package proxy

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/backends/memory"
	"github.com/receptor-mesh/receptor/services/testkit"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// bound is the failure bound of every eventually-style wait (never a
// timing assertion).
const bound = 20 * time.Second

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// newChain builds an in-process mesh node1 — node2 — node3 over the memory
// backend and waits until node1 and node3 route to each other.
func newChain(tb testing.TB) (n1, n2, n3 *mesh.Node) {
	tb.Helper()
	mnet := memory.NewNetwork(4096)
	nodes := make([]*mesh.Node, 3)
	for i := range nodes {
		n, err := mesh.New(mesh.Options{
			NodeID: []string{"node1", "node2", "node3"}[i], Logger: quietLog,
			RouteUpdateInterval: 500 * time.Millisecond, RouteRequestDelay: 2 * time.Millisecond,
			AdInterval: time.Second, AdRequestDelay: 5 * time.Millisecond,
			InitialConnectPeriod: 50 * time.Millisecond,
			SendQueueLen:         4096, SocketQueueLen: 4096,
		})
		if err != nil {
			tb.Fatal(err)
		}
		nodes[i] = n
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			if err := n.Shutdown(ctx); err != nil {
				tb.Errorf("shutdown %s: %v", n.NodeID(), err)
			}
		})
	}
	link := func(a, b *mesh.Node) {
		name := a.NodeID() + "->" + b.NodeID()
		if err := a.AddBackend(mnet.Listener(name), mesh.BackendOptions{Cost: 1}); err != nil {
			tb.Fatal(err)
		}
		if err := b.AddBackend(mnet.Dialer(name, memory.DialerOptions{Backoff: 10 * time.Millisecond}), mesh.BackendOptions{Cost: 1}); err != nil {
			tb.Fatal(err)
		}
	}
	link(nodes[0], nodes[1])
	link(nodes[1], nodes[2])
	testkit.Eventually(tb, bound, "node1 and node3 route to each other", func() error {
		_, ok1 := nodes[0].Status().RoutingTable["node3"]
		_, ok3 := nodes[2].Status().RoutingTable["node1"]
		if ok1 && ok3 {
			return nil
		}
		return errors.New("want ok1 && ok3")
	})
	return nodes[0], nodes[1], nodes[2]
}

// start runs p until the test ends.
func start(tb testing.TB, p Proxy) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wait, err := p.Start(ctx)
	if err != nil {
		cancel()
		tb.Fatalf("start %s: %v", p.Kind(), err)
	}
	tb.Cleanup(func() {
		cancel()
		wait()
	})
}

// serveTCP runs handle for every connection on a loopback listener until
// the test ends.
func serveTCP(tb testing.TB, handle func(net.Conn)) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	serve(tb, ln, handle)
	return ln.Addr().String()
}

func serve(tb testing.TB, ln net.Listener, handle func(net.Conn)) {
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			if closed {
				_ = c.Close()
			}
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	tb.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			_ = c.Close() // unblock handlers still waiting on their peer
		}
		mu.Unlock()
		wg.Wait()
	})
}

// echo copies everything back and half-closes at EOF.
func echo(c net.Conn) {
	_, _ = io.Copy(c, c)
	if cw, ok := c.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
}

// hashReply reads to EOF, then answers with the SHA-256 of what it read:
// it only works if the client's half-close crossed the proxies.
func hashReply(c net.Conn) {
	h := sha256.New()
	if _, err := io.Copy(h, c); err != nil {
		return
	}
	_, _ = c.Write(h.Sum(nil))
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func timeNowPlusBound() time.Time { return time.Now().Add(bound) }

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
