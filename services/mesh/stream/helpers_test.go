package stream

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"
)

const failAfter = 20 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), failAfter)
	t.Cleanup(cancel)
	return ctx
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// world is one in-memory mesh with a dialing node and a listening node.
type world struct {
	net    *memNet
	client *memNode
	server *memNode
}

func newWorld(queueLen int) *world {
	n := newMemNet(queueLen)
	return &world{net: n, client: n.node("node1"), server: n.node("node2")}
}

func mustListen(t testing.TB, w *world, service string, opts ListenOptions) *Listener {
	t.Helper()
	l, err := Listen(testCtx(t), w.server, service, opts)
	if err != nil {
		t.Fatalf("Listen(%q): %v", service, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// serveEcho accepts one connection and echoes it until EOF, then
// half-closes; it returns the accepted conn on the channel when done.
func serveEcho(ctx context.Context, l *Listener) <-chan error {
	done := make(chan error, 1)
	go func() {
		c, err := l.AcceptContext(ctx)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		if _, err := io.Copy(c, c); err != nil {
			done <- err
			return
		}
		done <- c.CloseWrite()
	}()
	return done
}

// echoRoundTrip writes data, half-closes and checks the echo byte for byte.
func echoRoundTrip(t testing.TB, c *Conn, data []byte) {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo differs: got %d bytes, want %d", len(got), len(data))
	}
}

func waitEnded(t testing.TB, c *Conn) {
	t.Helper()
	if err := c.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func isErr(err, target error) bool { return errors.Is(err, target) }
