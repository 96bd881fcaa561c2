package backends

import (
	"bytes"
	"testing"
)

func TestReadFramePooled(t *testing.T) {
	cases := []struct {
		name       string
		size       int
		wantPooled bool
	}{
		{"one byte", 1, true},
		{"QUIC packet with header", 1236, true},
		{"largest pooled", PooledMessageCap, true},
		{"one over", PooledMessageCap + 1, false},
		{"maximal frame", MaxMessageSize, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := pattern(tc.size, 3)
			frame, err := AppendFrame(nil, msg)
			if err != nil {
				t.Fatal(err)
			}
			fr := frameReader{r: bytes.NewReader(frame), alloc: pooledAlloc}
			got, err := fr.readMessage()
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, msg)
			if pooled := cap(got) == PooledMessageCap; pooled != tc.wantPooled {
				t.Fatalf("capacity %d: pooled %v, want %v", cap(got), pooled, tc.wantPooled)
			}
			ReleaseMessage(got)
		})
	}
}

func TestMessageBufferRoundTrip(t *testing.T) {
	b := MessageBuffer()
	if len(b) != 0 || cap(b) != PooledMessageCap {
		t.Fatalf("MessageBuffer: len %d cap %d", len(b), cap(b))
	}
	b = append(b, "data"...)
	ReleaseMessage(b)
	// Slices that are not whole pooled buffers are left alone.
	ReleaseMessage(nil)
	ReleaseMessage(make([]byte, 10))
	ReleaseMessage(MessageBuffer()[:100][36:])
}
