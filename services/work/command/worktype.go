// Package command is the work-command work type: units that run a local
// executable under a detached runner process (docs/protocol.md §13.10).
//
// The runner is the receptor-runner binary next to the running program
// when there is one (RunnerExecutable), else the program itself re-executed
// with runner arguments; such a program must start with
//
//	if command.IsRunnerInvocation(os.Args[1:]) {
//		os.Exit(command.RunnerMain(os.Args[1:]))
//	}
//
// (test binaries do it in TestMain). work.CommandType adapts a Type to the
// work agent.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// DefaultCancelGrace is how long Cancel waits after SIGTERM before SIGKILL.
const DefaultCancelGrace = 10 * time.Second

// Config is one work-command entity (docs/protocol.md §13.10).
type Config struct {
	WorkType           string
	Command            string
	Params             string
	AllowRuntimeParams bool
	VerifySignature    bool
}

// Options are the runtime dependencies of a command work type.
type Options struct {
	// Executable is the binary started as the runner; empty means
	// RunnerExecutable(os.Executable()). It must call RunnerMain for runner
	// invocations.
	Executable string
	// CancelGrace is the wait between SIGTERM and SIGKILL on cancel;
	// 0 means DefaultCancelGrace.
	CancelGrace time.Duration
	// RunnerOutput receives the runner's own log; nil means os.Stderr.
	RunnerOutput *os.File
	Logger       *slog.Logger
}

// RunnerBinary is the file name of the dedicated runner binary
// (cmd/receptor-runner).
const RunnerBinary = "receptor-runner"

// RunnerExecutable returns the binary that runs a worker's units when the
// worker itself is self: the dedicated runner binary in self's directory
// when it is an executable regular file, else self (re-executed with the
// runner arguments). The small runner starts far faster than a re-executed
// worker, whose package initialisation dominates a short unit's cost.
func RunnerExecutable(self string) string {
	runner := filepath.Join(filepath.Dir(self), RunnerBinary)
	if fi, err := os.Stat(runner); err == nil && fi.Mode().IsRegular() && unix.Access(runner, unix.X_OK) == nil {
		return runner
	}
	return self
}

// Type is a configured command work type.
type Type struct {
	cfg  Config
	opts Options
	log  *slog.Logger
}

// New validates cfg and returns the work type.
func New(cfg Config, opts Options) (*Type, error) {
	if cfg.WorkType == "" {
		return nil, errors.New("work-command: worktype is required")
	}
	if cfg.Command == "" {
		return nil, fmt.Errorf("work-command %s: command is required", cfg.WorkType)
	}
	if _, err := SplitParams(cfg.Params); err != nil {
		return nil, fmt.Errorf("work-command %s: %w", cfg.WorkType, err)
	}
	if opts.Executable == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("work-command %s: finding own executable for the runner: %w", cfg.WorkType, err)
		}
		opts.Executable = RunnerExecutable(exe)
	}
	if opts.CancelGrace <= 0 {
		opts.CancelGrace = DefaultCancelGrace
	}
	if opts.RunnerOutput == nil {
		opts.RunnerOutput = os.Stderr
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Type{cfg: cfg, opts: opts, log: opts.Logger.With("worktype", cfg.WorkType)}, nil
}

// Name is the work type name.
func (t *Type) Name() string { return t.cfg.WorkType }

// VerifySignature reports whether submissions must be signed.
func (t *Type) VerifySignature() bool { return t.cfg.VerifySignature }

// extraData is the command unit's ExtraData member (order as upstream).
type extraData struct {
	Pid    int    `json:"Pid"`
	Params string `json:"Params"`
}

// Prepare checks the submit params and returns the unit's initial
// ExtraData.
func (t *Type) Prepare(params map[string]string) (json.RawMessage, error) {
	combined, err := CombineParams(t.cfg.Params, params["params"], t.cfg.AllowRuntimeParams)
	if err != nil {
		return nil, err
	}
	return json.Marshal(extraData{Params: combined})
}

// Execution is a running unit's runner, watched until it exits.
type Execution struct {
	t    *Type
	dir  unit.Dir
	id   identity
	w    *exitWatch
	done chan struct{}

	mu        sync.Mutex
	canceling bool
	detached  bool
}

// Start launches the runner for the unit in dir.
func (t *Type) Start(ctx context.Context, dir unit.Dir) (*Execution, error) {
	st, err := dir.Update(func(st *unit.Status) { st.State, st.Detail = unit.Pending, "Launching command runner" })
	if err != nil {
		return nil, err
	}
	var ex extraData
	if err := json.Unmarshal(st.ExtraData, &ex); err != nil {
		return nil, fmt.Errorf("command unit %s: reading params: %w", dir, err)
	}
	// The runner records its PID in ExtraData with its first status
	// write, saving a status round trip here.
	id, err := t.launch(ctx, dir, ex.Params)
	if err != nil {
		_, _ = dir.Update(func(st *unit.Status) {
			st.State, st.Detail = unit.Failed, "Failed to start command runner: "+err.Error()
		})
		return nil, err
	}
	return t.watch(dir, id), nil
}

