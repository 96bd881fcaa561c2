package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestInflightBoundPerService: a flood of QUIC connections that never
// open their first stream fills only its own service's bound; the
// listener refuses the excess before keeping state for it, and another
// service on the same node (control) still accepts streams.
func TestInflightBoundPerService(t *testing.T) {
	w := newWorld(4096)
	flood := mustListen(t, w, "flood", ListenOptions{})
	control := mustListen(t, w, "control", ListenOptions{})
	echo := serveEcho(testCtx(t), control)

	const n = maxInflight + 32
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		open    []*quic.Conn
		refused atomic.Int64
		peak    atomic.Int64
	)
	stopPeak := make(chan struct{})
	peakDone := make(chan struct{})
	go func() {
		defer close(peakDone)
		for {
			if v := flood.inflight.n.Load(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-stopPeak:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var closers []func()
	for range n {
		mpc, err := w.client.ListenPacket("")
		if err != nil {
			t.Fatal(err)
		}
		pc := newPacketConn(mpc)
		tr, err := newTransport(pc)
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, func() { _ = tr.Close(); _ = pc.Close() })
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			qc, err := tr.Dial(ctx, mesh.Addr{Node: "node2", Service: "flood"}, insecureClientTLS("node1"), quicConfig(true))
			if err != nil {
				refused.Add(1)
				return
			}
			mu.Lock()
			open = append(open, qc)
			mu.Unlock()
		})
	}
	wg.Wait()
	defer func() {
		for _, qc := range open {
			_ = qc.CloseWithError(0, "")
		}
		for _, c := range closers {
			c()
		}
	}()
	// The flood sits in its service's bound; control still serves.
	c, err := Dial(testCtx(t), w.client, "node2", "control", DialOptions{})
	if err != nil {
		t.Fatalf("dial control during the flood: %v", err)
	}
	// Fail, not hang, if control does not answer (the echo server's
	// accept gives up after failAfter, and a stream has no deadline of its
	// own).
	_ = c.SetDeadline(time.Now().Add(failAfter))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		select {
		case eerr := <-echo:
			t.Fatalf("echo through control during the flood: %q, %v (echo server: %v)", buf, err, eerr)
		default:
			t.Fatalf("echo through control during the flood: %q, %v", buf, err)
		}
	}
	_ = c.Close()
	select {
	case <-echo:
	case <-time.After(failAfter):
		t.Fatal("the echo server did not see the control stream end")
	}
	close(stopPeak)
	<-peakDone
	if p := peak.Load(); p > maxInflight {
		t.Fatalf("%d connections in flight on one service, bound %d", p, maxInflight)
	}
	// The excess is refused: by the gate when the flood arrives at once,
	// or, when the dials are spread out (a loaded machine), by quic-go's
	// full accept queue once the handshake is done, which the dialer sees
	// as its connection closing.
	alive := 0
	testkit.Eventually(t, failAfter, "the excess refused", func() error {
		alive = 0
		for _, qc := range open {
			if qc.Context().Err() == nil {
				alive++
			}
		}
		if alive > maxInflight {
			return fmt.Errorf("%d flood connections alive, bound %d", alive, maxInflight)
		}
		if refused.Load() == 0 && flood.inflight.refused.Load() == 0 && alive == n {
			return fmt.Errorf("none of %d connections refused", n)
		}
		return nil
	})
	if v := control.inflight.n.Load(); v != 0 {
		t.Fatalf("control holds %d in-flight connections after its accept", v)
	}
	t.Logf("flood of %d: peak in flight %d (bound %d), %d dials failed, %d refused by the gate, %d alive",
		n, peak.Load(), maxInflight, refused.Load(), flood.inflight.refused.Load(), alive)
	// Closing the flood gives every slot back.
	for _, qc := range open {
		_ = qc.CloseWithError(0, "")
	}
	testkit.Eventually(t, failAfter, "flood slots released", func() error {
		if flood.inflight.n.Load() == 0 {
			return nil
		}
		return errors.New("want flood.inflight.n.Load() == 0")
	})
}

// TestHandshakeSlots: at most MaxHandshakesPerNode dials toward one node
// run at once; a waiting dial gives up with its context, and slots of
// other nodes are independent.
func TestHandshakeSlots(t *testing.T) {
	a := newMemNet(16).node("hs-a")
	ctx := context.Background()
	var releases []func()
	for range MaxHandshakesPerNode {
		rel, err := acquireHandshake(ctx, a, "far")
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, rel)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := acquireHandshake(short, a, "far"); err == nil {
		t.Fatal("a dial over the bound got a slot")
	}
	other, err := acquireHandshake(ctx, a, "other")
	if err != nil {
		t.Fatalf("another node's slots are shared: %v", err)
	}
	other()
	releases[0]()
	rel, err := acquireHandshake(ctx, a, "far")
	if err != nil {
		t.Fatalf("a freed slot was not reused: %v", err)
	}
	rel()
	for _, r := range releases[1:] {
		r()
	}
	handshakes.Lock()
	n := len(handshakes.m)
	handshakes.Unlock()
	if n != 0 {
		t.Errorf("%d slot entries left after every dial ended", n)
	}
}
