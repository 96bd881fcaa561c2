package backends

import (
	"testing"
	"time"
)

func TestByteGate(t *testing.T) {
	g := byteGate{limit: 100}
	if !g.tryTake(1000) {
		t.Fatal("an empty gate refused a message larger than its limit")
	}
	if g.tryTake(1) {
		t.Fatal("over the limit")
	}
	got := make(chan bool)
	go func() { got <- g.take(50, nil, nil) }()
	select {
	case <-got:
		t.Fatal("take did not wait for room")
	case <-time.After(20 * time.Millisecond):
	}
	g.release(1000)
	if !<-got || g.held() != 50 {
		t.Fatalf("take after release: held %d", g.held())
	}
	stop := make(chan struct{})
	go func() { got <- g.take(60, stop, nil) }()
	close(stop)
	if <-got {
		t.Fatal("take succeeded after cancel")
	}
}

// TestSessionQueuesBoundedInBytes: a session's send queue refuses messages
// once sendQueueBytes are queued, long before its length bound; its receive
// queue takes no more than recvQueueBytes without the reader waiting.
func TestSessionQueuesBoundedInBytes(t *testing.T) {
	s := newSession("test")
	defer s.fail(ErrSessionClosed)
	msg := make([]byte, MaxMessageSize)
	queued := 0
	for range sendQueueLen {
		ok, err := s.Enqueue(msg)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			queued++
		}
	}
	if want := sendQueueBytes / MaxMessageSize; queued != want {
		t.Fatalf("queued %d messages of %d bytes, want %d", queued, MaxMessageSize, want)
	}
	in := 0
	for range recvQueueLen {
		if s.offer(make([]byte, 256<<10)) {
			in++
		}
	}
	if want := recvQueueBytes / (256 << 10); in != want {
		t.Fatalf("receive queue took %d messages of 256 KiB, want %d", in, want)
	}
	if _, err := s.Recv(time.Second); err != nil {
		t.Fatal(err)
	}
	if !s.offer(make([]byte, 256<<10)) {
		t.Fatal("no room after Recv")
	}
}
