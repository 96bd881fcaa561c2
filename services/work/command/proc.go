package command

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// pidFile records which process is a unit's runner, so that a restarted
// worker can tell the runner from an unrelated process that reused its PID
// (quirk Q8).
const pidFile = "runner.pid"

// identity names one process for its lifetime: PID plus kernel start time.
type identity struct {
	Pid   int    `json:"Pid"`
	Start uint64 `json:"Start"`
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

func writeIdentity(path string, id identity) error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing runner identity: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing runner identity: %w", err)
	}
	return nil
}

func readIdentity(path string) (identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return identity{}, fmt.Errorf("reading runner identity: %w", err)
	}
	var id identity
	if len(b) > 4096 {
		return identity{}, fmt.Errorf("reading runner identity %s: file too large", path)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return identity{}, fmt.Errorf("reading runner identity %s: %w", path, err)
	}
	return id, nil
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
