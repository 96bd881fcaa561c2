package faults

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
)

// The kill/restart matrix. Every cell submits one slowcat unit whose
// stdin (and so its expected output) is unitSize deterministic bytes, kills
// one process with one signal in one phase, restarts it at once, and then
// checks the rules below, fetching everything from the submitter.
//
// Process kinds:
//   - executor:  c of the line a - b - c, the all-in-one node running the unit
//   - middle:    b, the hop between submitter and executor
//   - submitter: a, where the unit is submitted (to c) and results are read
//   - router:    receptor-router of the split node s (unit submitted on s for s)
//   - worker:    receptor-worker of the split node s
//
// Phases:
//   - upload:  the test has sent half of stdin to the submitter's control
//     socket (paced writes), before the submit was acknowledged
//   - run:     the unit is Running with some but not all output written
//   - results: the unit has Succeeded and the test has read half of the
//     results stream from the submitter (paced reads)
//
// Rules ("nothing lost, nothing corrupt"):
//   - A: a submit that was acknowledged ("Job Started" / "Job Submitted")
//     reaches Succeeded on the submitter, never Failed or stuck, and its
//     results, read from the submitter (resuming from the byte held when a
//     stream is cut), are byte for byte the expected output (sha256).
//   - B: a submit that failed (the connection to the submitter broke, or
//     an ERROR reply) leaves a unit that the restarted submitter reports as
//     absent ("unknown work unit") or Failed with a Detail; never Pending or
//     Running for good, never Succeeded.
//   - Which rule a cell must end in: a fault on the upload path (submitter,
//     split router or worker, during upload) may fail the submit (B) or, if
//     the shutdown let the upload finish, end in A; every other cell must
//     acknowledge the submit and end in A.

// unitSize is the stdin and output of a matrix unit: 2 MiB in 32 pieces
// of 64 KiB, 0.1 s apart (about 4 s of running).
const unitSize = 2 << 20

// answerTimeout bounds the wait for the submitter's answer to a submit
// after a fault in the upload phase.
const answerTimeout = 30 * time.Second

var (
	kinds   = []string{"executor", "middle", "submitter", "router", "worker"}
	signals = []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM}
	phases  = []string{"upload", "run", "results"}
)

// onUploadPath reports whether killing kind during the upload can break
// the submit itself (rule B allowed).
func onUploadPath(kind string) bool {
	return kind == "submitter" || kind == "router" || kind == "worker"
}

// TestKillRestart runs the matrix: the full one with FAULTS=full (make
// test-faults), else one cell per process kind (SIGKILL during results).
func TestKillRestart(t *testing.T) {
	t.Parallel()
	for _, kind := range kinds {
		for _, sig := range signals {
			for _, phase := range phases {
				if !full() && (sig != syscall.SIGKILL || phase != "results") {
					continue
				}
				t.Run(fmt.Sprintf("%s/%s/%s", kind, sigName(sig), phase), func(t *testing.T) {
					t.Parallel()
					runCell(t, kind, sig, phase)
				})
			}
		}
	}
}

func sigName(sig syscall.Signal) string {
	if sig == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}

// cellEnv is one cell's topology seen through the matrix: where to submit,
// the target node, the process to kill, and how to wait for health.
type cellEnv struct {
	submitter *proc
	node      string
	victim    *proc
	healthy   func(t *testing.T)
}

func newCellEnv(t *testing.T, kind string) cellEnv {
	t.Helper()
	switch kind {
	case "router", "worker":
		s := startSplit(t)
		victim := s.router
		if kind == "worker" {
			victim = s.worker
		}
		return cellEnv{submitter: s.router, node: "s", victim: victim, healthy: s.waitHealthy}
	default:
		l := startLine(t, lineOptions{env: true})
		victim := map[string]*proc{"executor": l.c, "middle": l.b, "submitter": l.a}[kind]
		return cellEnv{submitter: l.a, node: "c", victim: victim, healthy: l.waitHealthy}
	}
}

type submitted struct {
	id  string
	res client.SubmitResult
	err error
}

