package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// The load test: on the line a - b - c (every node serving pprof), many
// concurrent tiny units, half local on a and half remote from a to c, and
// many concurrent TCP streams through the two hops (a's tcp-server to c's
// tcp-client to an echo server of the test), all of which must complete
// correctly; then, once the load has settled, no node may have more
// goroutines or file descriptors than before it (within a small slack for
// pools and lazily started helpers).

// loadSize is the number of units and of streams: 1000 with FAULTS=full,
// else 100.
func loadSize() int {
	if full() {
		return 1000
	}
	return 100
}

// echoServer echoes TCP connections until closed; it owns its goroutines.
type echoServer struct {
	ln net.Listener
	wg sync.WaitGroup
	mu sync.Mutex
	cs map[net.Conn]struct{}
}

func startEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echoServer{ln: ln, cs: map[net.Conn]struct{}{}}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.cs[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
				e.mu.Lock()
				delete(e.cs, c)
				e.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		e.mu.Lock()
		for c := range e.cs {
			_ = c.Close()
		}
		e.mu.Unlock()
		e.wg.Wait()
	})
	return e
}

// usage is one process's resources.
type usage struct {
	goroutines, fds, rssKiB int
}

func (u usage) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %d MiB RSS", u.goroutines, u.fds, u.rssKiB>>10)
}

// measure reads p's goroutine count from its pprof endpoint and its fds
// and RSS from /proc.
func measure(p *proc) (usage, error) {
	var u usage
	var err error
	if u.fds, err = fdCount(p.pid()); err != nil {
		return u, err
	}
	if u.rssKiB, err = rssKiB(p.pid()); err != nil {
		return u, err
	}
	hc := &http.Client{Timeout: commandTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + p.addr("pprof") + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return u, err
	}
	defer resp.Body.Close()
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return u, err
	}
	if _, err := fmt.Sscanf(first, "goroutine profile: total %d", &u.goroutines); err != nil {
		return u, fmt.Errorf("pprof goroutine header %q: %w", first, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return u, nil
}

// goroutineDump is p's goroutine profile, grouped by stack (debug=1).
func goroutineDump(p *proc) string {
	hc := &http.Client{Timeout: commandTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://" + p.addr("pprof") + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return string(b)
}

func measureAll(t *testing.T, ps []*proc) []usage {
	t.Helper()
	us := make([]usage, len(ps))
	for i, p := range ps {
		u, err := measure(p)
		if err != nil {
			t.Fatalf("measuring %s: %v", p.name, err)
		}
		us[i] = u
	}
	return us
}

// TestLoad runs loadSize units and loadSize streams concurrently and
// checks for goroutine and fd growth in the node processes afterwards.
func TestLoad(t *testing.T) {
	t.Parallel()
	n := loadSize()
	echo := startEcho(t)
	l := startLine(t, lineOptions{
		env: true,
		a: func(p *proc) []string {
			return []string{entity("tcp-server", "port", fmt.Sprint(p.port("proxy")), "bindaddr", "127.0.0.1",
				"remotenode", "c", "remoteservice", "echo")}
		},
		c: func(*proc) []string {
			return []string{entity("tcp-client", "service", "echo", "address", echo.ln.Addr().String())}
		},
	})
	ps := []*proc{l.a, l.b, l.c}
	proxy := l.a.addr("proxy")

	// Warm up, then take the baseline: 40 units at once fill a's pool of
	// shared status sessions to c (at most 8, services/work/remote_pool.go),
	// which stay open for later units and are not growth.
	if errs := runUnits(l, 40); len(errs) > 0 {
		t.Fatalf("warm-up units: %v", errs[0])
	}
	// c's echo service advertisement must reach a first.
	testkit.Eventually(t, convergeTimeout, "a stream through a -> c", func() error {
		return errors.Join(runStreams(proxy, 1)...)
	})
	if errs := runStreams(proxy, 10); len(errs) > 0 {
		t.Fatalf("warm-up streams: %v", errs[0])
	}
	time.Sleep(3 * time.Second)
	base := measureAll(t, ps)

	start := time.Now()
	errs := runUnits(l, n)
	unitsTook := time.Since(start)
	for i, err := range errs {
		if i == 5 {
			break
		}
		t.Errorf("unit: %v", err)
	}
	t.Logf("LOAD units: %d concurrent (%d local on a, %d remote a->c), %d failed, %v", n, (n+1)/2, n/2, len(errs), unitsTook.Round(time.Millisecond))
	afterUnits := measureAll(t, ps)

	start = time.Now()
	errs = runStreams(proxy, n)
	streamsTook := time.Since(start)
	for i, err := range errs {
		if i == 5 {
			break
		}
		t.Errorf("stream: %v", err)
	}
	t.Logf("LOAD streams: %d concurrent through a -> b -> c, %d failed, %v", n, len(errs), streamsTook.Round(time.Millisecond))
	afterStreams := measureAll(t, ps)

	// Settled: back to the baseline, within slack.
	var settled []usage
	ok := testkit.Poll(60*time.Second, func() bool {
		settled = measureAll(t, ps)
		for i := range ps {
			if settled[i].goroutines > base[i].goroutines+goroutineSlack || settled[i].fds > base[i].fds+fdSlack {
				return false
			}
		}
		return true
	})
	for i, p := range ps {
		t.Logf("LOAD %s: baseline %v; after units %v; after streams %v; settled %v",
			p.name, base[i], afterUnits[i], afterStreams[i], settled[i])
	}
	if !ok {
		t.Errorf("goroutines or fds did not return to the baseline (+%d goroutines, +%d fds) within 60 s", goroutineSlack, fdSlack)
		for i, p := range ps {
			if settled[i].goroutines > base[i].goroutines+goroutineSlack {
				t.Logf("goroutines of %s:\n%s", p.name, goroutineDump(p))
			}
		}
	}
}

// Allowed growth after the load: a few pooled connections and helpers.
const (
	goroutineSlack = 20
	fdSlack        = 10
)

// runUnits runs n tiny cat units concurrently from a: even ones local on
// a, odd ones remote on c. Each is submitted, its results read (the stream
// ends when the unit completes) and compared, and it is released.
func runUnits(l *line, n int) []error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return burst(n, func(i int) error {
		node := "a"
		if i%2 == 1 {
			node = "c"
		}
		if err := oneUnit(ctx, l.a, node, i); err != nil {
			return fmt.Errorf("unit %d on %s: %w", i, node, err)
		}
		return nil
	})
}

// burst runs do(0..n-1) in n goroutines released at the same moment and
// returns the errors they reported.
func burst(n int, do func(i int) error) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-gate
			if err := do(i); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	close(gate)
	wg.Wait()
	return errs
}

