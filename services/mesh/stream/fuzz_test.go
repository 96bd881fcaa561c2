package stream

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh"
)

// FuzzFirstStreamByte drives arbitrary first-stream bytes from a dialer
// through the listener's acceptance check (docs/protocol.md §10.4) over the in-memory
// mesh: only a leading 0x00 may be accepted, nothing may panic.
func FuzzFirstStreamByte(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{0, 1, 2})
	f.Add([]byte{1})
	f.Add([]byte{0xff, 0})
	f.Fuzz(func(t *testing.T, first []byte) {
		if len(first) == 0 || len(first) > 4096 {
			return
		}
		acceptedIfZero(t, first)
	})
}

// FuzzToMeshAddr checks address conversion from arbitrary peer strings.
func FuzzToMeshAddr(f *testing.F) {
	f.Add("node1:svc")
	f.Add("node:with:colons")
	f.Add(":")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		a := toMeshAddr(stringAddr(s))
		if a.String() != s && len(s) > 0 && s != a.Node {
			// Only a missing ':' may change the text (no service part).
			t.Fatalf("toMeshAddr(%q) = %q", s, a.String())
		}
		if b := toMeshAddr(a); b != a {
			t.Fatalf("mesh.Addr not kept: %v -> %v", a, b)
		}
	})
}

type stringAddr string

func (s stringAddr) Network() string { return "test" }
func (s stringAddr) String() string  { return string(s) }

// acceptedIfZero opens a raw QUIC stream to a listener, writes first and
// checks the listener's verdict: Accept for a leading 0x00 (with the rest
// delivered as data), CONNECTION_CLOSE "Read Data Error" otherwise.
func acceptedIfZero(t *testing.T, first []byte) {
	w := newWorld(1024)
	l := mustListen(t, w, "fb", ListenOptions{})
	pc, err := w.client.ListenPacket("")
	if err != nil {
		t.Fatal(err)
	}
	mpc := newPacketConn(pc)
	tr, err := newTransport(mpc)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = mpc.Close(); _ = tr.Close() }()
	qc, err := tr.Dial(testCtx(t), mesh.Addr{Node: "node2", Service: "fb"}, insecureClientTLS("node1"), quicConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	qs, err := qc.OpenStreamSync(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qs.Write(first); err != nil {
		t.Fatal(err)
	}
	_ = qs.Close()
	if first[0] == 0 {
		c, err := l.AcceptContext(testCtx(t))
		if err != nil {
			t.Fatalf("stream starting with 0x00 not accepted: %v", err)
		}
		defer c.CloseConnection()
		rest, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(rest, first[1:]) {
			t.Fatalf("data after 0x00: %x, %v; want %x", rest, err, first[1:])
		}
		return
	}
	select {
	case <-qc.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("listener did not close a connection with a bad first byte")
	}
	if err := context.Cause(qc.Context()); err == nil || !strings.Contains(err.Error(), reasonReadData) {
		t.Fatalf("close reason %v, want %q", err, reasonReadData)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if c, err := l.AcceptContext(ctx); err == nil {
		t.Fatalf("bad connection was handed to Accept: %v", c.RemoteAddr())
	}
}
