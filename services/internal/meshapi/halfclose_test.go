package meshapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"
	"time"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/meshapi"
	"github.com/receptor-mesh/receptor/services/internal/meshapi/apitest"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rawCall is the data phase of a Dial or Accept call at the wire level.
type rawCall struct {
	send      func(p []byte) error
	recv      func() (data []byte, eof bool, err error)
	closeSend func() error
}

// peerFunc is the mesh end of a connection; its result is what it read.
type peerFunc func(c *stream.Conn) ([]byte, error)

type peerResult struct {
	got []byte
	err error
}

// connect opens a call of kind ("dial" or "accept") to a mesh peer on node
// b that runs peer. The channel delivers the peer's result.
func connect(t *testing.T, e *env, ctx context.Context, kind string, halfClose bool, peer peerFunc) (rawCall, <-chan peerResult) {
	t.Helper()
	done := make(chan peerResult, 1)
	run := func(c *stream.Conn, err error) {
		if err != nil {
			done <- peerResult{err: err}
			return
		}
		defer c.Close()
		got, err := peer(c)
		done <- peerResult{got, err}
	}
	switch kind {
	case "dial":
		l, err := stream.Listen(ctx, e.mesh.Nodes["b"], "peer", stream.ListenOptions{Logger: apitest.QuietLogger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		go func() { run(l.AcceptContext(ctx)) }()
		s, err := e.mc.Dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{
			Node: "b", Service: "peer", HalfClose: halfClose,
		}}}); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Recv(); err != nil || r.GetConnected() == nil {
			t.Fatalf("connected: %v, %v", r, err)
		}
		return rawCall{
			send: func(p []byte) error { return s.Send(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Data{Data: p}}) },
			recv: func() ([]byte, bool, error) {
				r, err := s.Recv()
				return r.GetData(), r.GetEof() != nil, err
			},
			closeSend: s.CloseSend,
		}, done
	case "accept":
		ls, err := e.mc.Listen(ctx, &meshv1.ListenRequest{Service: "peer"})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := ls.Recv(); err != nil || r.GetListening() == nil {
			t.Fatalf("listening: %v, %v", r, err)
		}
		go func() {
			run(stream.DialConn(ctx, e.mesh.Nodes["b"], "a", "peer", stream.DialOptions{Logger: apitest.QuietLogger}))
		}()
		r, err := ls.Recv()
		if err != nil || r.GetIncoming() == nil {
			t.Fatalf("incoming: %v, %v", r, err)
		}
		s, err := e.mc.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&meshv1.AcceptRequest{Msg: &meshv1.AcceptRequest_Open{Open: &meshv1.AcceptOpen{
			ConnectionId: r.GetIncoming().GetConnectionId(), HalfClose: halfClose,
		}}}); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Recv(); err != nil || r.GetAccepted() == nil {
			t.Fatalf("accepted: %v, %v", r, err)
		}
		return rawCall{
			send: func(p []byte) error { return s.Send(&meshv1.AcceptRequest{Msg: &meshv1.AcceptRequest_Data{Data: p}}) },
			recv: func() ([]byte, bool, error) {
				r, err := s.Recv()
				return r.GetData(), r.GetEof() != nil, err
			},
			closeSend: s.CloseSend,
		}, done
	}
	t.Fatalf("unknown kind %q", kind)
	return rawCall{}, nil
}

// recvUntil collects data until eof or the end of the call; it reports
// whether eof came and the call's end (nil while the call goes on).
func recvUntil(c rawCall) (data []byte, eof bool, end error) {
	for {
		p, isEOF, err := c.recv()
		if err != nil {
			return data, false, err
		}
		if isEOF {
			return data, true, nil
		}
		data = append(data, p...)
	}
}

func sendAll(c rawCall, payload []byte) error {
	for off := 0; off < len(payload); off += 64 << 10 {
		if err := c.send(payload[off:min(off+64<<10, len(payload))]); err != nil {
			return fmt.Errorf("send at %d: %w", off, err)
		}
	}
	return nil
}

// bannerThenSink half-closes after a banner, then reads to EOF, like a
// service that greets first and takes the request afterwards.
func bannerThenSink(c *stream.Conn) ([]byte, error) {
	if _, err := c.Write([]byte("banner")); err != nil {
		return nil, err
	}
	if err := c.CloseWrite(); err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}