func oneUnit(ctx context.Context, a *proc, node string, i int) error {
	in := fmt.Sprintf("unit %d for %s\n", i, node)
	id, _, err := submit(ctx, a, map[string]string{"node": node, "worktype": "cat"}, strings.NewReader(in))
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	r := newResults(a, id, int64(len(in)))
	sum, err := r.fetch(ctx)
	if err != nil {
		return fmt.Errorf("results of %s: %w", id, err)
	}
	if want := digest(strings.NewReader(in)); sum != want {
		return fmt.Errorf("results of %s differ", id)
	}
	var st unitStatus
	if !testkit.Poll(unitTimeout, func() bool {
		st, err = unitState(a, id)
		return err == nil && st.State == stateSucceeded
	}) {
		return fmt.Errorf("unit %s: %+v %v, want Succeeded", id, st, err)
	}
	raw, err := a.command("work release " + id)
	if err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	var rel map[string]string
	if err := json.Unmarshal(raw, &rel); err != nil || (rel["released"] != id && rel["release pending"] != id) {
		return fmt.Errorf("release %s: %s", id, raw)
	}
	// A remote unit is deleted once c has released it too.
	if !testkit.Poll(unitTimeout, func() bool { _, err = unitState(a, id); return errors.Is(err, errAbsent) }) {
		return fmt.Errorf("unit %s still known after release: %v", id, err)
	}
	return nil
}

// runStreams opens n TCP connections at once to addr (a's tcp-server),
// each sending 4 KiB and reading them back through the mesh.
func runStreams(addr string, n int) []error {
	return burst(n, func(i int) error {
		if err := oneStream(addr, i); err != nil {
			return fmt.Errorf("stream %d: %w", i, err)
		}
		return nil
	})
}

func oneStream(addr string, i int) error {
	c, err := net.DialTimeout("tcp", addr, commandTimeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Minute))
	msg := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(uint64(i), 11))
	for j := range msg {
		msg[j] = byte(rng.UintN(256))
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(msg)
		errc <- err
	}()
	got := make([]byte, len(msg))
	_, rerr := io.ReadFull(c, got)
	if werr := <-errc; werr != nil {
		return fmt.Errorf("write: %w", werr)
	}
	if rerr != nil {
		return fmt.Errorf("read: %w", rerr)
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs")
	}
	return nil
}
