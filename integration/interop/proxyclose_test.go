package interop

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

// halfCloseRound writes n random bytes to addr, half-closes, and reads
// until the connection ends. The read must end (EOF or reset) within the
// bound, and what came back must be a prefix of what was sent (data the far
// side sends after the first EOF may be lost, docs/protocol.md §11.2).
func halfCloseRound(t *testing.T, addr string, n int) (int, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := make([]byte, n)
	if _, err := rand.Read(want); err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, rerr := io.ReadAll(c)
	if err := <-werr; err != nil {
		t.Fatalf("write %d bytes and half-close: %v", n, err)
	}
	if errors.Is(rerr, os.ErrDeadlineExceeded) {
		t.Fatalf("connection through the proxies still open 20 s after the half-close (%d bytes back)", len(got))
	}
	if !bytes.HasPrefix(want, got) {
		t.Fatalf("%d bytes back are not a prefix of the %d sent", len(got), n)
	}
	return len(got), rerr
}

// TestBinaryProxyCloseSemantics checks docs/protocol.md §11.2: through
// tcp-server → tcp-client chains mixing upstream and our binary, a client
// that writes then half-closes sees the whole connection torn down without
// hangs; with the far address refused, our tcp-client closes its mesh leg so
// the client sees the end, while upstream's is only noted (it hangs).
func TestBinaryProxyCloseSemantics(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echoServer(t, echo)
	refused := fmt.Sprintf("127.0.0.1:%d", freeTCPPort(t)) // nothing listens there

	type ports struct{ echo, refused int }
	args := func(other string, p *ports) []string {
		p.echo, p.refused = freeTCPPort(t), freeTCPPort(t)
		return []string{
			"--tcp-client", "service=echo", "address=" + echo.Addr().String(),
			"--tcp-client", "service=refused", "address=" + refused,
			"--tcp-server", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(p.echo), "remotenode=" + other, "remoteservice=echo",
			"--tcp-server", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(p.refused), "remotenode=" + other, "remoteservice=refused",
		}
	}
	var meshPort int
	var upP, oP ports
	up1 := startListening(t, upBin, "up1", func() []string {
		meshPort = freeTCPPort(t)
		return append(args("obin", &upP), "--tcp-listener", "bindaddr=127.0.0.1", "port="+strconv.Itoa(meshPort))
	})
	obin := startListening(t, bin, "obin", func() []string {
		return append(args("up1", &oP), "--tcp-peer", fmt.Sprintf("address=127.0.0.1:%d", meshPort))
	})
	obin.waitRoute("up1", "up1")
	up1.waitRoute("obin", "obin")
	local := func(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

	for _, d := range []struct {
		name string
		p    *ports
	}{
		{"our-server-to-upstream-client", &oP},
		{"upstream-server-to-our-client", &upP},
	} {
		t.Run(d.name+"/half-close", func(t *testing.T) {
			for _, n := range []int{1, 100000} {
				back, err := halfCloseRound(t, local(d.p.echo), n)
				t.Logf("PASS wrote %d B and half-closed: connection ended (%v) after %d B back", n, err, back)
			}
		})
	}
	t.Run("our-client-refused", func(t *testing.T) {
		// upstream tcp-server → our tcp-client whose address refuses: ours
		// must end the mesh stream, so upstream closes the client's socket.
		back, err := halfCloseRound(t, local(upP.refused), 10)
		if back != 0 {
			t.Fatalf("%d bytes came back from a refused address", back)
		}
		t.Logf("PASS refused far address behind our tcp-client: the client sees the end (%v)", err)
	})
	t.Run("upstream-client-refused", func(t *testing.T) {
		// Upstream leaves its mesh stream open and silent (docs/protocol.md §11.2):
		// only noted.
		c, err := net.DialTimeout("tcp", local(oP.refused), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte("x"))
		_, err = io.ReadAll(c)
		t.Logf("NOTE refused far address behind upstream's tcp-client, seen through our tcp-server: %v", err)
	})
}