// sinkThenCount reads to EOF, then answers with the byte count.
func sinkThenCount(c *stream.Conn) ([]byte, error) {
	got, err := io.ReadAll(c)
	if err != nil {
		return got, err
	}
	if _, err := c.Write([]byte(strconv.Itoa(len(got)))); err != nil {
		return got, err
	}
	return got, c.CloseWrite()
}

func waitPeer(t *testing.T, done <-chan peerResult) peerResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("mesh peer did not finish")
		return peerResult{}
	}
}

func TestHalfClose(t *testing.T) {
	payload := make([]byte, 1<<20)
	_, _ = rand.Read(payload)
	tests := []struct {
		name      string
		halfClose bool
		peer      peerFunc
		// client runs the client side and returns what it received
		// before eof, whether eof came, and the call's end.
		client   func(c rawCall) (got []byte, eof bool, end error)
		wantRecv string
		wantEOF  bool
		wantPeer []byte // nil: the peer's read is not checked
	}{
		{
			name: "peer half-closes first, client sends 1 MiB after", halfClose: true, peer: bannerThenSink,
			client: func(c rawCall) ([]byte, bool, error) {
				got, eof, end := recvUntil(c)
				if end != nil || !eof {
					return got, eof, end
				}
				if err := sendAll(c, payload); err != nil {
					return got, eof, err
				}
				_ = c.closeSend()
				_, _, end = c.recv()
				return got, eof, end
			},
			wantRecv: "banner", wantEOF: true, wantPeer: payload,
		},
		{
			name: "client half-closes first", halfClose: true, peer: sinkThenCount,
			client: func(c rawCall) ([]byte, bool, error) {
				if err := sendAll(c, payload); err != nil {
					return nil, false, err
				}
				_ = c.closeSend()
				got, eof, end := recvUntil(c)
				if end == nil {
					_, _, end = c.recv()
				}
				return got, eof, end
			},
			wantRecv: strconv.Itoa(len(payload)), wantEOF: true, wantPeer: payload,
		},
		{
			// The original contract for clients without half_close: the
			// call ends at the peer's half-close, and no eof is sent.
			name: "without half_close the call ends with the peer's direction", halfClose: false, peer: bannerThenSink,
			client: func(c rawCall) ([]byte, bool, error) {
				got, eof, end := recvUntil(c)
				return got, eof, end
			},
			wantRecv: "banner", wantEOF: false,
		},
	}
	for _, kind := range []string{"dial", "accept"} {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, meshapi.Options{})
				ctx := testCtx(t)
				c, done := connect(t, e, ctx, kind, tt.halfClose, tt.peer)
				got, eof, end := tt.client(c)
				if !errors.Is(end, io.EOF) {
					t.Fatalf("call ended with %v, want OK", end)
				}
				if string(got) != tt.wantRecv || eof != tt.wantEOF {
					t.Errorf("received %q, eof %v; want %q, eof %v", got, eof, tt.wantRecv, tt.wantEOF)
				}
				r := waitPeer(t, done)
				if tt.wantPeer != nil && (r.err != nil || !bytes.Equal(r.got, tt.wantPeer)) {
					t.Errorf("peer read %d bytes (%v), want %d byte-exact", len(r.got), r.err, len(tt.wantPeer))
				}
				listens := int64(0)
				if kind == "accept" {
					listens = 1 // the Listen call stays
				}
				apitest.Eventually(t, 20*time.Second, func() bool { return e.calls.Running() == listens }, "data call's handler returns")
			})
		}
	}
}

// Once eof was sent, a write the peer refuses fails the call instead of
// ending it with OK at the client's half-close.
func TestHalfCloseWriteFailsAfterEOF(t *testing.T) {
	for _, kind := range []string{"dial", "accept"} {
		t.Run(kind, func(t *testing.T) {
			e := newEnv(t, meshapi.Options{})
			ctx := testCtx(t)
			c, done := connect(t, e, ctx, kind, true, func(c *stream.Conn) ([]byte, error) {
				_, _ = c.Write([]byte("bye"))
				return nil, c.Close() // stops reading: our writes fail
			})
			if got, eof, end := recvUntil(c); end != nil || !eof || string(got) != "bye" {
				t.Fatalf("before eof: %q, eof %v, end %v", got, eof, end)
			}
			waitPeer(t, done)
			chunk := make([]byte, 16<<10)
			sendErr := make(chan error, 1)
			go func() {
				for {
					if err := c.send(chunk); err != nil {
						sendErr <- err
						return
					}
				}
			}()
			_, _, end := c.recv()
			if status.Code(end) != codes.Unavailable {
				t.Errorf("call ended with %v, want Unavailable", end)
			}
			<-sendErr
		})
	}
}

