package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// Work units on all-in-one receptor processes: submit, results, cancel,
// release, restarts and load, through the control socket byte for byte.

const workAllInOneBin = "receptor"

// workAllInOneSpec runs receptor with the harness's base entities (node,
// debug logging, control socket) plus items.
func workAllInOneSpec(items ...func(n *Node) string) Spec {
	return Spec{Bin: workAllInOneBin, Config: func(n *Node) string {
		parts := make([]string, len(items))
		for i, it := range items {
			parts[i] = it(n)
		}
		return nodeYAML(n, nil, parts...)
	}}
}

func workStatic(s string) func(*Node) string { return func(*Node) string { return s } }

func workListener(n *Node) string {
	name, kv := tcpTransport.listener(n)
	return asYAML(name, kv)
}

func workPeerOf(peer *Node) func(*Node) string {
	return func(*Node) string {
		name, kv := tcpTransport.peer(peer)
		return asYAML(name, kv)
	}
}

// workDatadir is the datadir nodeYAML configures.
func workDatadir(n *Node) string { return filepath.Join(n.Dir, "data") }

var workCatEntity = workStatic(workCommandEntity("cat", "cat", "", false))

// workLine starts a 3-node line a - b - c of all-in-one nodes over tcp with
// the given extra entities on every node, and waits until a and c route
// to each other through b.
func workLine(t *testing.T, items ...func(*Node) string) (a, b, c *Node) {
	t.Helper()
	a, b, c = NewNode(t, "a"), NewNode(t, "b"), NewNode(t, "c")
	a.Start(workAllInOneSpec(append([]func(*Node) string{workListener}, items...)...))
	b.Start(workAllInOneSpec(append([]func(*Node) string{workListener, workPeerOf(a)}, items...)...))
	c.Start(workAllInOneSpec(append([]func(*Node) string{workPeerOf(b)}, items...)...))
	a.WaitRoutes(map[string]string{"b": "b", "c": "b"})
	c.WaitRoutes(map[string]string{"a": "b", "b": "b"})
	workWaitControl(t, a, "c")
	return a, b, c
}

// TestWorkLocalAndRemote submits the same payload locally on a and on c
// (two hops away) from a; both results, and c's own copy, are
// byte-identical to the payload.
func TestWorkLocalAndRemote(t *testing.T) {
	t.Parallel()
	a, _, c := workLine(t, workCatEntity, workStatic(workCommandEntity("sleep", "sleep", "", true)))
	const size = 1 << 20
	want, _ := workDigest(t, workPayload(1, size))

	local, final := workSubmit(t, a.Socket, a.ID, map[string]string{"node": "a", "worktype": "cat"}, workPayload(1, size))
	if !strings.Contains(final, `"Job Started"`) {
		t.Errorf("local submit: %q", final)
	}
	remote, final := workSubmit(t, a.Socket, a.ID, map[string]string{"node": "c", "worktype": "cat"}, workPayload(1, size))
	if !strings.Contains(final, `"Job Started"`) {
		t.Errorf("remote submit: %q", final)
	}
	for _, id := range []string{local, remote} {
		st := workWaitState(t, a.Socket, a.ID, id, workSucceeded)
		if st.StdoutSize != size {
			t.Errorf("unit %s: StdoutSize %d, want %d", id, st.StdoutSize, size)
		}
		if got, n := workResults(t, a.Socket, a.ID, id); got != want || n != size {
			t.Errorf("results of %s on a: %d bytes %s, want %d bytes %s", id, n, got, size, want)
		}
	}
	st, _ := workStatus(t, a.Socket, a.ID, remote)
	if st.WorkType != "remote" {
		t.Errorf("remote unit's WorkType = %q, want remote", st.WorkType)
	}
	var extra workRemoteExtra
	if err := json.Unmarshal(st.ExtraData, &extra); err != nil || extra.RemoteNode != "c" || !extra.RemoteStarted || extra.RemoteUnitID == "" {
		t.Fatalf("remote unit's ExtraData %s: %+v %v", st.ExtraData, extra, err)
	}
	cst := workWaitState(t, c.Socket, c.ID, extra.RemoteUnitID, workSucceeded)
	if cst.WorkType != "cat" {
		t.Errorf("unit on c: WorkType %q, want cat", cst.WorkType)
	}
	if got, n := workResults(t, c.Socket, c.ID, extra.RemoteUnitID); got != want || n != size {
		t.Errorf("results of %s on c: %d bytes %s, want %d bytes %s", extra.RemoteUnitID, n, got, size, want)
	}

	// Release on a releases on c too.
	if got, want := workCommand(t, a.Socket, a.ID, "work release "+remote), fmt.Sprintf(`{"released":%q}`, remote); got != want {
		t.Fatalf("remote release: got %q, want %q", got, want)
	}
	testkit.Eventually(t, workUnitTimeout, "remote unit released on a and c", func() error {
		_, onA := workList(t, a.Socket, a.ID)[remote]
		_, onC := workList(t, c.Socket, c.ID)[extra.RemoteUnitID]
		if !onA && !onC {
			return nil
		}
		return errors.New("want !onA && !onC")
	})

	// Cancel on a cancels the running unit on c; a copies the final state.
	sleeper, _ := workSubmit(t, a.Socket, a.ID, map[string]string{"node": "c", "worktype": "sleep", "params": "1000"}, nil)
	workWaitState(t, a.Socket, a.ID, sleeper, workRunning)
	if got, want := workCommand(t, a.Socket, a.ID, "work cancel "+sleeper), fmt.Sprintf(`{"cancelled":%q}`, sleeper); got != want {
		t.Fatalf("remote cancel: got %q, want %q", got, want)
	}
	st = workWaitState(t, a.Socket, a.ID, sleeper, workCanceled)
	if err := json.Unmarshal(st.ExtraData, &extra); err != nil {
		t.Fatalf("ExtraData %s: %v", st.ExtraData, err)
	}
	workWaitState(t, c.Socket, c.ID, extra.RemoteUnitID, workCanceled)
}

