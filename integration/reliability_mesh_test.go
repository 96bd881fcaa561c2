package integration

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// Reliability of the mesh and of remote work: stop times, route recovery
// after a restart, and a split node whose worker is down.

// stopTimed sends SIGTERM and returns how long the process took to exit;
// a non-zero exit or no exit within stopTimeout fails the test.
func stopTimed(t *testing.T, n *Node) time.Duration {
	t.Helper()
	n.mu.Lock()
	proc := n.proc
	n.stopped = true
	n.mu.Unlock()
	if proc == nil {
		t.Fatalf("node %s is not running", n.ID)
	}
	start := time.Now()
	err := proc.Stop(stopTimeout)
	took := time.Since(start)
	if errors.Is(err, testkit.ErrStopTimeout) {
		t.Fatalf("node %s did not exit within %v after SIGTERM", n.ID, stopTimeout)
	}
	if err != nil {
		t.Errorf("node %s did not exit cleanly after SIGTERM: %v", n.ID, err)
	}
	return took
}

// fastStop is the bound on a SIGTERM'd process's exit.
const fastStop = 1500 * time.Millisecond

// workRemoteRoundTrip submits a cat unit from sock's node to target and
// waits for its results.
func workRemoteRoundTrip(t *testing.T, sock, from, target string) {
	t.Helper()
	id, _ := workSubmit(t, sock, from, map[string]string{"node": target, "worktype": "cat"}, strings.NewReader("round trip"))
	workWaitState(t, sock, from, id, workSucceeded)
	if got, n := workResults(t, sock, from, id); n != 10 || got != workHex("round trip") {
		t.Fatalf("results of remote unit %s: %d bytes", id, n)
	}
}

// TestWorkStopAfterRemoteUnit: once an all-in-one node has followed a
// remote unit, SIGTERM still ends it at once (its worker's mesh streams
// used to keep the in-process gRPC server's graceful stop waiting).
func TestWorkStopAfterRemoteUnit(t *testing.T) {
	t.Parallel()
	a, b := NewNode(t, "sa1"), NewNode(t, "sb1")
	a.Start(workAllInOneSpec(workListener, workCatEntity))
	b.Start(workAllInOneSpec(workPeerOf(a), workCatEntity))
	a.WaitRoutes(map[string]string{"sb1": "sb1"})
	workWaitControl(t, a, "sb1")
	workRemoteRoundTrip(t, a.Socket, a.ID, "sb1")
	took := stopTimed(t, a)
	t.Logf("all-in-one submitter stopped %v after SIGTERM", took)
	if took > fastStop {
		t.Errorf("all-in-one node took %v to stop after following a remote unit, want < %v", took, fastStop)
	}
	took = stopTimed(t, b)
	t.Logf("all-in-one executor stopped %v after SIGTERM", took)
	if took > fastStop {
		t.Errorf("all-in-one executing node took %v to stop, want < %v", took, fastStop)
	}
}

// TestWorkSplitStopAfterRemoteUnit: the same for a split node: worker and
// router each stop at once after the worker followed a remote unit.
func TestWorkSplitStopAfterRemoteUnit(t *testing.T) {
	t.Parallel()
	s := workStartSplit(t, "ss")
	b := NewNode(t, "sb2")
	b.Start(workAllInOneSpec(s.tlsPeer(t, "sb2"), workCatEntity))
	s.router.WaitRoutes(map[string]string{"sb2": "sb2"})
	workWaitControl(t, s.router, "sb2")
	workRemoteRoundTrip(t, s.router.Socket, s.id, "sb2")
	// The router first, while the worker still holds its MeshService
	// streams; then the worker, and again in the other order.
	took := stopTimed(t, s.router)
	t.Logf("receptor-router stopped %v after SIGTERM (worker running)", took)
	if took > fastStop {
		t.Errorf("receptor-router took %v to stop with its worker running, want < %v", took, fastStop)
	}
	took = stopTimed(t, s.worker)
	t.Logf("receptor-worker stopped %v after SIGTERM (router stopped)", took)
	if took > fastStop {
		t.Errorf("receptor-worker took %v to stop without its router, want < %v", took, fastStop)
	}

	s.restartRouter()
	s.worker.Restart()
	s.waitWorker()
	workWaitControl(t, s.router, "sb2")
	workRemoteRoundTrip(t, s.router.Socket, s.id, "sb2")
	took = stopTimed(t, s.worker)
	t.Logf("receptor-worker stopped %v after SIGTERM (router running)", took)
	if took > fastStop {
		t.Errorf("receptor-worker took %v to stop after following a remote unit, want < %v", took, fastStop)
	}
	took = stopTimed(t, s.router)
	t.Logf("receptor-router stopped %v after SIGTERM (worker stopped)", took)
	if took > fastStop {
		t.Errorf("receptor-router took %v to stop, want < %v", took, fastStop)
	}
}

