package backends

import (
	"bytes"
	"io"
	"net"
	"testing"
	"testing/iotest"
)

func TestReadPooledSizes(t *testing.T) {
	for _, n := range []int{0, 1, PooledMessageCap - 1, PooledMessageCap, PooledMessageCap + 1, 3*PooledMessageCap + 5} {
		want := bytes.Repeat([]byte{0xab}, n)
		for i := range want {
			want[i] = byte(i)
		}
		// OneByteReader and HalfReader make Read return short counts.
		for _, r := range []io.Reader{bytes.NewReader(want), iotest.OneByteReader(bytes.NewReader(want)), iotest.HalfReader(bytes.NewReader(want))} {
			got, err := readPooled(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("n=%d: got %d bytes, err %v", n, len(got), err)
			}
			if pooled := cap(got) == PooledMessageCap; pooled != (n < PooledMessageCap) { // a full buffer grows before EOF shows
				t.Errorf("n=%d: pooled=%v", n, pooled)
			}
			ReleaseMessage(got)
		}
	}
	if _, err := readPooled(iotest.ErrReader(io.ErrUnexpectedEOF)); err != io.ErrUnexpectedEOF {
		t.Errorf("error not passed on: %v", err)
	}
}

// TestCorkConnBatches checks that corked writes reach the peer in order,
// in one write, and that writes outside cork pass straight through.
func TestCorkConnBatches(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := newCorkConn(a)
	got := make(chan []byte, 4)
	go func() {
		buf := make([]byte, 1<<20)
		for {
			n, err := b.Read(buf)
			if err != nil {
				close(got)
				return
			}
			got <- append([]byte(nil), buf[:n]...)
		}
	}()
	c.cork()
	for _, s := range []string{"one", "two", "three"} {
		if n, err := c.Write([]byte(s)); err != nil || n != len(s) {
			t.Fatalf("corked write: %d, %v", n, err)
		}
	}
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if g := string(<-got); g != "onetwothree" {
		t.Errorf("batch = %q, want one write of %q", g, "onetwothree")
	}
	if _, err := c.Write([]byte("plain")); err != nil {
		t.Fatal(err)
	}
	if g := string(<-got); g != "plain" {
		t.Errorf("uncorked write = %q", g)
	}
	if corkOf(c) != c || corkOf(a) != nil {
		t.Error("corkOf does not find the cork")
	}
}
