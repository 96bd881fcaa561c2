package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // plain structs of strings and numbers
	}
	return b
}

// podWatch follows one pod through a list-then-watch loop that survives
// broken watches and API server restarts (bounded backoff; failing for
// longer than the retry timeout is an error).
type podWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	pod     *corev1.Pod
	err     error
	changed chan struct{}
}

func (e *Execution) watchPod(namespace, name string) *podWatch {
	ctx, cancel := context.WithCancel(e.ctx)
	w := &podWatch{cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	e.setPod(namespace, name)
	go func() {
		defer close(w.done)
		w.run(ctx, e, namespace, name)
	}()
	return w
}

func (w *podWatch) stop() {
	w.cancel()
	<-w.done
}

// latest is the newest pod seen (nil before the first), a terminal error,
// and a channel closed at the next change.
func (w *podWatch) latest() (*corev1.Pod, <-chan struct{}, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pod, w.changed, w.err
}

func (w *podWatch) publish(pod *corev1.Pod, err error) {
	w.mu.Lock()
	if pod != nil {
		w.pod = pod
	}
	if err != nil {
		w.err = err
	}
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

var errPodDeleted = errors.New("was deleted")

func (w *podWatch) run(ctx context.Context, e *Execution, namespace, name string) {
	pods := e.clients.Kube.Pods(namespace)
	sel := fields.OneTermEqualSelector("metadata.name", name).String()
	b := e.t.cfg.Retry.policy().Start()
	failingSince := time.Time{}
	fail := func(err error) bool {
		if failingSince.IsZero() {
			failingSince = time.Now()
		}
		if time.Since(failingSince) > e.t.cfg.Retry.Timeout {
			w.publish(nil, fmt.Errorf("watching pod %s/%s: %w", namespace, name, err))
			return false
		}
		d := b.Next()
		e.log.Warn("watching pod failed; retrying", "pod", namespace+"/"+name, "in", d, "err", err)
		return backoff.Sleep(ctx, d)
	}
	for ctx.Err() == nil {
		list, err := pods.List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			if ctx.Err() != nil || !fail(err) {
				return
			}
			continue
		}
		if len(list.Items) == 0 {
			w.publish(nil, fmt.Errorf("pod %s/%s %w", namespace, name, errPodDeleted))
			return
		}
		w.publish(&list.Items[0], nil)
		wi, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: list.ResourceVersion})
		if err != nil {
			if ctx.Err() != nil || !fail(err) {
				return
			}
			continue
		}
		failingSince = time.Time{}
		b.Reset()
		deleted := w.consume(ctx, wi)
		wi.Stop()
		if deleted {
			w.publish(nil, fmt.Errorf("pod %s/%s %w", namespace, name, errPodDeleted))
			return
		}
		// The watch ended (timeout, API server restart): list again.
		if !backoff.Sleep(ctx, e.t.cfg.Retry.Initial) {
			return
		}
	}
}

// consume reads one watch until it ends; true if the pod was deleted.
func (w *podWatch) consume(ctx context.Context, wi watch.Interface) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return false
			}
			switch ev.Type {
			case watch.Deleted:
				return true
			case watch.Added, watch.Modified:
				if pod, ok := ev.Object.(*corev1.Pod); ok {
					w.publish(pod, nil)
				}
			case watch.Error:
				return false
			}
		}
	}
}

// stdoutWriter appends to the unit's stdout and records StdoutSize with
// the log cursor at most every flushInterval, and at flush.
type stdoutWriter struct {
	e    *Execution
	f    *os.File
	size int64
	c    *copier
	last time.Time
}

func (s *stdoutWriter) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.size += int64(n)
	return n, err
}

// flush records the stdout size and cursor (what the stdout file holds
// exactly) in one status update.
func (s *stdoutWriter) flush() error {
	s.last = time.Now()
	size := s.size
	var cur *cursor
	if s.c != nil && !s.c.cur.Time.IsZero() {
		c := s.c.cur
		cur = &c
	}
	_, err := s.e.dir.Update(func(st *unit.Status) {
		st.StdoutSize = size
		if ex, perr := parseExtra(st.ExtraData); perr == nil {
			ex.Cursor = cur
			st.ExtraData = mustJSON(ex)
		}
	})
	return err
}

