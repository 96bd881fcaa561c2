// Package work is the work agent (upstream's workceptor): it owns the units
// of work of one node, runs them through their work types, streams their
// results, and carries remote units to other nodes' control services.
//
// # Use as a library
//
// New opens a data directory with a set of work types (CommandType wraps a
// command.Type for work-command units); Submit starts a unit from its
// stdin, Results streams its stdout to EOF as it runs, Status, Watch, List,
// Cancel and Release do the rest, and Close stops following units (command
// units keep running; a new Agent on the same directory adopts them).
// Options.Mesh may be nil for local units only. Command units run under a
// detached runner that re-executes the program, so its main must first
// hand runner invocations to command.RunnerMain (see package command and
// ExampleAgent_Submit). Package workapi serves an Agent as the gRPC
// WorkService.
package work

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/dirwatch"
	"github.com/receptor-mesh/receptor/services/internal/hostmem"
	"github.com/receptor-mesh/receptor/services/work/signing"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// RemoteWorkType is the built-in type of units submitted to other nodes.
const RemoteWorkType = "remote"

// Options configure an Agent.
type Options struct {
	NodeID  string
	DataDir string // "" means <os temp dir>/receptor
	// WorkTypes are the configured local types, in advertisement order.
	WorkTypes []WorkType
	// Signer signs requests of remote units with SignWork; nil if no
	// work-signing is configured.
	Signer *signing.Signer
	// Verifier checks signatures of secure types; nil if no
	// work-verification is configured.
	Verifier *signing.Verifier
	// Mesh reaches other nodes' control services; nil disables remote work.
	Mesh MeshDialer
	// KnownTLSClient reports whether a tls-client name is configured;
	// nil accepts only "".
	KnownTLSClient func(name string) bool
	Logger         *slog.Logger
}

// Agent owns the units of one node.
type Agent struct {
	opts  Options
	log   *slog.Logger
	store *unit.Store
	watch *dirwatch.Watcher
	types map[string]WorkType

	ctx    context.Context // canceled by Close; parent of background work
	cancel context.CancelFunc
	bg     sync.WaitGroup

	mu      sync.Mutex
	units   map[string]*entry
	dialing map[string]chan struct{} // per remote node, see maxDialsPerNode
	pools   map[string]*statusPool   // per remote node and tls-client
	closed  bool

	watchMu  sync.Mutex
	watchers map[*UnitWatch]struct{} // see WatchAll
	counts   workCounters
	m        *workMetrics
}

// entry is the in-memory side of one unit.
type entry struct {
	id       string
	dir      unit.Dir
	workType string
	kind     WorkType // nil: type not configured (or remote)
	remote   *remoteUnit

	op sync.Mutex // serializes cancel/release of this unit
	// touch tells the agent's watches of all units that the unit changed
	// (set at registration).
	touch func()

	mu      sync.Mutex
	exec    Execution
	changed chan struct{} // closed and replaced on every change
	gone    chan struct{} // closed when the unit is released
	isGone  bool
	// listSkipped is set while `work list` leaves the unit out because its
	// status cannot be read, so that this is logged once, not per list.
	listSkipped bool
	// frozen, while a local cancel runs, is the status reported instead of
	// the file: the dying runner writes a transient Failed "Killed" that
	// cancel then overwrites with Canceled. Upstream stops watching the file
	// before it signals, so status replies never show that transient, and
	// remote monitors (ours and upstream's) stop at the first complete state.
	frozen *unit.Status
	// life is the unit's lifecycle as the metrics observer saw it
	// (metrics.go).
	life life
}

func newEntry(id string, dir unit.Dir, workType string) *entry {
	return &entry{id: id, dir: dir, workType: workType, changed: make(chan struct{}), gone: make(chan struct{})}
}

// notify wakes everyone waiting on the unit.
func (e *entry) notify() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	touch := e.touch
	e.mu.Unlock()
	if touch != nil {
		touch()
	}
}

func (e *entry) changes() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

func (e *entry) setExec(x Execution) {
	e.mu.Lock()
	e.exec = x
	e.mu.Unlock()
}