func runCell(t *testing.T, kind string, sig syscall.Signal, phase string) {
	env := newCellEnv(t, kind)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	seed := uint64(len(kind)*100 + int(sig)*10 + len(phase))
	want := digest(payload(seed, unitSize))

	faultAt := time.Time{}
	fault := func() {
		t.Helper()
		faultAt = time.Now()
		env.victim.kill(sig)
		env.victim.restart()
		env.healthy(t)
		t.Logf("%s %s killed and back in %v", env.victim.name, sigName(sig), time.Since(faultAt).Round(time.Millisecond))
	}

	// Submit; in the upload phase the stdin is paced and the fault is
	// injected at its half.
	var stdin = newPaced(payload(seed, unitSize), unitSize, 64<<10, 0)
	if phase == "upload" {
		stdin.pause = 25 * time.Millisecond
	}
	subc := make(chan submitted, 1)
	go func() {
		id, res, err := submit(ctx, env.submitter, map[string]string{"node": env.node, "worktype": "slowcat"}, stdin)
		subc <- submitted{id, res, err}
	}()
	var sub submitted
	if phase == "upload" {
		select {
		case <-stdin.half:
			fault()
		case sub = <-subc:
			t.Fatalf("submit ended before half of stdin was sent: %+v", sub)
		}
	}
	// After the fault the submitter answers the submit (a result or an
	// error) within answerTimeout; a session left hanging is a finding.
	select {
	case sub = <-subc:
	case <-time.After(answerTimeout):
		t.Errorf("HUNG: no answer to the submit %v after the fault; goroutines of %s:\n%s",
			answerTimeout, env.submitter.name, goroutineDump(env.submitter))
		sub = <-subc
	}
	if sub.err != nil {
		if phase != "upload" || !onUploadPath(kind) {
			t.Fatalf("LOST: submit failed although the fault was not on its path: %v", sub.err)
		}
		ruleB(t, env, sub)
		return
	}
	t.Logf("submit acknowledged: %s %q", sub.id, sub.res.Result)

	if phase == "run" {
		st, err, ok := waitState(env.submitter, sub.id, unitTimeout, func(st unitStatus, err error) bool {
			return err == nil && (st.State == stateRunning && st.StdoutSize > 0 || st.State > stateRunning)
		})
		if !ok || st.State != stateRunning {
			t.Fatalf("unit %s never seen running with output: %+v %v", sub.id, st, err)
		}
		t.Logf("fault while Running with %d of %d bytes", st.StdoutSize, unitSize)
		fault()
	}

	st, err, ok := waitState(env.submitter, sub.id, unitTimeout, func(st unitStatus, err error) bool {
		return err == nil && st.State == stateSucceeded || errors.Is(err, errAbsent) || st.State == stateFailed
	})
	if !ok || st.State != stateSucceeded {
		t.Fatalf("LOST: acknowledged unit %s did not succeed: %+v (error %v)", sub.id, st, err)
	}
	if st.StdoutSize != unitSize {
		t.Errorf("CORRUPT: unit %s StdoutSize %d, want %d", sub.id, st.StdoutSize, unitSize)
	}

	r := newResults(env.submitter, sub.id, unitSize)
	if phase == "results" {
		r.pace = newPaced(nil, unitSize, 16<<10, 10*time.Millisecond)
		half := r.pace.half
		type fetched struct {
			sum string
			err error
		}
		fc := make(chan fetched, 1)
		go func() {
			sum, err := r.fetch(ctx)
			fc <- fetched{sum, err}
		}()
		select {
		case <-half:
			fault()
		case f := <-fc:
			t.Fatalf("results read before the fault: %+v", f)
		}
		f := <-fc
		checkResults(t, sub.id, f.sum, f.err, want, r.tries)
		return
	}
	sum, err := r.fetch(ctx)
	checkResults(t, sub.id, sum, err, want, r.tries)
}

func checkResults(t *testing.T, id, sum string, err error, want string, tries int) {
	t.Helper()
	if err != nil {
		t.Fatalf("LOST: results of %s: %v", id, err)
	}
	if sum != want {
		t.Fatalf("CORRUPT: results of %s: sha256 %s, want %s", id, sum, want)
	}
	t.Logf("OUTCOME A: unit %s succeeded, %d bytes correct (%d results stream(s))", id, unitSize, tries)
}

// ruleB checks a failed submit: after the restart the submitter reports
// the unit absent or Failed, and keeps it so.
func ruleB(t *testing.T, env cellEnv, sub submitted) {
	t.Helper()
	t.Logf("submit failed: %v", sub.err)
	if sub.id == "" {
		t.Logf("OUTCOME B: no unit was created")
		return
	}
	st, err, ok := waitState(env.submitter, sub.id, unitTimeout, func(st unitStatus, err error) bool {
		return errors.Is(err, errAbsent) || err == nil && st.State >= stateSucceeded
	})
	switch {
	case !ok:
		t.Fatalf("STUCK: unacknowledged unit %s neither absent nor final: %+v (error %v)", sub.id, st, err)
	case errors.Is(err, errAbsent):
		t.Logf("OUTCOME B: unit %s absent", sub.id)
	case st.State == stateFailed && st.Detail != "":
		t.Logf("OUTCOME B: unit %s Failed: %q", sub.id, st.Detail)
	default:
		t.Fatalf("CORRUPT: unacknowledged unit %s with half its stdin ended %+v", sub.id, st)
	}
	// Stays so: not restarted later with half its stdin.
	time.Sleep(2 * time.Second)
	if st2, err2 := unitState(env.submitter, sub.id); err2 == nil && st2.State != stateFailed {
		t.Fatalf("unit %s changed from %+v/%v to %+v", sub.id, st, err, st2)
	}
}
