package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// proc is one receptor process on loopback, owned by the driver: started
// with its own directory and log file, stopped with SIGTERM (then SIGKILL).
type proc struct {
	id   string
	dir  string
	log  *os.File
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait result, set before done closes
}

// startProc runs bin with args; stdout and stderr go to <dir>/<id>.log.
// extraEnv (k=v) is added to the environment, e.g. RECEPTOR_PPROF.
func startProc(logger *slog.Logger, bin, id, dir string, args []string, extraEnv []string) (*proc, error) {
	f, err := os.Create(filepath.Join(dir, id+".log"))
	if err != nil {
		return nil, fmt.Errorf("log file for %s: %w", id, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s (%s): %w", id, bin, err)
	}
	logger.Debug("started", "node", id, "pid", cmd.Process.Pid, "args", strings.Join(args, " "))
	p := &proc{id: id, dir: dir, log: f, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to 10 s, then SIGKILLs the process itself
// (only the PID we started).
func (p *proc) stop() {
	defer p.log.Close()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail is the end of the process log, for error messages.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// ports hands out loopback ports free a moment ago, never twice.
type ports struct {
	mu   sync.Mutex
	used map[int]bool
}

func (ps *ports) next() (int, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.used == nil {
		ps.used = map[int]bool{}
	}
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("reserve a port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if !ps.used[port] {
			ps.used[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no free port in 100 tries")
}

// grpcUnix opens a gRPC client connection over a Unix socket.
func grpcUnix(path string) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("grpc client for %s: %w", path, err)
	}
	return cc, nil
}

// waitFor polls cond every 20 ms until it holds, ctx ends, or p exits.
func waitFor(ctx context.Context, what string, p *proc, cond func(context.Context) bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if cond(ctx) {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s: node %s exited (%v); log:\n%s", what, p.id, p.err, p.logTail())
		}
		select {
		case <-ctx.Done():
			tail := ""
			if p != nil {
				tail = "; log:\n" + p.logTail()
			}
			return fmt.Errorf("%s: %w%s", what, ctx.Err(), tail)
		case <-t.C:
		}
	}
}

// rssKiB reads VmRSS of pid from /proc.
func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kib); err != nil {
				return 0, fmt.Errorf("parse VmRSS %q of pid %d: %w", rest, pid, err)
			}
			return kib, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