// follow copies the worker container's log into stdout until the pod
// finished and its log was read to the end, then records the final state.
// A log stream that ends while the container runs is reopened after the
// last line written.
func (e *Execution) follow(ex extraData, w *podWatch) error {
	st, err := e.dir.ReadStatus()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(e.dir.Path(unit.StdoutFile), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return detailf("Error opening stdout file: %s", err)
	}
	defer f.Close()
	// The status file's StdoutSize and cursor describe the same bytes; a
	// previous agent may have written more before it died: drop those, the
	// cursor replays them.
	if err := f.Truncate(st.StdoutSize); err != nil {
		return detailf("Error opening stdout file: %s", err)
	}
	if _, err := f.Seek(st.StdoutSize, io.SeekStart); err != nil {
		return detailf("Error opening stdout file: %s", err)
	}
	out := &stdoutWriter{e: e, f: f, size: st.StdoutSize, last: time.Now()}
	c := &copier{w: out}
	if ex.Cursor != nil {
		c.cur = *ex.Cursor
	}
	out.c = c
	reconnect := e.t.opts.Tuning.reconnect()
	c.raw = !reconnect
	ref := podRef{ex.KubeNamespace, ex.PodName}
	b := e.t.cfg.Retry.policy().Start()
	// stuckSince is when the streams of the finished pod began ending
	// before they reached the output already written (zero while they
	// reach it).
	var stuckSince time.Time
	for {
		pod, changed, werr := w.latest()
		if werr != nil {
			_ = out.flush()
			return watchDetail(werr, ref)
		}
		finishedAtOpen := pod != nil && outcome(pod) == podFinished
		opts := &corev1.PodLogOptions{Container: WorkerContainer, Follow: !finishedAtOpen, Timestamps: reconnect}
		if reconnect && !c.cur.Time.IsZero() {
			opts.SinceTime = &metav1.Time{Time: c.cur.Time}
		}
		var stream io.ReadCloser
		err := e.retry(e.ctx, "open log stream", func() error {
			var oerr error
			stream, oerr = e.clients.Logs(e.ctx, ref.namespace, ref.name, opts)
			return oerr
		}, func(err error) bool { return notFound(err) })
		if err != nil {
			if e.ctx.Err() != nil {
				return e.ctx.Err()
			}
			_ = out.flush()
			return detailf("Error opening log stream for pod %s/%s. Error: %s", ref.namespace, ref.name, err)
		}
		before := c.written
		cerr := e.copyFlushing(c, out, stream)
		stream.Close()
		if ferr := out.flush(); ferr != nil {
			return ferr
		}
		if e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		var werrOut *writeError
		if errors.As(cerr, &werrOut) {
			return detailf("Error with pod's stdout: writing to stdout: %s", werrOut.err)
		}
		if c.raw {
			// Without timestamps a stream cannot be resumed: its end
			// is the end of the output if the container finished.
			if cerr != nil {
				return detailf("Error with pod's stdout: the log stream broke and log reconnect is disabled: %s", cerr)
			}
			return e.finishWhenDone(w, ref, out)
		}
		// A stream of the finished pod that ended cleanly is the whole
		// log only if it reached the output already written and brought
		// nothing new: a stream cut short ends cleanly too (log
		// rotation, a proxy closing it), so a stream that did bring new
		// bytes is followed by another from the new position. One that
		// ended while replaying lines already written was cut, whatever
		// its end looked like.
		switch {
		case !c.caughtUp:
			if finishedAtOpen {
				if stuckSince.IsZero() {
					stuckSince = time.Now()
				}
				if time.Since(stuckSince) > e.t.cfg.Retry.Timeout {
					return detailf("Error with pod's stdout: for %s every log stream ended before reaching the %d bytes already written; the rest of the log could not be read", e.t.cfg.Retry.Timeout, out.size)
				}
			}
			e.log.Warn("log stream ended before reaching the output already written; reopening", "pod", ref.namespace+"/"+ref.name, "err", cerr)
		case cerr == nil && finishedAtOpen:
			if c.written == before {
				return e.finish(pod, out.size)
			}
			stuckSince = time.Time{}
			b.Reset()
			continue
		case cerr != nil:
			stuckSince = time.Time{}
			e.log.Info("log stream broke; resuming after the last line written", "pod", ref.namespace+"/"+ref.name, "err", cerr)
		default:
			stuckSince = time.Time{}
		}
		// Wait for news of the pod (it may have just finished) or the
		// next backoff step, then reopen.
		select {
		case <-changed:
		case <-time.After(b.Next()):
		case <-e.ctx.Done():
			return e.ctx.Err()
		}
		if cerr == nil && c.caughtUp {
			b.Reset()
		}
	}
}