// TestWorkStdinSizes sends 0 B, 1 MiB and 100 MiB through a cat unit.
func TestWorkStdinSizes(t *testing.T) {
	t.Parallel()
	n := NewNode(t, "sizes")
	n.Start(workAllInOneSpec(workStatic(entity("local-only")), workCatEntity))
	for i, size := range []int64{0, 1 << 20, 100 << 20} {
		t.Run(strconv.FormatInt(size, 10), func(t *testing.T) {
			seed := uint64(100 + i)
			want, _ := workDigest(t, workPayload(seed, size))
			id, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": "localhost", "worktype": "cat"}, workPayload(seed, size))
			st := workWaitState(t, n.Socket, n.ID, id, workSucceeded)
			if st.StdoutSize != size || st.Detail != "exit status 0" {
				t.Errorf("status: StdoutSize %d, Detail %q; want %d, exit status 0", st.StdoutSize, st.Detail, size)
			}
			stdin := filepath.Join(workUnitDir(workDatadir(n), n.ID, id), "stdin")
			if got := workFileSize(stdin); got != size {
				t.Errorf("stdin file %s: %d bytes, want %d", stdin, got, size)
			}
			if got, gotN := workResults(t, n.Socket, n.ID, id); got != want || gotN != size {
				t.Errorf("results: %d bytes %s, want %d bytes %s", gotN, got, size, want)
			}
		})
	}
}

