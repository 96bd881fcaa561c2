package command

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// RunnerEntity is the command-line entity that selects the runner entry
// point, mirroring upstream's hidden command-runner entity:
//
//	<exe> --command-runner command=<cmd> params=<params> unitdir=<dir>
const RunnerEntity = "--command-runner"

const (
	// stageKey marks the second, detached stage of the runner.
	stageKey = "stage"
	// runnerTick is how often the runner publishes the stdout size while
	// the command runs (upstream: 0.25 s).
	runnerTick = 250 * time.Millisecond
	// runnerKillGrace is how long the runner waits after SIGINT before
	// killing the command (upstream: 10 s).
	runnerKillGrace = 10 * time.Second
	// maxWriteFailures is how many consecutive status write failures the
	// runner tolerates (upstream: 3).
	maxWriteFailures = 3
)

// IsRunnerInvocation reports whether a binary's arguments (os.Args[1:])
// ask for the command runner.
func IsRunnerInvocation(args []string) bool {
	for _, a := range args {
		if strings.EqualFold(a, RunnerEntity) || strings.EqualFold(a, "-command-runner") {
			return true
		}
	}
	return false
}

type runnerArgs struct {
	command, params, unitDir string
	detached                 bool
}

func parseRunnerArgs(args []string) (runnerArgs, error) {
	var ra runnerArgs
	in := false
	seen := map[string]bool{}
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			in = strings.EqualFold(a, RunnerEntity) || strings.EqualFold(a, "-command-runner")
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return ra, fmt.Errorf("command runner: parameter %q is not key=value", a)
		}
		k = strings.ToLower(k)
		switch k {
		case "command":
			ra.command = v
		case "params":
			ra.params = v
		case "unitdir":
			ra.unitDir = v
		case stageKey:
			ra.detached = v == "2"
		default:
			return ra, fmt.Errorf("command runner: unknown parameter %q", k)
		}
		seen[k] = true
	}
	for _, k := range []string{"command", "unitdir"} {
		if !seen[k] {
			return ra, fmt.Errorf("command runner: required parameter missing: %s", k)
		}
	}
	return ra, nil
}

// RunnerMain is the entry point of the command runner. Binaries call it
// with os.Args[1:] when IsRunnerInvocation is true and exit with its result.
//
// The first stage, started by the worker, re-executes the binary as a
// second stage in a new session (its own process group), records the
// second stage's identity in the unit directory and exits, so the runner is
// nobody's child and survives worker restarts. The second stage runs the
// command and writes the unit's status until the end.
func RunnerMain(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ra, err := parseRunnerArgs(args)
	if err != nil {
		log.Error("command runner", "error", err)
		return 1
	}
	if !ra.detached {
		if err := detach(ra); err != nil {
			log.Error("command runner", "error", err)
			return 1
		}
		return 0
	}
	return runCommand(log, ra)
}

func detach(ra runnerArgs) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding own executable: %w", err)
	}
	cmd := exec.Command(exe, runnerArgv(ra.command, ra.params, ra.unitDir, stageKey+"=2")...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting detached runner: %w", err)
	}
	start, _, err := processStart(cmd.Process.Pid)
	if err == nil {
		err = writeIdentity(unit.Dir(ra.unitDir).Path(pidFile), identity{Pid: cmd.Process.Pid, Start: start})
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("recording detached runner: %w", err)
	}
	// Not waiting: the second stage is re-parented when we exit.
	return cmd.Process.Release()
}

// runnerArgv is the argument list that selects the runner.
func runnerArgv(command, params, unitDir string, extra ...string) []string {
	return append([]string{RunnerEntity, "command=" + command, "params=" + params, "unitdir=" + unitDir}, extra...)
}

// statusWriter counts consecutive failed writes (the runner gives up after
// maxWriteFailures).
type statusWriter struct {
	dir      unit.Dir
	log      *slog.Logger
	failures int
}

func (w *statusWriter) set(state unit.State, detail string, size int64) bool {
	_, err := w.dir.Update(func(st *unit.Status) {
		st.State, st.Detail, st.StdoutSize = state, detail, size
	})
	if err != nil {
		w.failures++
		w.log.Error("command runner: writing status", "error", err, "failures", w.failures)
		return w.failures <= maxWriteFailures
	}
	w.failures = 0
	return true
}

func runCommand(log *slog.Logger, ra runnerArgs) int {
	dir := unit.Dir(ra.unitDir)
	w := &statusWriter{dir: dir, log: log}
	w.set(unit.Pending, "Not started yet", 0)
	fail := func(err error) int {
		w.set(unit.Failed, err.Error(), dir.StdoutSize())
		return 1
	}
	args, err := SplitParams(ra.params)
	if err != nil {
		return fail(err)
	}
	stdin, err := os.Open(dir.Path(unit.StdinFile))
	if errors.Is(err, os.ErrNotExist) {
		stdin, err = os.Open(os.DevNull)
	}
	if err != nil {
		return fail(err)
	}
	defer stdin.Close()
	stdout, err := os.OpenFile(dir.Path(unit.StdoutFile), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fail(err)
	}
	defer stdout.Close()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	cmd := exec.Command(ra.command, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stdout
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	running := fmt.Sprintf("Running: PID %d", cmd.Process.Pid)
	size := dir.StdoutSize()
	ok := w.set(unit.Running, running, size)
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	ticker := time.NewTicker(runnerTick)
	defer ticker.Stop()
	var kill <-chan time.Time
	killed := false
	for ok {
		select {
		case <-exited:
			return finish(w, cmd, killed)
		case <-ticker.C:
			if n := dir.StdoutSize(); n != size {
				size = n
				ok = w.set(unit.Running, running, size)
			}
		case <-sigs:
			if !killed {
				killed = true
				_ = cmd.Process.Signal(syscall.SIGINT)
				kill = time.After(runnerKillGrace)
			}
		case <-kill:
			_ = cmd.Process.Kill()
		}
	}
	// Too many status write failures: stop the command and give up.
	_ = cmd.Process.Kill()
	<-exited
	return 255
}

func finish(w *statusWriter, cmd *exec.Cmd, killed bool) int {
	size := w.dir.StdoutSize()
	if killed {
		w.set(unit.Failed, "Killed", size)
		return 255
	}
	state := unit.Failed
	if cmd.ProcessState.Success() {
		state = unit.Succeeded
	}
	w.set(state, cmd.ProcessState.String(), size)
	code := cmd.ProcessState.ExitCode()
	if code < 0 {
		return 255
	}
	return code
}
