package testkit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a child process of a test: its stdout and stderr are appended
// to a log file (so the runs of a restarted node share one log), one
// goroutine owned by the Process waits for it, and Stop and Kill end it by
// its own PID only.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid once done is closed
}

// StartProcess starts bin with args in dir, appending the process's output
// to logPath. The caller must end the process (Stop or Kill), for example in
// tb.Cleanup.
func StartProcess(dir, logPath, bin string, args ...string) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited, and then Wait's error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Kill sends SIGKILL (a crash) unless the process has exited, and waits for
// it.
func (p *Process) Kill() {
	if exited, _ := p.Exited(); !exited {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// ErrStopTimeout is Stop's error for a process that outlived its timeout.
var ErrStopTimeout = errors.New("did not exit after SIGTERM")

// Stop sends SIGTERM and waits up to timeout for the process to exit; it
// returns Wait's error, or ErrStopTimeout after killing a process that did
// not exit in time.
func (p *Process) Stop(timeout time.Duration) error {
	if exited, err := p.Exited(); exited {
		return err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		return fmt.Errorf("%w within %v", ErrStopTimeout, timeout)
	}
}

// WaitReady polls ready, with Eventually's intervals, until it returns nil.
// It fails early when the process exits, and after timeout with ready's
// last error; it leaves the process running either way.
func (p *Process) WaitReady(timeout time.Duration, ready func() error) error {
	var last error
	exited := false
	if poll(timeout, func() bool {
		if exited, _ = p.Exited(); exited {
			return true
		}
		last = ready()
		return last == nil
	}) && !exited {
		return nil
	}
	if exited {
		return fmt.Errorf("process exited during start-up: %v", p.err)
	}
	return fmt.Errorf("not ready within %v: %v", timeout, last)
}

// AppendLog appends line to the log file at path (a harness's own
// marks between a child's output: starts, faults).
func AppendLog(path, line string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open log: %w", err)
	}
	_, err = f.WriteString(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// LogTail is the last max bytes of the log file at path.
func LogTail(path string, max int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	return string(b)
}
