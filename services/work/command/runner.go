package command

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// stageKey was the marker of the second stage of the former two-stage
	// runner; it is accepted and ignored, so runners launched by an older
	// worker keep working across an upgrade.
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
// The worker starts the runner in a session of its own (setsid: its own
// process group, no controlling terminal), so signals aimed at the
// worker's group do not reach it and it outlives the worker; when the
// worker dies the runner is re-parented. The runner runs the command and
// writes the unit's status until the end.
func RunnerMain(args []string) int {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ra, err := parseRunnerArgs(args)
	if err != nil {
		log.Error("command runner", "err", err)
		return 1
	}
	return runCommand(log, ra)
}

// runnerArgv is the argument list that selects the runner.
func runnerArgv(command, params, unitDir string, extra ...string) []string {
	return append([]string{RunnerEntity, "command=" + command, "params=" + params, "unitdir=" + unitDir}, extra...)
}

// withPid sets Pid in a command unit's ExtraData, keeping its Params
// (params when ExtraData is not a command unit's).
func withPid(raw json.RawMessage, pid int, params string) json.RawMessage {
	var ex extraData
	if err := json.Unmarshal(raw, &ex); err != nil || len(raw) == 0 {
		ex = extraData{Params: params}
	}
	ex.Pid = pid
	b, err := json.Marshal(ex)
	if err != nil {
		return raw
	}
	return b
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
		w.log.Error("command runner: writing status", "err", err, "failures", w.failures)
		return w.failures <= maxWriteFailures
	}
	w.failures = 0
	return true
}

func runCommand(log *slog.Logger, ra runnerArgs) int {
	dir := unit.Dir(ra.unitDir)
	w := &statusWriter{dir: dir, log: log}
	// The first write also records our PID (ExtraData Pid), by which a
	// restarted worker finds us.
	pid := os.Getpid()
	_, err := dir.Update(func(st *unit.Status) {
		st.State, st.Detail, st.StdoutSize = unit.Pending, "Not started yet", 0
		st.ExtraData = withPid(st.ExtraData, pid, ra.params)
	})
	if err != nil {
		w.failures++
		log.Error("command runner: writing status", "err", err, "failures", w.failures)
	}
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

	// The command writes into a pipe and we copy to the stdout file, so
	// that a failing write (a full disk) is ours to see and report: given
	// the file itself, the command would only exit with some status.
	pr, pw, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	cmd := exec.Command(ra.command, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return fail(err)
	}
	out := &outputCopy{done: make(chan struct{})}
	go out.run(stdout, pr)
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
			// The output ends when the last writer closes the pipe;
			// background processes the command left may hold it open.
			select {
			case <-out.done:
			case <-time.After(outputGrace):
			}
			return finish(w, cmd, killed, out.failure())
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

// outputGrace is how long the runner waits, once the command exited, for
// the rest of its output (held by processes it left behind).
const outputGrace = 2 * time.Second

// outputCopy copies the command's output from the pipe to the stdout file.
type outputCopy struct {
	done chan struct{} // closed when the copy ends
	err  error         // the write error that ended it, read after done
}

// run copies until the pipe's writers are all gone. On a write error it
// closes the pipe, so the command's further writes fail (EPIPE) instead of
// filling a pipe nobody reads.
func (o *outputCopy) run(dst io.Writer, src *os.File) {
	defer close(o.done)
	defer src.Close()
	buf := make([]byte, 256<<10)
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				o.err = err
				return
			}
		}
		if rerr != nil {
			return
		}
	}
}

// failure is the write error that ended the copy, if it has ended.
func (o *outputCopy) failure() error {
	select {
	case <-o.done:
		return o.err
	default:
		return nil
	}
}

func finish(w *statusWriter, cmd *exec.Cmd, killed bool, outErr error) int {
	size := w.dir.StdoutSize()
	if killed {
		w.set(unit.Failed, "Killed", size)
		return 255
	}
	if outErr != nil {
		// The output is incomplete whatever the command's exit status;
		// the OS error says why (e.g. "no space left on device").
		w.set(unit.Failed, "Error writing stdout: "+outErr.Error(), size)
		return 1
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
