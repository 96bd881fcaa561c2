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
// connection at once) waits longer and longer between attempts. Upstream and
// our binary are observed at the same time; the intervals are logged for
// comparison. Upstream waits 5 s, 7.5 s, 11.25 s, ... without jitter, so each
// interval must be longer than the one before. Ours starts with a quick phase
// (100 ms growing by 1.5×, each wait jittered by ±50 %, services/mesh/backends
// redialSchedule) before the same schedule, so two neighbouring intervals may
// come in either order: its seventh interval (at least 570 ms) must be longer
// than its first (at most 150 ms), which no jitter can turn around.
func TestRedialBackoff(t *testing.T) {
	upBin := requireUpstream(t)
	bin := ourBin(t)
	t.Parallel()
	type result struct {
		at  []time.Time
		err error
	}
	nodes := []struct {
		bin, id  string
		attempts int
		jittered bool
	}{{upBin, "up1", 4, false}, {bin, "obin", 8, true}}
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
			at, err := dialTimes(ln, b.attempts)
			results[i] = result{at, err}
		}()
	}
	wg.Wait()
	for i, b := range nodes {
		at, err := results[i].at, results[i].err
		if err != nil {
			t.Fatalf("%s: %v", b.id, err)
		}
		var gaps []time.Duration
		var shown []string
		for j := 1; j < len(at); j++ {
			gaps = append(gaps, at[j].Sub(at[j-1]))
			shown = append(shown, gaps[j-1].Round(10*time.Millisecond).String())
		}
		grows := gaps[len(gaps)-1] > gaps[0]
		for j := 1; j < len(gaps) && !b.jittered; j++ {
			grows = grows && gaps[j] > gaps[j-1]
		}
		if !grows {
			t.Fatalf("%s redial delays do not grow: %s", b.id, strings.Join(shown, ", "))
		}
		t.Logf("PASS %s redial delays after failed handshakes: %s (upstream's spec: 5s, 7.5s, 11.25s)", b.id, strings.Join(shown, ", "))
	}
}