// TestMeshRestartRouteRecovery restarts the end c of a line a - b - c and
// measures how long a and c take to route to each other again. Each node
// used to wait for the far node's periodic routing update (10 s), and a
// dialing b for its 5 s redial.
func TestMeshRestartRouteRecovery(t *testing.T) {
	t.Parallel()
	const bound = 3 * time.Second
	listen := func(n *Node) string { return nodeYAML(n, nil, asYAML(tcpTransport.listener(n))) }
	for _, tc := range []struct {
		name string
		// start starts the line; c must be restartable on its own.
		start func(a, b, c *Node)
	}{
		{"b dials c", func(a, b, c *Node) {
			a.Start(Spec{Config: listen})
			c.Start(Spec{Config: listen})
			b.Start(Spec{Config: func(n *Node) string {
				return nodeYAML(n, nil, asYAML(tcpTransport.peer(a)), asYAML(tcpTransport.peer(c)))
			}})
		}},
		{"c dials b", func(a, b, c *Node) {
			a.Start(Spec{Config: listen})
			b.Start(Spec{Config: func(n *Node) string {
				return nodeYAML(n, nil, asYAML(tcpTransport.peer(a)), asYAML(tcpTransport.listener(n)))
			}})
			c.Start(Spec{Config: func(n *Node) string { return nodeYAML(n, nil, asYAML(tcpTransport.peer(b))) }})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, c := NewNode(t, "ra"), NewNode(t, "rb"), NewNode(t, "rc")
			tc.start(a, b, c)
			a.WaitRoutes(map[string]string{"rb": "rb", "rc": "rb"})
			c.WaitRoutes(map[string]string{"ra": "rb", "rb": "rb"})

			c.Kill()
			killed := time.Now()
			a.WaitStatus("route to rc gone", func(s Status) bool { _, ok := s.RoutingTable["rc"]; return !ok })
			c.Restart()
			restarted := time.Now()
			var aToC, cToA time.Duration
			ok := testkit.Poll(convergeTimeout, func() bool {
				if aToC == 0 {
					if s, _, err := a.status(); err == nil && s.RoutingTable["rc"] == "rb" {
						aToC = time.Since(restarted)
					}
				}
				if cToA == 0 {
					if s, _, err := c.status(); err == nil && s.RoutingTable["ra"] == "rb" {
						cToA = time.Since(restarted)
					}
				}
				return aToC != 0 && cToA != 0
			})
			t.Logf("after rc's restart (%v after the kill; the harness starts it in a later second): ra routes to rc in %v, rc to ra in %v",
				restarted.Sub(killed), aToC, cToA)
			if !ok {
				t.Fatalf("routes not back within %v (ra->rc %v, rc->ra %v)", convergeTimeout, aToC, cToA)
			}
			if aToC > bound || cToA > bound {
				t.Errorf("routes back after ra->rc %v, rc->ra %v; want both < %v", aToC, cToA, bound)
			}
		})
	}
}

