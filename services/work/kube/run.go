package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// flushInterval is how often StdoutSize and the log cursor are written
// while output flows.
const flushInterval = 250 * time.Millisecond

// imagePullRetries is how many ImagePullBackOff reports are tolerated
// before the unit fails (upstream's 3).
const imagePullRetries = 3

// Execution is one unit's pod, followed until the unit is final.
type Execution struct {
	t    *Type
	dir  unit.Dir
	id   string
	log  *slog.Logger
	done chan struct{}

	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	canceling bool
	clients   *Clients // set once connected
	pod       podRef   // set once the pod is known
}

type podRef struct{ namespace, name string }

func (t *Type) newExecution(dir unit.Dir) *Execution {
	ctx, cancel := context.WithCancel(context.Background())
	id := filepath.Base(string(dir))
	return &Execution{
		t: t, dir: dir, id: id, log: t.log.With("unit", id),
		done: make(chan struct{}), ctx: ctx, cancel: cancel,
	}
}

// Done is closed when the execution stopped following the unit.
func (e *Execution) Done() <-chan struct{} { return e.done }

// Start connects to Kubernetes and runs the unit in dir (stdin is in
// place). A connection failure is returned (the agent fails the unit with
// "Error starting worker: ..."); everything later is recorded in the
// unit's status.
func (t *Type) Start(_ context.Context, dir unit.Dir) (*Execution, error) {
	st, err := dir.Update(func(st *unit.Status) {
		st.State, st.Detail, st.StdoutSize = unit.Pending, "Connecting to Kubernetes", 0
	})
	if err != nil {
		return nil, err
	}
	ex, err := parseExtra(st.ExtraData)
	if err != nil {
		return nil, err
	}
	e := t.newExecution(dir)
	if err := e.connect(&ex); err != nil {
		e.cancel()
		return nil, err
	}
	go e.run(func() error {
		if t.stream == StreamTCP {
			return e.runTCP(ex)
		}
		return e.runLogger(ex, false)
	})
	return e, nil
}

// connect builds the unit's clients and settles its namespace.
func (e *Execution) connect(ex *extraData) error {
	c, err := e.t.opts.Clients(e.t.auth, ex.KubeConfig)
	if err != nil {
		return err
	}
	if ex.KubeNamespace == "" {
		if c.Namespace == "" {
			return errors.New("could not determine namespace")
		}
		ex.KubeNamespace = c.Namespace
		ns := c.Namespace
		if err := e.updateExtra(func(x *extraData) { x.KubeNamespace = ns }); err != nil {
			return err
		}
	}
	e.mu.Lock()
	e.clients = c
	e.mu.Unlock()
	return nil
}

// run runs body and records its error as the unit's failure, unless the
// unit was canceled or the agent let go of it meanwhile.
func (e *Execution) run(body func() error) {
	defer close(e.done)
	defer e.cancel()
	err := body()
	if err == nil || e.ctx.Err() != nil {
		return
	}
	e.log.Error("kubernetes unit failed", "err", err)
	if _, uerr := e.dir.Update(func(st *unit.Status) {
		if !st.State.Complete() && st.State != unit.Canceled {
			st.State, st.Detail = unit.Failed, err.Error()
		}
	}); uerr != nil {
		e.log.Error("writing unit status", "err", uerr)
	}
}

// setState writes state and detail.
func (e *Execution) setState(state unit.State, detail string) error {
	_, err := e.dir.Update(func(st *unit.Status) { st.State, st.Detail = state, detail })
	return err
}

// updateExtra rewrites the unit's ExtraData through fn.
func (e *Execution) updateExtra(fn func(*extraData)) error {
	var perr error
	_, err := e.dir.Update(func(st *unit.Status) {
		ex, err := parseExtra(st.ExtraData)
		if err != nil {
			perr = err
			return
		}
		fn(&ex)
		st.ExtraData = mustJSON(ex)
	})
	if err == nil {
		err = perr
	}
	return err
}

// detailError is an error whose text is the unit's Detail as is.
type detailError struct{ msg string }

func (d detailError) Error() string { return d.msg }

func detailf(format string, args ...any) error { return detailError{fmt.Sprintf(format, args...)} }

