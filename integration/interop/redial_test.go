package interop

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// dialTimes accepts n connections on ln, closing each at once, and returns
// when they arrived.
func dialTimes(ln net.Listener, n int) ([]time.Time, error) {
	var at []time.Time
	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(90 * time.Second))
	for len(at) < n {
		c, err := ln.Accept()
		if err != nil {
			return at, fmt.Errorf("after %d dials: %w", len(at), err)
		}
		at = append(at, time.Now())
		c.Close()
	}
	return at, nil
}

// TestRedialBackoff checks docs/protocol.md §3.1: a tcp-peer whose dials keep
// failing (the TLS handshake is cut off by a listener that closes every
// connection at once) waits 5 s, 7.5 s, 11.25 s, ... between attempts.
// Upstream and our binary are observed at the same time; the intervals are
// logged for comparison and the test only requires that they grow, never
// exact durations.
func TestRedialBackoff(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	const attempts = 4
	type result struct {
		at  []time.Time
		err error
	}
	nodes := []struct{ bin, id string }{{upBin, "up1"}, {bin, "obin"}}
	results := make([]result, len(nodes))
	var wg sync.WaitGroup
	for i, b := range nodes {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		cert, key := pki.Node(t, b.id)
		startProc(t, b.bin, b.id, "--tls-client", "name=cli", "cert="+cert, "key="+key, "rootcas="+pki.CACert(),
			"--tcp-peer", "address="+ln.Addr().String(), "tls=cli")
		wg.Add(1)
		go func() {
			defer wg.Done()
			at, err := dialTimes(ln, attempts)
			results[i] = result{at, err}
		}()
	}
	wg.Wait()
	for i, b := range nodes {
		at, err := results[i].at, results[i].err
		if err != nil {
			t.Fatalf("%s: %v", b.id, err)
		}
		var gaps []string
		for j := 1; j < len(at); j++ {
			gap := at[j].Sub(at[j-1])
			gaps = append(gaps, gap.Round(100*time.Millisecond).String())
			if j > 1 && gap <= at[j-1].Sub(at[j-2]) {
				t.Fatalf("%s redial delays do not grow: %s", b.id, strings.Join(gaps, ", "))
			}
		}
		t.Logf("PASS %s redial delays after failed handshakes: %s (spec: 5s, 7.5s, 11.25s)", b.id, strings.Join(gaps, ", "))
	}
}