// launch starts the runner in a new session. The runner stays our child
// while we live (we reap it when it exits, see reap); it needs no second
// stage to outlive us. A restarted worker recognizes it by its PID in
// ExtraData and its arguments (isRunnerOf).
func (t *Type) launch(ctx context.Context, dir unit.Dir, params string) (identity, error) {
	if err := ctx.Err(); err != nil {
		return identity{}, err
	}
	argv := append([]string{t.opts.Executable}, runnerArgv(t.cfg.Command, params, string(dir))...)
	p, err := os.StartProcess(t.opts.Executable, argv, &os.ProcAttr{
		Files: []*os.File{nil, t.opts.RunnerOutput, t.opts.RunnerOutput},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return identity{}, fmt.Errorf("running %s: %w", t.opts.Executable, err)
	}
	start, _, err := processStart(p.Pid)
	if err != nil {
		_ = p.Kill()
		_, _ = p.Wait()
		return identity{}, fmt.Errorf("identifying command runner %d: %w", p.Pid, err)
	}
	id := identity{Pid: p.Pid, Start: start}
	// The pidfd watch (watchExit) follows the runner from here; the
	// process handle is not needed.
	_ = p.Release()
	return id, nil
}

// watch follows the runner until it exits; a runner already gone is
// finalized at once.
func (t *Type) watch(dir unit.Dir, id identity) *Execution {
	e := &Execution{t: t, dir: dir, id: id, done: make(chan struct{})}
	w, err := watchExit(id)
	if err != nil {
		if !errors.Is(err, errGone) {
			t.log.Error("watching command runner", "unit", dir, "pid", id.Pid, "err", err)
		} else {
			reap(id.Pid)
		}
		e.finalize()
		close(e.done)
		return e
	}
	e.w = w
	go e.run()
	return e
}

// Restart re-adopts a unit found on disk (docs/protocol.md §13.9, with quirk Q8 of §15.1 fixed):
// a live runner is watched again; otherwise an unfinished unit fails. It
// returns nil when there is nothing to watch.
func (t *Type) Restart(dir unit.Dir, st unit.Status) (*Execution, error) {
	if st.State.Complete() || st.State == unit.Canceled {
		return nil, nil
	}
	var ex extraData
	_ = json.Unmarshal(st.ExtraData, &ex) // no PID: no runner to adopt
	if isRunnerOf(ex.Pid, dir) {
		if start, running, err := processStart(ex.Pid); err == nil && running {
			return t.watch(dir, identity{Pid: ex.Pid, Start: start}), nil
		}
	}
	// Re-read: the runner may have finished after the caller read st.
	st, rerr := dir.ReadStatus()
	if rerr != nil {
		return nil, rerr
	}
	if st.State.Complete() {
		return nil, nil
	}
	detail := "Pending at restart"
	if st.State != unit.Pending {
		detail = fmt.Sprintf("Failed to restart: command runner (PID %d) is no longer running", ex.Pid)
	}
	_, err := dir.Update(func(st *unit.Status) { st.State, st.Detail = unit.Failed, detail })
	return nil, err
}

// Done is closed when the runner has exited and the status is final.
func (e *Execution) Done() <-chan struct{} { return e.done }

func (e *Execution) run() {
	err := e.w.wait()
	e.w.close()
	if err == nil {
		reap(e.id.Pid)
	}
	e.mu.Lock()
	skip := e.canceling || e.detached
	e.mu.Unlock()
	if err == nil && !skip {
		e.finalize()
	}
	close(e.done)
}

// finalize records that the runner exited: ExtraData becomes null, and a
// unit the runner left unfinished (killed runner) fails.
func (e *Execution) finalize() {
	_, err := e.dir.Update(func(st *unit.Status) {
		st.ExtraData = nil
		if !st.State.Complete() && st.State != unit.Canceled {
			st.State, st.Detail = unit.Failed, "Command runner exited unexpectedly"
		}
	})
	if err != nil {
		e.t.log.Error("finalizing command unit", "unit", e.dir, "err", err)
	}
}

// Detach stops watching without touching the runner (worker shutdown).
func (e *Execution) Detach() {
	e.mu.Lock()
	e.detached = true
	e.mu.Unlock()
	if e.w != nil {
		e.w.close()
	}
	<-e.done
}

// Cancel stops the unit: SIGTERM to the runner's process group (runner,
// command and the command's children), SIGKILL after the grace period,
// then status Canceled. A unit that already finished keeps its status.
func (e *Execution) Cancel(ctx context.Context) error {
	select {
	case <-e.done:
		return nil
	default:
	}
	if st, err := e.dir.ReadStatus(); err == nil && st.State.Complete() {
		<-e.done
		return nil
	}
	e.mu.Lock()
	e.canceling = true
	e.mu.Unlock()
	if !e.id.alive() {
		// Already gone: the status stays as the runner left it.
		<-e.done
		e.finalize()
		return nil
	}
	if err := signalGroup(e.id.Pid, unix.SIGTERM); err != nil {
		return err
	}
	grace := time.NewTimer(e.t.opts.CancelGrace)
	defer grace.Stop()
	select {
	case <-e.done:
	case <-grace.C:
	case <-ctx.Done():
	}
	// Kill whatever is left of the group, including children that ignored
	// SIGTERM or outlived the runner.
	if err := signalGroup(e.id.Pid, unix.SIGKILL); err != nil {
		e.t.log.Warn("killing command unit", "unit", e.dir, "err", err)
	}
	select {
	case <-e.done:
	case <-ctx.Done():
		return fmt.Errorf("canceling unit %s: %w", e.dir, ctx.Err())
	}
	_, err := e.dir.Update(func(st *unit.Status) {
		st.State, st.Detail, st.ExtraData = unit.Canceled, "Canceled", nil
	})
	return err
}
