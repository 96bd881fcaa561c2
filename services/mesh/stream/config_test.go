package stream

import (
	"bytes"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/receptor-mesh/receptor/services/mesh"
)

func TestQUICConfig(t *testing.T) {
	for _, dialer := range []bool{false, true} {
		c := quicConfig(dialer)
		checks := []struct {
			name      string
			got, want any
		}{
			{"versions", c.Versions, []quic.Version{quic.Version1}},
			{"handshake idle", c.HandshakeIdleTimeout, 15 * time.Second},
			{"max idle", c.MaxIdleTimeout, 30 * time.Second},
			{"initial packet size", c.InitialPacketSize, uint16(1400)},
			{"PMTUD disabled", c.DisablePathMTUDiscovery, true},
			{"datagrams", c.EnableDatagrams, false},
			{"initial stream window", c.InitialStreamReceiveWindow, uint64(524288)},
			{"initial connection window", c.InitialConnectionReceiveWindow, uint64(786432)},
			{"bidi streams", c.MaxIncomingStreams, int64(100)},
			{"uni streams", c.MaxIncomingUniStreams, int64(100)},
			{"keep-alive only on the dialer", c.KeepAlivePeriod != 0, dialer},
		}
		for _, ch := range checks {
			if !equalAny(ch.got, ch.want) {
				t.Errorf("dialer=%v %s: got %v, want %v", dialer, ch.name, ch.got, ch.want)
			}
		}
		if c.MaxStreamReceiveWindow < 6<<20 || c.MaxConnectionReceiveWindow < c.MaxStreamReceiveWindow {
			t.Errorf("window maxima %d/%d below upstream's", c.MaxStreamReceiveWindow, c.MaxConnectionReceiveWindow)
		}
	}
}

func equalAny(a, b any) bool {
	if va, ok := a.([]quic.Version); ok {
		vb := b.([]quic.Version)
		if len(va) != len(vb) {
			return false
		}
		for i := range va {
			if va[i] != vb[i] {
				return false
			}
		}
		return true
	}
	return a == b
}

// TestFirstDatagramGolden pins what goes on the mesh wire first: one QUIC v1
// Initial packet, padded to exactly MaxDatagram (1400) bytes, from the dialer's fresh
// ephemeral service to the listener's service (docs/protocol.md §10.1).
func TestFirstDatagramGolden(t *testing.T) {
	w := newWorld(1024)
	var (
		mu    sync.Mutex
		first []byte
		from  mesh.Addr
		to    mesh.Addr
	)
	w.net.setTap(func(f, d mesh.Addr, b []byte) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil && f.Node == "node1" {
			first, from, to = append([]byte(nil), b...), f, d
		}
	})
	l := mustListen(t, w, "gold", ListenOptions{})
	c, err := DialConn(testCtx(t), w.client, "node2", "gold", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseConnection()
	if _, err := l.AcceptContext(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(first) != 1400 {
		t.Fatalf("first datagram is %d bytes, want 1400", len(first))
	}
	// Long header (0x80), fixed bit (0x40), type Initial (0x00 in bits 0x30).
	if first[0]&0xf0 != 0xc0 {
		t.Fatalf("first byte %#x is not a QUIC Initial", first[0])
	}
	if v := binary.BigEndian.Uint32(first[1:5]); v != 1 {
		t.Fatalf("QUIC version %#x, want 0x00000001", v)
	}
	if to != (mesh.Addr{Node: "node2", Service: "gold"}) || from != c.LocalAddr() || len(from.Service) != 8 {
		t.Fatalf("first datagram %v -> %v, dialer is %v", from, to, c.LocalAddr())
	}
	if bytes.Equal(first[5:], make([]byte, len(first)-5)) {
		t.Fatal("Initial packet body is empty")
	}
}
