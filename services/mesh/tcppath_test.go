package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/mesh/backends"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestDatagramsIntactOverTCPHops sends many distinct datagrams a → b → c
// over TCP backends, where received messages are forwarded in place and
// their pooled buffers recycled after the write. Every datagram that
// arrives must be exactly what was sent: a buffer reused too early would
// show up as a corrupted or duplicated payload.
func TestDatagramsIntactOverTCPHops(t *testing.T) {
	nodes := map[string]*Node{}
	for _, id := range []string{"a", "b", "c"} {
		n, err := New(fastOptions(id))
		if err != nil {
			t.Fatal(err)
		}
		nodes[id] = n
		t.Cleanup(func() { _ = n.Close() })
	}
	for _, l := range [][2]string{{"a", "b"}, {"b", "c"}} {
		ln, err := backends.NewTCPListener(backends.TCPListenerOptions{Address: "127.0.0.1:0", Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		if err := nodes[l[0]].AddBackend(ln, BackendOptions{}); err != nil {
			t.Fatal(err)
		}
		d, err := backends.NewTCPDialer(backends.TCPDialerOptions{Address: ln.Addr().String(), Redial: true, Logger: quietLog})
		if err != nil {
			t.Fatal(err)
		}
		if err := nodes[l[1]].AddBackend(d, BackendOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 20*time.Second, "condition", func() error {
		if nodes["a"].Status().RoutingTable["c"] == "b" {
			return nil
		}
		return errors.New("route a → c")
	})
	dst, err := nodes["c"].ListenPacket("dst")
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	src, err := nodes["a"].ListenPacket("")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()

	const count, size = 5000, 1200
	type result struct {
		got int
		err error
	}
	done := make(chan result, 1)
	go func() {
		seen := make(map[uint32]bool, count)
		buf := make([]byte, 2*size)
		for {
			_ = dst.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, _, err := dst.ReadFrom(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				done <- result{got: len(seen)}
				return
			}
			if err != nil {
				done <- result{len(seen), err}
				return
			}
			seq, ok := checkDatagram(buf[:n], size)
			if !ok || seen[seq] {
				done <- result{len(seen), errors.New("corrupted or duplicated datagram")}
				return
			}
			seen[seq] = true
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for seq := range uint32(count) {
		if _, err := src.WriteTo(makeDatagram(seq, size), Addr{Node: "c", Service: "dst"}); err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatal("sending took too long")
		}
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("after %d good datagrams: %v", r.got, r.err)
	}
	if r.got == 0 {
		t.Fatal("no datagram arrived")
	}
	t.Logf("%d of %d datagrams arrived intact", r.got, count)
}

// makeDatagram is seq, a pattern derived from it, and a CRC of both.
func makeDatagram(seq uint32, size int) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, seq)
	for i := 4; i < size-4; i++ {
		b[i] = byte(seq*31 + uint32(i))
	}
	binary.BigEndian.PutUint32(b[size-4:], crc32.ChecksumIEEE(b[:size-4]))
	return b
}

func checkDatagram(b []byte, size int) (uint32, bool) {
	if len(b) != size || binary.BigEndian.Uint32(b[size-4:]) != crc32.ChecksumIEEE(b[:size-4]) {
		return 0, false
	}
	seq := binary.BigEndian.Uint32(b)
	for i := 4; i < size-4; i++ {
		if b[i] != byte(seq*31+uint32(i)) {
			return 0, false
		}
	}
	return seq, true
}
