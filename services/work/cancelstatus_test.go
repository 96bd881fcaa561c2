package work

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// dyingType is a work type whose cancel behaves like a command runner's:
// the dying process writes Failed "Killed" before cancel records Canceled.
// The test holds cancel between the two writes.
type dyingType struct {
	killed  chan struct{} // closed once the transient status is written
	proceed chan struct{} // closed by the test to let cancel finish
}

func (dyingType) Name() string                                       { return "dying" }
func (dyingType) VerifySignature() bool                              { return false }
func (dyingType) Prepare(map[string]string) (json.RawMessage, error) { return nil, nil }
func (dyingType) Restart(unit.Dir, unit.Status) (Execution, error)   { return nil, nil }
func (d dyingType) Start(_ context.Context, dir unit.Dir) (Execution, error) {
	if _, err := dir.Update(func(st *unit.Status) { st.State, st.Detail = unit.Running, "Running: PID 1" }); err != nil {
		return nil, err
	}
	return &dyingExec{t: d, dir: dir, done: make(chan struct{})}, nil
}

type dyingExec struct {
	t    dyingType
	dir  unit.Dir
	done chan struct{}
}

func (x *dyingExec) Done() <-chan struct{} { return x.done }
func (x *dyingExec) Detach()               {}
func (x *dyingExec) Cancel(ctx context.Context) error {
	if _, err := x.dir.Update(func(st *unit.Status) { st.State, st.Detail = unit.Failed, "Killed" }); err != nil {
		return err
	}
	close(x.t.killed)
	select {
	case <-x.t.proceed:
	case <-ctx.Done():
		return ctx.Err()
	}
	close(x.done)
	_, err := x.dir.Update(func(st *unit.Status) { st.State, st.Detail = unit.Canceled, "Canceled" })
	return err
}

// TestCancelHidesTransientKilled: while a cancel runs, status replies keep
// the pre-cancel status (as upstream, which stops watching first), so a
// remote monitor polling `work status` never mistakes the runner's
// transient Failed "Killed" for the final state and stops before Canceled.
func TestCancelHidesTransientKilled(t *testing.T) {
	v := newEnv(t)
	d := dyingType{killed: make(chan struct{}), proceed: make(chan struct{})}
	a := v.agent(t, func(o *Options) { o.WorkTypes = []WorkType{d} })
	id := submit(t, a, "dying", nil, "")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := a.Cancel(ctx, id, Auth{})
		errc <- err
	}()
	select {
	case <-d.killed:
	case <-ctx.Done():
		t.Fatal("cancel never reached the execution")
	}
	for _, get := range []struct {
		name string
		fn   func() (unit.Report, error)
	}{
		{"Status", func() (unit.Report, error) { return a.Status(id) }},
		{"List", func() (unit.Report, error) { l, err := a.List(""); return l[id], err }},
	} {
		r, err := get.fn()
		if err != nil {
			t.Fatalf("%s during cancel: %v", get.name, err)
		}
		if r.State != unit.Running || r.Detail != "Running: PID 1" {
			t.Errorf("%s during cancel = %v %q, want the pre-cancel Running status", get.name, r.State, r.Detail)
		}
	}
	close(d.proceed)
	if err := <-errc; err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	r, err := a.Status(id)
	if err != nil || r.State != unit.Canceled || r.Detail != "Canceled" {
		t.Fatalf("Status after cancel = %+v, %v; want Canceled", r, err)
	}
}