// retry runs op until it succeeds, fails permanently (permanent returns
// true), or has failed for the retry timeout; waits follow the type's
// backoff.
func (e *Execution) retry(ctx context.Context, what string, op func() error, permanent func(error) bool) error {
	r := e.t.cfg.Retry
	b := r.policy().Start()
	deadline := time.Now().Add(r.Timeout)
	for {
		err := op()
		if err == nil || ctx.Err() != nil || (permanent != nil && permanent(err)) {
			if err == nil && ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if time.Now().After(deadline) {
			return err
		}
		d := b.Next()
		e.log.Warn("kubernetes call failed; retrying", "call", what, "in", d, "err", err)
		if !backoff.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

func notFound(err error) bool { return apierrors.IsNotFound(err) }

// apiPermanent is true for API errors a retry cannot fix.
func apiPermanent(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) ||
		apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsAlreadyExists(err)
}

// createPod creates the unit's pod and records its identity. A create
// that failed without an API answer may still have created the pod: the
// unit label finds it instead of creating a second one.
func (e *Execution) createPod(ex *extraData, env map[string]string) (*corev1.Pod, error) {
	pod, err := e.t.buildPod(*ex, e.id, env)
	if err != nil {
		return nil, err
	}
	pods := e.clients.Kube.Pods(pod.Namespace)
	var created *corev1.Pod
	err = e.retry(e.ctx, "create pod", func() error {
		if p, ferr := e.findPod(pod.Namespace); ferr == nil && p != nil {
			created = p
			return nil
		}
		p, cerr := pods.Create(e.ctx, pod, metav1.CreateOptions{})
		if cerr == nil {
			created = p
		}
		return cerr
	}, apiPermanent)
	if err != nil {
		return nil, err
	}
	ex.KubeNamespace, ex.PodName, ex.PodUID = created.Namespace, created.Name, string(created.UID)
	e.setPod(created.Namespace, created.Name)
	_, err = e.dir.Update(func(st *unit.Status) {
		st.State, st.Detail, st.StdoutSize = unit.Pending, "Pod created", 0
		cur, perr := parseExtra(st.ExtraData)
		if perr != nil {
			cur = *ex
		}
		cur.KubeNamespace, cur.PodName, cur.PodUID = ex.KubeNamespace, ex.PodName, ex.PodUID
		st.ExtraData = mustJSON(cur)
	})
	return created, err
}

// findPod returns this unit's pod in namespace, if one exists.
func (e *Execution) findPod(namespace string) (*corev1.Pod, error) {
	list, err := e.clients.Kube.Pods(namespace).List(e.ctx, metav1.ListOptions{
		LabelSelector: LabelUnit + "=" + e.id + "," + LabelNode + "=" + NodeLabel(e.t.opts.NodeID),
	})
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		if list.Items[i].DeletionTimestamp == nil {
			return &list.Items[i], nil
		}
	}
	return nil, nil
}

func (e *Execution) setPod(namespace, name string) {
	e.mu.Lock()
	e.pod = podRef{namespace, name}
	e.mu.Unlock()
}

// waitStarted waits until the pod is ready to attach to, or finished. A
// pod still pending after timeout (0: no limit) fails with the reason
// from its events.
func (e *Execution) waitStarted(w *podWatch, timeout time.Duration) (*corev1.Pod, error) {
	var expired <-chan time.Time
	if timeout > 0 {
		tm := time.NewTimer(timeout)
		defer tm.Stop()
		expired = tm.C
	}
	pullBackOffs := 0
	for {
		pod, changed, err := w.latest()
		if err != nil {
			return nil, err
		}
		if pod != nil {
			switch outcome(pod) {
			case podReady, podFinished:
				return pod, nil
			}
			if waitingReason(pod) == "ImagePullBackOff" {
				if pullBackOffs == imagePullRetries {
					return pod, fmt.Errorf("container failed to start, %s", waitingReason(pod))
				}
				pullBackOffs++
			}
		}
		select {
		case <-changed:
		case <-expired:
			return pod, fmt.Errorf("pod did not start within %s: %s", timeout, e.pendingReason(pod))
		case <-e.ctx.Done():
			return nil, e.ctx.Err()
		}
	}
}

// pendingReason says why a pod has not started: the latest warning event
// about it (e.g. FailedScheduling with the scheduler's message), else its
// conditions or the worker container's waiting reason.
func (e *Execution) pendingReason(pod *corev1.Pod) string {
	ref := e.podRef()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs, err := e.clients.Kube.Events(ref.namespace).List(ctx, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + ref.name,
	})
	if err == nil {
		var best *corev1.Event
		for i := range evs.Items {
			ev := &evs.Items[i]
			if best == nil || eventTime(ev).After(eventTime(best)) || (ev.Type == corev1.EventTypeWarning && best.Type != corev1.EventTypeWarning) {
				best = ev
			}
		}
		if best != nil {
			return best.Reason + ": " + best.Message
		}
	}
	if pod != nil {
		if r := waitingReason(pod); r != "" {
			return r
		}
		for _, c := range pod.Status.Conditions {
			if c.Status != corev1.ConditionTrue && c.Reason != "" {
				return c.Reason + ": " + c.Message
			}
		}
	}
	return "no events were reported for the pod"
}