// controlWorkTypes returns the work types in node's control service
// advertisement as seen by n, and whether n has that advertisement.
func controlWorkTypes(t *testing.T, n *Node, node string) ([]string, bool) {
	t.Helper()
	_, raw, err := n.status()
	if err != nil {
		return nil, false
	}
	var st struct {
		Advertisements []struct {
			NodeID, Service string
			WorkCommands    []struct{ WorkType string }
		}
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("status of %s: %v", n.ID, err)
	}
	for _, ad := range st.Advertisements {
		if ad.NodeID == node && ad.Service == "control" {
			var types []string
			for _, wc := range ad.WorkCommands {
				types = append(types, wc.WorkType)
			}
			return types, true
		}
	}
	return nil, false
}

// TestWorkSplitWorkerDownAdvert stops the worker of split node sw, peered
// with all-in-one node wb: sw withdraws its work types from its control
// advertisement, a submit from wb waits (retried in the background) instead
// of failing for good, and once the worker is back the types are advertised
// again and the unit runs.
func TestWorkSplitWorkerDownAdvert(t *testing.T) {
	t.Parallel()
	const bound = 5 * time.Second
	s := workStartSplit(t, "sw")
	b := NewNode(t, "wb")
	b.Start(workAllInOneSpec(s.tlsPeer(t, "wb"), workCatEntity))
	s.router.WaitRoutes(map[string]string{"wb": "wb"})
	workWaitControl(t, b, "sw")
	hasCat := func() bool {
		types, _ := controlWorkTypes(t, b, "sw")
		for _, wt := range types {
			if wt == "cat" {
				return true
			}
		}
		return false
	}
	catAdvertised := func() error {
		if !hasCat() {
			return errors.New("cat not among sw's advertised work types")
		}
		return nil
	}
	testkit.Eventually(t, convergeTimeout, "wb sees sw's work type cat", catAdvertised)

	s.worker.Stop()
	stopped := time.Now()
	withdrawn := testkit.Poll(bound, func() bool {
		types, ok := controlWorkTypes(t, b, "sw")
		return ok && len(types) == 0
	})
	t.Logf("work types withdrawn: %v after %v", withdrawn, time.Since(stopped))
	if !withdrawn {
		types, _ := controlWorkTypes(t, b, "sw")
		t.Errorf("wb still sees sw's work types %v %v after the worker stopped", types, bound)
	}

	// On sw itself: one clear, retryable error.
	got := workCommand(t, s.router.Socket, s.id, "work list")
	t.Logf("work list on sw without its worker: %q", got)
	if !strings.HasPrefix(got, "ERROR: work agent unavailable: ") || strings.Count(got, "unavailable") > 1 ||
		strings.Contains(got, "unreachable") {
		t.Errorf("work list without a worker: %q, want one \"ERROR: work agent unavailable: ...\"", got)
	}

	// From wb: the submit is retried in the background, not failed.
	id, final, err := workTrySubmit(b.Socket, b.ID, map[string]string{"node": "sw", "worktype": "cat"}, strings.NewReader("later"))
	t.Logf("remote submit while sw's worker is down: %q %v", final, err)
	if err != nil {
		t.Fatalf("remote submit while the worker is down: %v", err)
	}
	time.Sleep(time.Second)
	if st, _ := workStatus(t, b.Socket, b.ID, id); st.State == workFailed {
		t.Fatalf("remote unit failed for good while the worker was down: %+v", st)
	}

	s.worker.Restart()
	s.waitWorker()
	back := time.Now()
	testkit.Eventually(t, convergeTimeout, "wb sees sw's work types again", catAdvertised)
	t.Logf("work types re-advertised %v after the worker was back", time.Since(back))
	workWaitState(t, b.Socket, b.ID, id, workSucceeded)
	if got, n := workResults(t, b.Socket, b.ID, id); n != 5 || got != workHex("later") {
		t.Errorf("results after the worker came back: %d bytes", n)
	}
}
