package interop

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// headRecorder is a TCP proxy that keeps the first headMax bytes the dialer
// sent on each connection (an HTTP upgrade request head) and otherwise
// copies bytes unchanged.
type headRecorder struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	heads  []string
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

const headMax = 4096

func newHeadRecorder(t *testing.T, target string) *headRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &headRecorder{ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		r.mu.Lock()
		r.closed = true
		for _, c := range r.conns {
			c.Close()
		}
		r.mu.Unlock()
		ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *headRecorder) Addr() string { return r.ln.Addr().String() }

// Heads returns the request heads seen so far.
func (r *headRecorder) Heads() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.heads...)
}

func (r *headRecorder) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	r.conns = append(r.conns, cs...)
	return true
}

func (r *headRecorder) accept() {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.DialTimeout("tcp", r.target, 5*time.Second)
		if err != nil {
			in.Close()
			continue
		}
		if !r.track(in, out) {
			return
		}
		r.wg.Add(2)
		go func() {
			defer r.wg.Done()
			defer out.Close()
			r.copyHead(out, in)
		}()
		go func() {
			defer r.wg.Done()
			defer in.Close()
			_, _ = io.Copy(in, out)
		}()
	}
}

// copyHead forwards src to dst, recording the bytes up to the end of the
// HTTP head (bounded by headMax).
func (r *headRecorder) copyHead(dst, src net.Conn) {
	var head bytes.Buffer
	buf := make([]byte, 32<<10)
	recording := true
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if recording {
				head.Write(buf[:min(n, headMax-head.Len())])
				if i := bytes.Index(head.Bytes(), []byte("\r\n\r\n")); i >= 0 || head.Len() >= headMax {
					recording = false
					if i >= 0 {
						head.Truncate(i)
					}
					r.mu.Lock()
					r.heads = append(r.heads, head.String())
					r.mu.Unlock()
				}
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestWebsocketExtraHeader checks docs/protocol.md §3.4: a ws-peer's
// extraheader is in the upgrade request the listener receives and the
// session establishes, with our binary dialing upstream and the reverse.
func TestWebsocketExtraHeader(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	const header = "X-Interop-Token: s3cret value"
	dirs := []struct {
		name                     string
		listenBin, listenID      string
		dialBin, dialID, dialWho string
	}{
		{"ours-dials-upstream", upBin, "up1", bin, "obin", "our"},
		{"upstream-dials-ours", bin, "obin", upBin, "up1", "upstream's"},
	}
	for _, d := range dirs {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			var port int
			ln := startListening(t, d.listenBin, d.listenID, func() []string {
				port = freeTCPPort(t)
				return []string{"--ws-listener", "bindaddr=127.0.0.1", "port=" + strconv.Itoa(port), "path=/mesh"}
			})
			rec := newHeadRecorder(t, fmt.Sprintf("127.0.0.1:%d", port))
			dn := startProc(t, d.dialBin, d.dialID, "--ws-peer", "address=ws://"+rec.Addr()+"/mesh",
				"extraheader=X-Interop-Token:s3cret value")
			dn.waitConnected(d.listenID, 1)
			ln.waitConnected(d.dialID, 1)
			heads := rec.Heads()
			if len(heads) == 0 {
				t.Fatal("no upgrade request recorded")
			}
			found := false
			for _, line := range strings.Split(heads[0], "\r\n") {
				name, value, ok := strings.Cut(line, ":")
				if ok && strings.EqualFold(name, "X-Interop-Token") && strings.TrimSpace(value) == "s3cret value" {
					found = true
				}
			}
			if !found {
				t.Fatalf("upgrade request lacks %q:\n%s", header, heads[0])
			}
			t.Logf("PASS %s extraheader reaches the listener and the session establishes; request head:\n%s", d.dialWho, heads[0])
		})
	}
}