func eventTime(ev *corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	}
	return ev.FirstTimestamp.Time
}

func (e *Execution) podRef() podRef {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pod
}

// runLogger is streammethod logger: create the pod (unless resuming),
// send stdin, copy the log, finish from the pod's status.
func (e *Execution) runLogger(ex extraData, resume bool) error {
	if !resume {
		pod, err := e.createPod(&ex, nil)
		if err != nil {
			return detailf("Error creating pod: %s", err)
		}
		w := e.watchPod(pod.Namespace, pod.Name)
		defer w.stop()
		pod, err = e.waitStarted(w, ex.PodPendingTimeout)
		if err != nil {
			if e.ctx.Err() == nil {
				e.deletePod(ex.KubeNamespace, ex.PodName)
			}
			return detailf("Error creating pod: %s", err)
		}
		// A pod that ended before it was seen running (a command that
		// exits at once) gets no stdin, and is followed like any other:
		// its log is copied and its status decides the outcome, whether
		// it succeeded or failed. Upstream fails such a unit with "Error
		// creating pod: container failed ..." and none of its output.
		if outcome(pod) != podFinished {
			if err := e.sendStdin(ex); err != nil {
				return err
			}
		}
		if err := e.setState(unit.Running, "Pod Running"); err != nil {
			return err
		}
		return e.follow(ex, w)
	}
	w := e.watchPod(ex.KubeNamespace, ex.PodName)
	defer w.stop()
	return e.follow(ex, w)
}

// sendStdin attaches the unit's stdin to the worker container. An attach
// that failed before any byte was read is retried; once stdin was partly
// consumed by a failed attach, retrying could feed the container a broken
// input, so the unit fails.
func (e *Execution) sendStdin(ex extraData) error {
	f, err := os.Open(e.dir.Path(unit.StdinFile))
	if err != nil {
		return detailf("Error opening stdin file: %s", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() == 0 {
		return nil
	}
	if err := e.setState(unit.Pending, "Sending stdin to pod"); err != nil {
		return err
	}
	err = e.retry(e.ctx, "attach stdin", func() error {
		cr := &countReader{r: f}
		aerr := e.clients.Attach(e.ctx, ex.KubeNamespace, ex.PodName, cr)
		if aerr != nil && cr.n > 0 {
			return permanentError{aerr}
		}
		if aerr != nil {
			if _, serr := f.Seek(0, io.SeekStart); serr != nil {
				return permanentError{serr}
			}
		}
		return aerr
	}, func(err error) bool {
		var p permanentError
		return errors.As(err, &p) || apiPermanent(err)
	})
	if err != nil && e.ctx.Err() == nil {
		return detailf("Error with pod's stdin: %s", err)
	}
	return err
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// deletePod deletes a pod, best effort (the reaper catches what is left).
func (e *Execution) deletePod(namespace, name string) {
	if name == "" || e.clients == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.t.cfg.Retry.Timeout)
	defer cancel()
	err := e.retry(ctx, "delete pod", func() error {
		err := e.clients.Kube.Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{})
		if notFound(err) {
			return nil
		}
		return err
	}, apiPermanent)
	if err != nil {
		e.log.Error("deleting pod", "pod", namespace+"/"+name, "err", err)
	}
}

// Cancel stops the unit: the pod is deleted and the unit is Canceled
// "Canceled". A unit that already finished keeps its state; its pod is
// deleted all the same.
func (e *Execution) Cancel(ctx context.Context) error {
	e.mu.Lock()
	e.canceling = true
	e.mu.Unlock()
	e.cancel()
	select {
	case <-e.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	ref := e.podRef()
	if ref.name == "" {
		// Not known in memory (e.g. an idle execution after restart).
		if st, err := e.dir.ReadStatus(); err == nil {
			if ex, err := parseExtra(st.ExtraData); err == nil {
				ref = podRef{ex.KubeNamespace, ex.PodName}
				if e.clients == nil {
					_ = e.connect(&ex)
				}
			}
		}
	}
	e.deletePod(ref.namespace, ref.name)
	_, err := e.dir.Update(func(st *unit.Status) {
		if !st.State.Complete() {
			st.State, st.Detail = unit.Canceled, "Canceled"
		}
	})
	return err
}

// Detach stops following the unit without touching the pod (agent
// shutdown): a new agent re-attaches.
func (e *Execution) Detach() {
	e.cancel()
	<-e.done
}