func (e *entry) execution() Execution {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exec
}

// freeze reports the unit's current status until thaw.
func (e *entry) freeze() {
	st, err := e.dir.ReadStatus()
	if err != nil {
		return
	}
	e.mu.Lock()
	e.frozen = &st
	e.mu.Unlock()
}

func (e *entry) thaw() {
	e.mu.Lock()
	e.frozen = nil
	e.mu.Unlock()
}

// status is the unit's status as reported: the frozen one during a cancel,
// else the status file.
func (e *entry) status() (unit.Status, error) {
	e.mu.Lock()
	frozen := e.frozen
	e.mu.Unlock()
	if frozen != nil {
		return *frozen, nil
	}
	return e.dir.ReadStatus()
}

// cancelExec cancels a local execution with the reported status frozen.
func (e *entry) cancelExec(ctx context.Context, x Execution) error {
	e.freeze()
	defer func() {
		e.thaw()
		e.notify()
	}()
	return x.Cancel(ctx)
}

func (e *entry) markGone() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.isGone {
		e.isGone = true
		close(e.gone)
	}
}

// New opens the node's unit store and recovers every unit on disk
// (docs/protocol.md §13.9).
func New(opts Options) (*Agent, error) {
	if opts.NodeID == "" {
		return nil, errors.New("work agent: node ID is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	store, err := unit.NewStore(opts.DataDir, opts.NodeID)
	if err != nil {
		return nil, fmt.Errorf("work agent: %w", err)
	}
	if err := store.Prepare(); err != nil {
		return nil, fmt.Errorf("work agent: %w", err)
	}
	types := make(map[string]WorkType, len(opts.WorkTypes))
	for _, t := range opts.WorkTypes {
		if t.Name() == RemoteWorkType || types[t.Name()] != nil {
			return nil, fmt.Errorf("work type %s already registered", t.Name())
		}
		types[t.Name()] = t
	}
	w, err := dirwatch.New(opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("work agent: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{
		opts: opts, log: opts.Logger, store: store, watch: w, types: types,
		ctx: ctx, cancel: cancel, units: make(map[string]*entry), watchers: map[*UnitWatch]struct{}{},
		m: newWorkMetrics(opts.WorkTypes),
	}
	a.startObserver()
	ids, err := store.IDs()
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("work agent: %w", err)
	}
	for _, id := range ids {
		a.recover(id)
	}
	for _, t := range opts.WorkTypes {
		if r, ok := t.(Reaper); ok && r.ReapInterval() > 0 {
			a.bg.Add(1)
			go a.reapLoop(r)
		}
	}
	return a, nil
}

// reapLoop runs r's Reap now and every ReapInterval until Close.
func (a *Agent) reapLoop(r Reaper) {
	defer a.bg.Done()
	live := func(id string) bool {
		dir, err := a.store.Dir(id)
		return err == nil && dir.Exists()
	}
	for {
		if err := r.Reap(a.ctx, live); err != nil && a.ctx.Err() == nil {
			a.log.Warn("reaping resources of released units", "err", err)
		}
		t := time.NewTimer(r.ReapInterval())
		select {
		case <-a.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Close stops following units and stops remote work activity. Running
// command units keep running; a new Agent on the same data directory
// adopts them.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	entries := make([]*entry, 0, len(a.units))
	for _, e := range a.units {
		entries = append(entries, e)
	}
	a.mu.Unlock()
	a.cancel()
	for _, e := range entries {
		if x := e.execution(); x != nil {
			x.Detach()
		}
	}
	a.bg.Wait()
	a.closePools()
	return a.watch.Close()
}

// recover loads one unit directory found on disk and re-attaches to it.
func (a *Agent) recover(id string) *entry {
	dir, err := a.store.Dir(id)
	if err != nil || !dir.Exists() {
		a.log.Debug("skipping unit directory without status", "unit", id)
		return nil
	}
	st, err := dir.ReadStatus()
	if err != nil {
		a.log.Error("loading unit", "unit", id, "err", err)
		st = unit.Status{State: unit.Failed, Detail: "Failed to restart: " + err.Error()}
		if werr := dir.Overwrite(st); werr != nil {
			a.log.Error("marking unreadable unit failed", "unit", id, "err", werr)
		}
	}
	e := newEntry(id, dir, st.WorkType)
	// A unit found on disk counts in the lifecycle figures from the state
	// it has now: an ended one is not counted again.
	e.life = life{state: st.State, ended: st.State.Complete() || st.State == unit.Canceled}
	if !a.register(e) {
		return a.lookupLoaded(id)
	}
	switch {
	case st.WorkType == RemoteWorkType:
		a.restartRemote(e, st)
	case a.types[st.WorkType] != nil:
		e.kind = a.types[st.WorkType]
		x, err := e.kind.Restart(dir, st)
		if err != nil {
			a.log.Error("restarting unit", "unit", id, "err", err)
			_, _ = dir.Update(func(st *unit.Status) { st.State, st.Detail = unit.Failed, "Failed to restart: "+err.Error() })
		}
		if x != nil {
			e.setExec(x)
		}
	}
	return e
}

// register adds e to the registry and watches its directory; false if the
// ID is already known or the agent is closed.
func (a *Agent) register(e *entry) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed || a.units[e.id] != nil {
		return false
	}
	a.units[e.id] = e
	id := e.id
	e.mu.Lock()
	e.touch = func() { a.touched(id) }
	e.mu.Unlock()
	defer a.touched(id) // after a.mu is released: a watch sees the unit now
	if err := a.watch.Add(string(e.dir), e.notify); err != nil {
		a.log.Warn("watching unit directory; falling back to slow polling", "unit", e.id, "err", err)
	}
	return true
}

func (a *Agent) lookupLoaded(id string) *entry {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.units[id]
}

// lookup finds a unit, loading a directory created behind our back. The
// rescan runs without the registry lock (quirk Q12 of docs/protocol.md §15.1).
func (a *Agent) lookup(id string) (*entry, error) {
	if e := a.lookupLoaded(id); e != nil {
		return e, nil
	}
	if !unit.ValidID(id) {
		return nil, unknownUnit(id)
	}
	if e := a.recover(id); e != nil {
		return e, nil
	}
	return nil, unknownUnit(id)
}

func (a *Agent) forget(e *entry) {
	a.mu.Lock()
	if a.units[e.id] == e {
		delete(a.units, e.id)
	}
	a.mu.Unlock()
	a.watch.Remove(string(e.dir))
	e.markGone()
	e.notify()
}

// isLocal reports whether node names this node.
func (a *Agent) isLocal(node string) bool {
	return node == a.opts.NodeID || strings.EqualFold(node, "localhost")
}

// WorkCommand is one advertised work type.
type WorkCommand struct {
	WorkType string
	Secure   bool
}

// WorkTypes lists the configured types in configuration order, as
// advertised by the control service.
func (a *Agent) WorkTypes() []WorkCommand {
	out := make([]WorkCommand, 0, len(a.opts.WorkTypes))
	for _, t := range a.opts.WorkTypes {
		out = append(out, WorkCommand{WorkType: t.Name(), Secure: t.VerifySignature()})
	}
	return out
}

// Capacity is what this node offers for work.
type Capacity struct {
	CPUCount     int
	MemoryMiB    int64
	RunningUnits int
}

// Capacity reports CPU count, total memory and the number of units in
// state Running.
func (a *Agent) Capacity() Capacity {
	c := Capacity{CPUCount: runtime.NumCPU(), MemoryMiB: hostmem.TotalMiB()}
	a.mu.Lock()
	entries := make([]*entry, 0, len(a.units))
	for _, e := range a.units {
		entries = append(entries, e)
	}
	a.mu.Unlock()
	for _, e := range entries {
		if st, err := e.dir.ReadStatus(); err == nil && st.State == unit.Running {
			c.RunningUnits++
		}
	}
	return c
}

// Auth is how a request was authenticated.
type Auth struct {
	// Signature is the request's JWT, if any.
	Signature string
	// Trusted marks requests from the local Unix control socket, which
	// upstream never asks to sign.
	Trusted bool
}

// checkSignature applies the signature rule of docs/protocol.md §14.3.
func (a *Agent) checkSignature(needs bool, auth Auth) error {
	if !needs {
		if auth.Signature != "" {
			a.signatureFailed(reasonUnexpected, nil)
			return errUnexpectedSignature
		}
		return nil
	}
	if auth.Trusted {
		return nil
	}
	if err := a.opts.Verifier.Verify(auth.Signature, a.opts.NodeID); err != nil {
		a.signatureFailed(signing.Reason(err), err)
		return signatureError(err)
	}
	return nil
}

// needsSignature: for remote units their SignWork, else the local type's
// verifysignature (false for unknown types).
func (a *Agent) needsSignature(e *entry) bool {
	if e.workType == RemoteWorkType {
		if st, err := e.dir.ReadStatus(); err == nil {
			if ex, err := parseRemoteExtra(st.ExtraData); err == nil {
				return ex.SignWork
			}
		}
		return false
	}
	if t := a.types[e.workType]; t != nil {
		return t.VerifySignature()
	}
	return false
}

// SubmitRequest is a `work submit`.
type SubmitRequest struct {
	Node      string
	WorkType  string
	Params    map[string]string // work params (everything else of the request)
	TLSClient string
	TTL       string
	SignWork  bool
	Auth      Auth
	// Created, if set, is called once the unit exists and before stdin is
	// read: the control service sends "Work unit created ..." from it.
	Created func(unitID string) error
}

// Submit results (docs/protocol.md §13.7).
const (
	ResultStarted   = "Job Started"
	ResultSubmitted = "Job Submitted"
)

// SubmitResult is the reply to a successful submit.
type SubmitResult struct {
	Result string `json:"result"`
	UnitID string `json:"unitid"`
	// Reason says why a start was deferred (Result is ResultSubmitted):
	// the gRPC and REST replies carry it; the control protocol's reply is
	// upstream's and has no place for it.
	Reason string `json:"-"`
}

// Submit creates a unit, stores stdin as its payload, and starts it.
func (a *Agent) Submit(ctx context.Context, req SubmitRequest, stdin io.Reader) (res SubmitResult, err error) {
	defer func() {
		if res.UnitID != "" {
			a.counts.submittedOK.Add(1)
		} else {
			a.counts.submittedErr.Add(1)
		}
	}()
	if a.isLocal(req.Node) {
		return a.submitLocal(ctx, req, stdin)
	}
	return a.submitRemote(ctx, req, stdin)
}

func (a *Agent) submitLocal(ctx context.Context, req SubmitRequest, stdin io.Reader) (SubmitResult, error) {
	t := a.types[req.WorkType]
	if err := a.checkSignature(t != nil && t.VerifySignature(), req.Auth); err != nil {
		return SubmitResult{}, err
	}
	if req.TTL != "" {
		return SubmitResult{}, errTTLLocal
	}
	if t == nil {
		return SubmitResult{}, newError(ErrUnknownWorkType, "unknown work type "+req.WorkType, nil)
	}
	// Validate before allocating, so a bad request leaves nothing behind
	// (quirk Q6 of docs/protocol.md §15.1).
	extra, err := t.Prepare(req.Params)
	if err != nil {
		return SubmitResult{}, invalid(err)
	}
	e, err := a.allocate(t.Name(), extra)
	if err != nil {
		return SubmitResult{}, err
	}
	e.kind = t
	if err := a.receiveStdin(e, req, stdin); err != nil {
		return SubmitResult{}, err
	}
	a.setStatus(e, unit.Pending, "Starting Worker")
	x, err := t.Start(ctx, e.dir)
	if err != nil {
		a.setStatus(e, unit.Failed, "Error starting worker: "+err.Error())
		return SubmitResult{}, err
	}
	e.setExec(x)
	return SubmitResult{Result: ResultStarted, UnitID: e.id}, nil
}

func (a *Agent) allocate(workType string, extra json.RawMessage) (*entry, error) {
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	id, dir, err := a.store.Create(workType, extra)
	if err != nil {
		return nil, err
	}
	e := newEntry(id, dir, workType)
	e.life = life{created: time.Now(), state: unit.Pending}
	if !a.register(e) {
		_ = dir.Remove()
		return nil, ErrClosed
	}
	return e, nil
}

// receiveStdin writes the payload to the unit's stdin file.
func (a *Agent) receiveStdin(e *entry, req SubmitRequest, stdin io.Reader) error {
	a.setStatus(e, unit.Pending, "Waiting for Input Data")
	f, err := os.OpenFile(e.dir.Path(unit.StdinFile), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		a.setStatus(e, unit.Failed, "Error reading input data: "+err.Error())
		return fmt.Errorf("creating stdin of unit %s: %w", e.id, err)
	}
	if req.Created != nil {
		if err := req.Created(e.id); err != nil {
			f.Close()
			a.setStatus(e, unit.Failed, "Error reading input data: "+err.Error())
			return err
		}
	}
	if stdin != nil {
		_, err = io.Copy(f, stdin)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		a.setStatus(e, unit.Failed, "Error reading input data: "+err.Error())
		return fmt.Errorf("receiving stdin of unit %s: %w", e.id, err)
	}
	return nil
}

func (a *Agent) setStatus(e *entry, state unit.State, detail string) {
	if _, err := e.dir.Update(func(st *unit.Status) { st.State, st.Detail = state, detail }); err != nil {
		a.log.Error("writing unit status", "unit", e.id, "err", err)
	}
}

// Status returns the status of one unit as `work status` shows it.
func (a *Agent) Status(id string) (unit.Report, error) {
	e, err := a.lookup(id)
	if err != nil {
		return unit.Report{}, err
	}
	return a.report(e)
}

func (a *Agent) report(e *entry) (unit.Report, error) {
	st, err := e.status()
	if err != nil {
		if !e.dir.Exists() {
			return unit.Report{}, unknownUnit(e.id)
		}
		return unit.Report{}, err
	}
	extra := st.ExtraData
	switch {
	case st.WorkType == RemoteWorkType:
		extra = redactRemoteExtra(extra)
	case a.types[st.WorkType] == nil:
		extra = json.RawMessage(`"Unknown WorkType"`)
	default:
		if r, ok := a.types[st.WorkType].(Redactor); ok {
			extra = r.Redact(extra)
		}
	}
	r := st.Report(extra)
	r.Updated = e.dir.Updated()
	return r, nil
}

// List returns every unit's status, or only id's when id is not empty.
func (a *Agent) List(id string) (map[string]unit.Report, error) {
	if id != "" {
		r, err := a.Status(id)
		if err != nil {
			return nil, err
		}
		return map[string]unit.Report{id: r}, nil
	}
	if ids, err := a.store.IDs(); err == nil {
		for _, id := range ids {
			_, _ = a.lookup(id)
		}
	}
	a.mu.Lock()
	entries := make([]*entry, 0, len(a.units))
	for _, e := range a.units {
		entries = append(entries, e)
	}
	a.mu.Unlock()
	sort.Slice(entries, func(i, j int) bool { return entries[i].id < entries[j].id })
	out := make(map[string]unit.Report, len(entries))
	for _, e := range entries {
		r, err := a.report(e)
		if err != nil {
			a.skipInList(e, err)
			continue
		}
		e.listed()
		out[e.id] = r
	}
	return out, nil
}

// skipInList leaves a unit whose status cannot be read out of `work list`:
// one bad unit must not hide the others (AWX's reaper relies on the list).
// It is logged once until the unit is readable again; a unit released
// meanwhile is skipped silently. `work status` of the unit still reports
// the error.
func (a *Agent) skipInList(e *entry, err error) {
	if a.lookupLoaded(e.id) != e {
		return
	}
	e.mu.Lock()
	first := !e.listSkipped
	e.listSkipped = true
	e.mu.Unlock()
	if first {
		a.log.Warn("work list: leaving out a unit whose status cannot be read", "unit", e.id, "err", err)
	}
}

// listed clears the skip mark of skipInList.
func (e *entry) listed() {
	e.mu.Lock()
	e.listSkipped = false
	e.mu.Unlock()
}

// Watch sends the unit's status now and after every change, until the unit
// is complete, canceled or released, or ctx ends. The channel is closed
// then.
func (a *Agent) Watch(ctx context.Context, id string) (<-chan unit.Report, error) {
	e, err := a.lookup(id)
	if err != nil {
		return nil, err
	}
	ch := make(chan unit.Report, 1)
	a.bg.Add(1)
	go func() {
		defer a.bg.Done()
		defer close(ch)
		var last []byte
		for {
			changed := e.changes()
			r, err := a.report(e)
			if err != nil {
				return
			}
			if b, _ := json.Marshal(r); string(b) != string(last) {
				last = b
				select {
				case ch <- r:
				case <-ctx.Done():
					return
				case <-a.ctx.Done():
					return
				}
			}
			if r.State.Complete() || r.State == unit.Canceled {
				return
			}
			select {
			case <-changed:
			case <-e.gone:
				return
			case <-ctx.Done():
				return
			case <-a.ctx.Done():
				return
			case <-safetyPoll():
			}
		}
	}()
	return ch, nil
}

// CancelResult says whether cancel/release completed or was deferred.
type CancelResult struct {
	// Pending means the unit's remote node was unreachable; the agent
	// keeps trying ("cancel pending" / "release pending").
	Pending bool
}

// Cancel stops a unit (docs/protocol.md §13.8).
func (a *Agent) Cancel(ctx context.Context, id string, auth Auth) (CancelResult, error) {
	e, err := a.lookup(id)
	if err != nil {
		return CancelResult{}, err
	}
	if err := a.checkSignature(a.needsSignature(e), auth); err != nil {
		return CancelResult{}, err
	}
	e.op.Lock()
	defer e.op.Unlock()
	if e.remote != nil {
		return a.cancelRemote(ctx, e, false, false)
	}
	if x := e.execution(); x != nil {
		if err := e.cancelExec(ctx, x); err != nil {
			return CancelResult{}, fmt.Errorf("canceling unit %s: %w", id, err)
		}
	}
	e.notify()
	return CancelResult{}, nil
}

// Release cancels a unit and deletes it (docs/protocol.md §13.8). force always
// succeeds locally: errors are ignored and the unit is forgotten.
func (a *Agent) Release(ctx context.Context, id string, force bool, auth Auth) (CancelResult, error) {
	e, err := a.lookup(id)
	if err != nil {
		return CancelResult{}, err
	}
	if err := a.checkSignature(a.needsSignature(e), auth); err != nil {
		return CancelResult{}, err
	}
	e.op.Lock()
	defer e.op.Unlock()
	if e.remote != nil {
		res, err := a.cancelRemote(ctx, e, true, force)
		if err != nil || res.Pending {
			return res, err
		}
	} else if x := e.execution(); x != nil {
		if err := e.cancelExec(ctx, x); err != nil && !force {
			return CancelResult{}, fmt.Errorf("releasing unit %s: %w", id, err)
		}
		x.Detach()
	}
	if err := a.remove(ctx, e, force); err != nil {
		return CancelResult{}, err
	}
	return CancelResult{}, nil
}

// remove deletes the unit's files and forgets it. Non-forced removal
// retries (upstream: 3 times, 1 s apart).
func (a *Agent) remove(ctx context.Context, e *entry, force bool) error {
	a.watch.Remove(string(e.dir))
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = e.dir.Remove(); err == nil || force {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("releasing unit %s: %w", e.id, err)
		case <-afterSecond():
		}
	}
	if err != nil && !force {
		return fmt.Errorf("releasing unit %s: %w", e.id, err)
	}
	a.forget(e)
	return nil
}

// NodeID is the node this agent works for.
func (a *Agent) NodeID() string { return a.opts.NodeID }

// RunsOn returns the node a reported unit runs on: RemoteNode for remote
// units, else this node.
func (a *Agent) RunsOn(r unit.Report) string {
	if r.WorkType == RemoteWorkType {
		if ex, err := parseRemoteExtra(r.ExtraData); err == nil {
			return ex.RemoteNode
		}
	}
	return a.opts.NodeID
}
