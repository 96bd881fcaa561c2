package stream

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/receptor-mesh/receptor/services/mesh"
)

// FuzzFirstStreamByte drives arbitrary first-stream bytes from a dialer
// through the listener's acceptance check (docs/protocol.md §10.4) over the in-memory
// mesh: only a leading 0x00 may be accepted, with the rest delivered as
// data; any other first byte closes the connection with "Read Data Error"
// and never reaches Accept. The mesh, the listener and the dialer's QUIC
// transport are set up once; an input costs one QUIC connection.
func FuzzFirstStreamByte(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{0, 1, 2})
	f.Add([]byte{1})
	f.Add([]byte{0xff, 0})
	rig := newFirstByteRig(f)
	f.Fuzz(func(t *testing.T, first []byte) {
		if len(first) == 0 || len(first) > 2048 {
			return
		}
		rig.check(t, first)
	})
}

// firstByteRig is a listener and a dialing QUIC transport on two nodes of
// an in-memory mesh, shared by the inputs of FuzzFirstStreamByte and the
// cases of TestFirstByteMustBeZero.
type firstByteRig struct {
	l  *Listener
	tr *quic.Transport
}

func newFirstByteRig(tb testing.TB) *firstByteRig {
	w := newWorld(1024)
	l := mustListen(tb, w, "fb", ListenOptions{})
	pc, err := w.client.ListenPacket("")
	if err != nil {
		tb.Fatal(err)
	}
	mpc := newPacketConn(pc)
	tr, err := newTransport(mpc)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = tr.Close(); _ = mpc.Close() })
	return &firstByteRig{l: l, tr: tr}
}

// check opens a connection whose first stream carries first and checks
// the listener's verdict.
func (r *firstByteRig) check(t *testing.T, first []byte) {
	ctx := testCtx(t)
	qc, err := r.tr.Dial(ctx, mesh.Addr{Node: "node2", Service: "fb"}, insecureClientTLS("node1"), quicConfig(true))
	if err != nil {
		t.Fatal(err)
	}
	defer qc.CloseWithError(0, "")
	qs, err := qc.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qs.Write(first); err != nil {
		t.Fatal(err)
	}
	_ = qs.Close()
	if first[0] == 0 {
		c, err := r.l.AcceptContext(ctx)
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
	case <-ctx.Done():
		t.Fatal("listener did not close a connection with a bad first byte")
	}
	if err := context.Cause(qc.Context()); err == nil || !strings.Contains(err.Error(), reasonReadData) {
		t.Fatalf("close reason %v, want %q", err, reasonReadData)
	}
	// The listener closes a rejected connection instead of handing it
	// over, so nothing can be waiting for Accept now.
	select {
	case c := <-r.l.ready:
		t.Fatalf("bad connection was handed to Accept: %v", c.RemoteAddr())
	default:
	}
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
