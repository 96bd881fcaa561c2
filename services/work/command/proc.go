package command

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// identity names one process for its lifetime: PID plus kernel start time.
type identity struct {
	Pid   int
	Start uint64
}

// processStart reads the start time (clock ticks since boot) of pid and
// reports whether the process is still running (not a zombie).
func processStart(pid int) (start uint64, running bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) is in parentheses and may contain
	// anything, so parse from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("parsing /proc/%d/stat: no command name", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, false, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parsing /proc/%d/stat start time: %w", pid, err)
	}
	state := string(f[0])
	return start, state != "Z" && state != "X", nil
}

// alive reports whether the process named by id still runs.
func (id identity) alive() bool {
	if id.Pid <= 0 {
		return false
	}
	start, running, err := processStart(id.Pid)
	return err == nil && running && start == id.Start
}

// maxCmdline bounds what we read of /proc/<pid>/cmdline: the runner's
// arguments are a command, its params and a unit directory.
const maxCmdline = 1 << 20

// isRunnerOf reports whether pid is the command runner of the unit in dir:
// its arguments select the runner for exactly that unit directory. Only one
// runner ever works on a unit, so a PID reused by any other process, or by
// the runner of another unit, does not match (quirk Q8 of docs/protocol.md §15.1).
func isRunnerOf(pid int, dir unit.Dir) bool {
	if pid <= 0 {
		return false
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCmdline))
	if err != nil {
		return false
	}
	runner, unitDir := false, false
	for _, arg := range bytes.Split(b, []byte{0}) {
		runner = runner || strings.EqualFold(string(arg), RunnerEntity)
		unitDir = unitDir || string(arg) == "unitdir="+string(dir)
	}
	return runner && unitDir
}

// exitWatch waits for a process that need not be our child, via a pidfd
// in Go's poller: no timer, and Close stops the wait.
type exitWatch struct {
	f *os.File
}

var errGone = errors.New("process is gone")

func watchExit(id identity) (*exitWatch, error) {
	fd, err := unix.PidfdOpen(id.Pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil, errGone
		}
		return nil, fmt.Errorf("opening pidfd of %d: %w", id.Pid, err)
	}
	w := &exitWatch{f: os.NewFile(uintptr(fd), "pidfd")}
	// The PID may have been reused between reading the identity and
	// opening the pidfd; re-check now that the pidfd pins the process.
	if !id.alive() {
		w.f.Close()
		return nil, errGone
	}
	return w, nil
}

// wait blocks until the process exits (nil) or the watch is closed.
func (w *exitWatch) wait() error {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n > 0
	})
}

func (w *exitWatch) close() { _ = w.f.Close() }

// reap collects the exit status of pid if it is our child (a runner this
// process started), so it does not linger as a zombie. Runners started by
// an earlier worker process are not our children (ECHILD): init reaps
// them. The caller knows the process has exited, so this never blocks.
func reap(pid int) {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// signalGroup sends sig to the process group led by pid; a group that is
// already gone is not an error.
func signalGroup(pid int, sig unix.Signal) error {
	if pid <= 1 {
		return fmt.Errorf("refusing to signal process group %d", pid)
	}
	if err := unix.Kill(-pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("sending %v to process group %d: %w", sig, pid, err)
	}
	return nil
}
