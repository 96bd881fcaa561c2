package interop

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestRedialBackoff is spec §19 item 33 (§14.1): a tcp-peer whose dials keep
// failing (the TLS handshake is cut off by a listener that closes every
// connection at once) waits 5 s, 7.5 s, 11.25 s, 16.875 s between attempts.
// The intervals are logged for comparison between the implementations; the
// test only requires that they grow, never exact durations.
func TestRedialBackoff(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	for _, b := range []struct{ name, bin, id string }{{"upstream", upBin, "up1"}, {"ours", bin, "obin"}} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			cert, key := pki.Node(t, b.id)
			startProc(t, b.bin, b.id, "--tls-client", "name=cli", "cert="+cert, "key="+key, "rootcas="+pki.CACert(),
				"--tcp-peer", "address="+ln.Addr().String(), "tls=cli")
			const attempts = 5
			var at []time.Time
			_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(90 * time.Second))
			for len(at) < attempts {
				c, err := ln.Accept()
				if err != nil {
					t.Fatalf("after %d dials: %v", len(at), err)
				}
				at = append(at, time.Now())
				c.Close()
			}
			var gaps []string
			for i := 1; i < attempts; i++ {
				gap := at[i].Sub(at[i-1])
				gaps = append(gaps, gap.Round(100*time.Millisecond).String())
				if i > 1 && gap <= at[i-1].Sub(at[i-2]) {
					t.Fatalf("%s redial delays do not grow: %s", b.id, strings.Join(gaps, ", "))
				}
			}
			t.Logf("PASS %s redial delays after failed handshakes: %s (spec: 5s, 7.5s, 11.25s, 16.875s)", b.id, strings.Join(gaps, ", "))
		})
	}
}