// watchDetail is the unit's Detail for a pod watch that failed.
func watchDetail(werr error, ref podRef) error {
	if errors.Is(werr, errPodDeleted) {
		return detailf("Error with pod's stdout: pod %s/%s was deleted", ref.namespace, ref.name)
	}
	return detailf("Error with pod's stdout: %s", werr)
}

// finishWhenDone records the final state once the pod finished, after
// its (unresumable) log stream ended cleanly. A pod still running after
// the retry timeout means the stream ended early and the rest of the
// output is lost: the unit fails.
func (e *Execution) finishWhenDone(w *podWatch, ref podRef, out *stdoutWriter) error {
	deadline := time.NewTimer(e.t.cfg.Retry.Timeout)
	defer deadline.Stop()
	for {
		pod, changed, werr := w.latest()
		if werr != nil {
			return watchDetail(werr, ref)
		}
		if pod != nil && outcome(pod) == podFinished {
			return e.finish(pod, out.size)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return detailf("Error with pod's stdout: the log stream ended before the container finished and log reconnect is disabled")
		case <-e.ctx.Done():
			return e.ctx.Err()
		}
	}
}

// writeError marks a failure of the stdout file (not of the stream).
type writeError struct{ err error }

func (w *writeError) Error() string { return w.err.Error() }

// copyFlushing copies one stream through the copier, recording size and
// cursor every flushInterval while bytes flow.
func (e *Execution) copyFlushing(c *copier, out *stdoutWriter, r io.Reader) error {
	var (
		mu   sync.Mutex
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	c.w = &errWriter{w: out}
	wg.Go(func() {
		t := time.NewTicker(flushInterval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				err := out.flush()
				mu.Unlock()
				if err != nil {
					e.log.Error("recording stdout size", "err", err)
				}
			}
		}
	})
	c.lock = &mu
	err := c.copyStream(r)
	c.lock = nil
	close(stop)
	wg.Wait()
	return err
}

// errWriter marks the stdout file's errors as writeError.
type errWriter struct{ w *stdoutWriter }

func (l *errWriter) Write(p []byte) (int, error) {
	n, err := l.w.Write(p)
	if err != nil {
		return n, &writeError{err}
	}
	return n, nil
}

// finish records the unit's final state from the finished pod.
func (e *Execution) finish(pod *corev1.Pod, size int64) error {
	state, detail := unit.Succeeded, "Finished"
	if err := exitError(pod); err != nil {
		state, detail = unit.Failed, err.Error()
	}
	_, err := e.dir.Update(func(st *unit.Status) {
		if st.State == unit.Canceled {
			return
		}
		st.State, st.Detail, st.StdoutSize = state, detail, size
	})
	return err
}

// Restart re-attaches to a unit found on disk at start-up: a Running unit
// (streammethod logger) is followed again from its log cursor without
// re-sending stdin; a Pending one (or any tcp one) fails as upstream's
// does, its pod deleted when deletepodonrestart is set. Units already
// final get an idle execution whose Cancel deletes their pod (release).
func (t *Type) Restart(dir unit.Dir, st unit.Status) (*Execution, error) {
	e := t.newExecution(dir)
	ex, perr := parseExtra(st.ExtraData)
	if st.State.Complete() || st.State == unit.Canceled {
		close(e.done)
		return e, nil
	}
	if perr != nil {
		close(e.done)
		return e, perr
	}
	if st.State == unit.Running && t.stream == StreamLogger && ex.PodName != "" {
		if err := e.connect(&ex); err != nil {
			close(e.done)
			return e, err
		}
		go e.run(func() error { return e.runLogger(ex, true) })
		return e, nil
	}
	defer close(e.done)
	if t.cfg.DeletePodOnRestart {
		if err := e.connect(&ex); err != nil {
			e.log.Warn("pod could not be deleted", "pod", ex.PodName, "err", err)
		} else {
			name := ex.PodName
			if name == "" {
				// Created just before the agent stopped, never recorded.
				if p, err := e.findPod(ex.KubeNamespace); err == nil && p != nil {
					name = p.Name
				}
			}
			e.deletePod(ex.KubeNamespace, name)
		}
	}
	if t.stream == StreamTCP {
		return e, errors.New("restart not implemented for streammethod tcp")
	}
	return e, errors.New("work unit is not in running state, cannot be restarted")
}
