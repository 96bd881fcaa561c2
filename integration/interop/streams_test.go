package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/mesh/wire"
)

const bulkSize = 1 << 20

// echoServer echoes every connection of l until it is closed; it owns its
// goroutines and stops them in t.Cleanup.
func echoServer(t *testing.T, l net.Listener) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// echoRoundTrip writes n random bytes to c while reading them back and
// checks that the echo is byte-exact.
func echoRoundTrip(t *testing.T, c net.Conn, n int) {
	t.Helper()
	want := make([]byte, n)
	if _, err := rand.Read(want); err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		werr <- err
	}()
	got := make([]byte, n)
	_, rerr := io.ReadFull(c, got)
	if err := <-werr; err != nil {
		t.Fatalf("writing %d bytes: %v", n, err)
	}
	if rerr != nil {
		t.Fatalf("reading %d echoed bytes: %v", n, rerr)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < n && got[i] == want[i] {
			i++
		}
		t.Fatalf("echo of %d bytes differs from byte %d", n, i)
	}
}

// TestStreams checks docs/protocol.md §10: QUIC
// streams between ours and upstream in both directions.
func TestStreams(t *testing.T) {
	bin := requireUpstream(t)
	t.Parallel()

	// A local TCP echo server behind upstream's tcp-client service "echo".
	tcpEcho, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, tcpEcho)

	var port int
	up1 := startListening(t, bin, "up1", func() []string {
		port = freeTCPPort(t)
		return []string{"--tcp-listener", "bindaddr=127.0.0.1", fmt.Sprintf("port=%d", port),
			"--tcp-client", "service=echo", "address=" + tcpEcho.Addr().String()}
	})
	relay := newTCPRelay(t, fmt.Sprintf("127.0.0.1:%d", port))
	ours := newOurNode(t, "ours")
	ours.DialTCP(relay.Addr(), nil, mesh.BackendOptions{})
	ours.waitRoute("up1", "up1")
	up1.waitRoute("ours", "ours")

	// Our echo stream service, for upstream's "connect".
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := stream.Listen(ctx, ours, "oecho", stream.ListenOptions{Logger: ours.log})
	if err != nil {
		t.Fatalf("stream.Listen oecho: %v", err)
	}
	echoServer(t, ln)

	t.Run("ours-dials-upstream-control", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := stream.Dial(ctx, ours, "up1", "control", stream.DialOptions{Logger: ours.log})
		if err != nil {
			t.Fatalf("stream.Dial up1:control: %v", err)
		}
		defer c.Close()
		cc, err := client.NewConn(ctx, c)
		if err != nil {
			t.Fatalf("control greeting over the mesh: %v", err)
		}
		if cc.NodeID() != "up1" {
			t.Fatalf("greeting names %q, want up1", cc.NodeID())
		}
		raw, err := cc.Command(ctx, "status")
		if err != nil {
			t.Fatalf("status over the mesh: %v", err)
		}
		var s ctlStatus
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("status reply %s: %v", raw, err)
		}
		if _, ok := s.ConnCost("ours"); s.NodeID != "up1" || !ok {
			t.Fatalf("status over the mesh: %s", raw)
		}
		t.Log("PASS greeting 'Receptor Control, node up1' and a status reply over our stream")
	})

	t.Run("upstream-connects-to-ours", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cc, err := up1.Dial(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		c, err := cc.Connect(ctx, "ours", "oecho", "")
		if err != nil {
			t.Fatalf("upstream connect ours oecho: %v", err)
		}
		echoRoundTrip(t, c, 5)
		echoRoundTrip(t, c, bulkSize)
		t.Log("PASS upstream's connect reaches our echo service; 1 MiB byte-exact")
	})

	t.Run("ours-dials-upstream-tcp-client", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := stream.Dial(ctx, ours, "up1", "echo", stream.DialOptions{Logger: ours.log})
		if err != nil {
			t.Fatalf("stream.Dial up1:echo: %v", err)
		}
		defer c.Close()
		echoRoundTrip(t, c, 1)
		echoRoundTrip(t, c, bulkSize)
		t.Log("PASS our stream to upstream's tcp-client echo; 1 MiB byte-exact")
	})

	t.Run("dial-unknown-service", func(t *testing.T) {
		// The bound is shorter than the 15 s QUIC handshake timeout, so only
		// upstream's "service unknown" can end the dial with that error.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := stream.Dial(ctx, ours, "up1", "nosvc", stream.DialOptions{Logger: ours.log})
		if err == nil {
			c.Close()
			t.Fatal("dial to up1:nosvc succeeded")
		}
		if !errors.Is(err, stream.ErrServiceUnknown) {
			t.Fatalf("dial to up1:nosvc: %v; want %v", err, stream.ErrServiceUnknown)
		}
		t.Logf("PASS dial to an unknown upstream service fails fast: %v", err)
	})

	t.Run("datagram-unknown-service", func(t *testing.T) {
		pc, err := ours.ListenPacket("")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if _, err := pc.WriteTo([]byte("x"), mesh.Addr{Node: "up1", Service: "nosvc"}); err != nil {
			t.Fatalf("send to up1:nosvc: %v", err)
		}
		select {
		case u := <-pc.Unreachable():
			want := mesh.Unreachable{ReportedBy: "up1", FromNode: "ours", ToNode: "up1",
				FromService: pc.LocalAddr().(mesh.Addr).Service, ToService: "nosvc", Problem: mesh.ProblemServiceUnknown}
			if u != want {
				t.Fatalf("unreachable: got %+v, want %+v", u, want)
			}
			t.Logf("PASS unreachable from upstream: %+v", u)
		case <-time.After(15 * time.Second):
			t.Fatal("no unreachable notification from up1 within 15 s")
		}
	})

	// After all the traffic above, check what crossed the ours-up1 session
	// (docs/protocol.md §4.1, §4.2, §10.1): no empty frames, originators send HopsToLive
	// 29, and our QUIC datagrams are at most stream.MaxDatagram (1400) bytes.
	t.Run("wire", func(t *testing.T) {
		frames := relay.Frames()
		counts := map[bool]int{}
		maxPayload := map[bool]int{}
		for i, f := range frames {
			who := "up1"
			if f.FromDialer {
				who = "ours"
			}
			if f.Len == 0 {
				t.Fatalf("frame #%d from %s is empty", i, who)
			}
			if f.Data[0] != 0 {
				continue
			}
			if f.Len < 36 {
				t.Fatalf("data frame #%d from %s shorter than its header: %x", i, who, f.Data)
			}
			if h, _, err := wire.DecodeData(f.Data); err == nil && f.FromDialer && mesh.IsLinkProbe(h) {
				continue // our RTT probe of the link: HopsToLive 1 by design (docs/protocol.md M22)
			}
			if f.Data[1] != 29 {
				t.Fatalf("data frame #%d from %s has HopsToLive %d, want 29 (originator decrements 30)", i, who, f.Data[1])
			}
			counts[f.FromDialer]++
			if p := f.Len - 36; p > maxPayload[f.FromDialer] {
				maxPayload[f.FromDialer] = p
			}
		}
		if counts[true] == 0 || counts[false] == 0 {
			t.Fatalf("data frames seen: ours %d, up1 %d", counts[true], counts[false])
		}
		if maxPayload[true] > stream.MaxDatagram {
			t.Fatalf("our largest data payload is %d bytes, over %d", maxPayload[true], stream.MaxDatagram)
		}
		t.Logf("PASS wire: %d data frames from ours (largest payload %d), %d from up1 (largest %d); all HopsToLive 29",
			counts[true], maxPayload[true], counts[false], maxPayload[false])
	})
}