// TestWorkCancelKillsChildren cancels a unit whose command started a
// grandchild; the grandchild must be gone and the unit Canceled.
func TestWorkCancelKillsChildren(t *testing.T) {
	t.Parallel()
	n := NewNode(t, "cancel")
	script := workTestdata(t, "spawn-child.sh")
	pidfile := filepath.Join(n.Dir, "child.pid")
	n.Start(workAllInOneSpec(workStatic(entity("local-only")),
		workStatic(workCommandEntity("spawn", "bash", script+" "+pidfile, false))))
	id, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": "cancel", "worktype": "spawn"}, nil)
	workWaitState(t, n.Socket, n.ID, id, workRunning)
	var pid int
	testkit.Eventually(t, workUnitTimeout, "grandchild pid file", func() error {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return err
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		if err == nil && pid > 1 {
			return nil
		}
		return errors.New("want err == nil && pid > 1")
	})
	if workProcessGone(pid) {
		t.Fatalf("grandchild %d is not running before cancel", pid)
	}
	if got, want := workCommand(t, n.Socket, n.ID, "work cancel "+id), fmt.Sprintf(`{"cancelled":%q}`, id); got != want {
		t.Fatalf("cancel: got %q, want %q", got, want)
	}
	st := workWaitState(t, n.Socket, n.ID, id, workCanceled)
	if st.StateName != "Canceled" || st.Detail != "Canceled" {
		t.Errorf("after cancel: %+v, want StateName and Detail Canceled", st)
	}
	testkit.Eventually(t, workUnitTimeout, fmt.Sprintf("grandchild %d gone after cancel", pid), func() error {
		if workProcessGone(pid) {
			return nil
		}
		return errors.New("want workProcessGone(pid)")
	})
	if !workProcessGone(pid) {
		t.Errorf("grandchild %d still runs", pid)
	}
}

// TestWorkRelease releases a finished unit: it leaves the list, its
// directory is deleted, and every later command names it unknown.
func TestWorkRelease(t *testing.T) {
	t.Parallel()
	n := NewNode(t, "release")
	n.Start(workAllInOneSpec(workStatic(entity("local-only")), workCatEntity))
	keep, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": "release", "worktype": "cat"}, strings.NewReader("keep"))
	gone, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": "release", "worktype": "cat"}, strings.NewReader("gone"))
	workWaitState(t, n.Socket, n.ID, keep, workSucceeded)
	workWaitState(t, n.Socket, n.ID, gone, workSucceeded)
	if got, want := workCommand(t, n.Socket, n.ID, "work release "+gone), fmt.Sprintf(`{"released":%q}`, gone); got != want {
		t.Fatalf("release: got %q, want %q", got, want)
	}
	list := workList(t, n.Socket, n.ID)
	if _, ok := list[gone]; ok {
		t.Errorf("released unit %s still listed: %v", gone, list)
	}
	if _, ok := list[keep]; !ok {
		t.Errorf("unit %s missing from the list after releasing another: %v", keep, list)
	}
	if _, err := os.Stat(workUnitDir(workDatadir(n), n.ID, gone)); !os.IsNotExist(err) {
		t.Errorf("unit directory of %s after release: %v", gone, err)
	}
	unknown := "ERROR: unknown work unit " + gone
	for _, cmd := range []string{"work status", "work results", "work cancel", "work release", "work force-release", "work list"} {
		if got := workCommand(t, n.Socket, n.ID, cmd+" "+gone); got != unknown {
			t.Errorf("%s after release: got %q, want %q", cmd, got, unknown)
		}
	}
}

// TestWorkConcurrentUnits runs 200 local units at once; each returns its
// own input.
func TestWorkConcurrentUnits(t *testing.T) {
	t.Parallel()
	const units = 200
	n := NewNode(t, "many")
	n.Start(workAllInOneSpec(workStatic(entity("local-only")), workCatEntity))
	payload := func(i int) string { return strings.Repeat(fmt.Sprintf("unit %d\n", i), i+1) }

	ids := make([]string, units)
	errs := make([]error, units)
	var wg sync.WaitGroup
	for i := range units {
		wg.Go(func() {
			ids[i], _, errs[i] = workTrySubmit(n.Socket, n.ID,
				map[string]string{"node": "many", "worktype": "cat"}, strings.NewReader(payload(i)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("submit %d: %v", i, err)
		}
	}
	var last map[string]workUnitStatus
	testkit.Eventually(t, workUnitTimeout, "all units succeeded", func() error {
		last = workList(t, n.Socket, n.ID)
		done := 0
		for _, id := range ids {
			st, ok := last[id]
			if ok && (st.State == workFailed || st.State == workCanceled) {
				t.Fatalf("unit %s: %+v", id, st)
			}
			if ok && st.State == workSucceeded {
				done++
			}
		}
		if done == units {
			return nil
		}
		return errors.New("want done == units")
	})
	// Results streams poll, so read them side by side (bounded).
	sem := make(chan struct{}, 25)
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			sum := sha256.Sum256([]byte(payload(i)))
			want, size := hex.EncodeToString(sum[:]), int64(len(payload(i)))
			if st := last[id]; st.StdoutSize != size {
				t.Errorf("unit %d (%s): StdoutSize %d, want %d", i, id, st.StdoutSize, size)
			}
			got, gotN, err := workTryResults(n.Socket, n.ID, id)
			if err != nil || got != want {
				t.Errorf("unit %d (%s): results %d bytes, want %d (digest match %v), error %v", i, id, gotN, size, got == want, err)
			}
		})
	}
	wg.Wait()
}