// Cancelling a call ends its handler and the mesh connection, before and
// after eof (goleak in TestMain checks the goroutines).
func TestHalfCloseCancelMidStream(t *testing.T) {
	flood := func(c *stream.Conn) ([]byte, error) {
		go func() { _, _ = io.Copy(io.Discard, c) }() // ends with the connection
		buf := make([]byte, 32<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return nil, err
			}
		}
	}
	tests := []struct {
		name string
		peer peerFunc
		// before runs until the moment of the cancel.
		before func(t *testing.T, c rawCall)
	}{
		{"while both directions flow", flood, func(t *testing.T, c rawCall) {
			if err := c.send(make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.recv(); err != nil {
				t.Fatal(err)
			}
		}},
		{"after eof, while the client sends", bannerThenSink, func(t *testing.T, c rawCall) {
			if _, eof, end := recvUntil(c); !eof {
				t.Fatalf("no eof: %v", end)
			}
			if err := c.send(make([]byte, 64<<10)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, kind := range []string{"dial", "accept"} {
		for _, tt := range tests {
			t.Run(kind+"/"+tt.name, func(t *testing.T) {
				e := newEnv(t, meshapi.Options{})
				ctx, cancel := context.WithCancel(testCtx(t))
				defer cancel()
				c, done := connect(t, e, ctx, kind, true, tt.peer)
				tt.before(t, c)
				cancel()
				if r := waitPeer(t, done); r.err == nil && tt.name == "while both directions flow" {
					t.Error("flooding peer: no error after the cancel")
				}
				apitest.Eventually(t, 20*time.Second, func() bool { return e.calls.Running() == 0 }, "handlers return")
			})
		}
	}
}

// After its Listen call ends, a listener that still carries an accepted
// connection refuses new ones at once instead of leaving them unserved;
// the accepted connection keeps working.
func TestEndedListenRefusesNewConnections(t *testing.T) {
	e := newEnv(t, meshapi.Options{})
	ctx := testCtx(t)
	lctx, endListen := context.WithCancel(ctx)
	defer endListen()
	ls, err := e.mc.Listen(lctx, &meshv1.ListenRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ls.Recv(); err != nil || r.GetListening() == nil {
		t.Fatalf("listening: %v, %v", r, err)
	}
	first, err := stream.DialConn(ctx, e.mesh.Nodes["b"], "a", "svc", stream.DialOptions{Logger: apitest.QuietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	r, err := ls.Recv()
	if err != nil || r.GetIncoming() == nil {
		t.Fatalf("incoming: %v, %v", r, err)
	}
	s, err := e.mc.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&meshv1.AcceptRequest{Msg: &meshv1.AcceptRequest_Open{Open: &meshv1.AcceptOpen{
		ConnectionId: r.GetIncoming().GetConnectionId(), HalfClose: true,
	}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Recv(); err != nil || r.GetAccepted() == nil {
		t.Fatalf("accepted: %v, %v", r, err)
	}
	endListen()
	apitest.Eventually(t, 20*time.Second, func() bool { return e.calls.Running() == 1 }, "Listen handler returns")

	late, err := stream.DialConn(ctx, e.mesh.Nodes["b"], "a", "svc", stream.DialOptions{Logger: apitest.QuietLogger})
	if err == nil {
		defer late.Close()
		_ = late.SetReadDeadline(time.Now().Add(20 * time.Second))
		var ne interface{ Timeout() bool }
		if _, err := late.Read(make([]byte, 1)); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Errorf("late connection: read %v, want it closed by the router", err)
		}
	}

	// The accepted connection still carries data both ways.
	if _, err := first.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Recv(); err != nil || string(got.GetData()) != "ping" {
		t.Fatalf("accepted side got %v, %v", got, err)
	}
	if err := s.Send(&meshv1.AcceptRequest{Msg: &meshv1.AcceptRequest_Data{Data: []byte("pong")}}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(first, buf); err != nil || string(buf) != "pong" {
		t.Errorf("dialer got %q, %v", buf, err)
	}
	_ = s.CloseSend()
	_ = first.CloseWrite()
	for {
		if _, err := s.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Errorf("accept call ended with %v", err)
			}
			break
		}
	}
}