// TestWorkRemoteResultsMiddleNodeRestart kills the middle node of a line
// while a pulls results from c, and restarts it: after a short outage
// (QUIC may ride it out), and after an outage long enough that a's mesh
// connections to c ended, so a must ask again from its offset. Either way
// nothing is lost or duplicated.
func TestWorkRemoteResultsMiddleNodeRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		waitForDrop bool
	}{
		{"short outage", false},
		{"connections dropped", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			workMiddleNodeRestart(t, tc.waitForDrop)
		})
	}
}

// workDroppedConns counts the mesh connections of the node's work agent
// that were established and then failed, from the router's debug log of
// each MeshService.Dial call (failed dials say "mesh: dial ...").
func workDroppedConns(t *testing.T, n *Node) int {
	t.Helper()
	b, err := os.ReadFile(n.Log)
	if err != nil {
		t.Fatalf("log of %s: %v", n.ID, err)
	}
	count := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "method=/receptor.mesh.v1.MeshService/Dial ") &&
			!strings.Contains(l, "code=OK") && !strings.Contains(l, `err="mesh: dial`) {
			count++
		}
	}
	return count
}

func workMiddleNodeRestart(t *testing.T, waitForDrop bool) {
	a, b, c := workLine(t, func(*Node) string { return workSlowcat(t, "0.1") })
	const size = 64 << 16 // 64 pieces: about 7 s of output
	want, _ := workDigest(t, workPayload(17, size))
	id, final := workSubmit(t, a.Socket, a.ID, map[string]string{"node": c.ID, "worktype": "slowcat"}, workPayload(17, size))
	t.Logf("remote submit: %s", final) // Job Submitted (retried in the background) is fine too
	local := filepath.Join(workUnitDir(workDatadir(a), a.ID, id), "stdout")
	testkit.Eventually(t, workUnitTimeout, "first remote output on a", func() error {
		if workFileSize(local) > 0 {
			return nil
		}
		return errors.New("want workFileSize(local) > 0")
	})

	dropped := workDroppedConns(t, a)
	b.Kill()
	if got := workFileSize(local); got >= size {
		t.Fatalf("all %d bytes arrived before b was killed; the test needs a slower unit", got)
	}
	a.WaitRoutes(map[string]string{})
	if waitForDrop {
		// Both of a's connections to c (status and results) end while b
		// is down: QUIC's idle timeout, about 30 s. Only then is a forced
		// to ask again from its offset.
		testkit.Eventually(t, 2*workUnitTimeout, "a's connections to c ended", func() error {
			if workDroppedConns(t, a) >= dropped+2 {
				return nil
			}
			return errors.New("want workDroppedConns(t, a) >= dropped+2")
		})
	}
	b.Restart()
	a.WaitRoutes(map[string]string{"b": "b", "c": "b"})

	st := workWaitState(t, a.Socket, a.ID, id, workSucceeded)
	if st.StdoutSize != size {
		t.Errorf("StdoutSize %d, want %d", st.StdoutSize, size)
	}
	if got, n := workResults(t, a.Socket, a.ID, id); got != want || n != size {
		t.Errorf("results on a: %d bytes %s, want %d bytes %s", n, got, size, want)
	}
	// With the connections dropped, the bytes after the outage can only
	// have come from a new request from a's offset.
	t.Logf("results streams ended on c: %d", workLogCount(t, c, workResultsCallLog))
}
