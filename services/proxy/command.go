package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/google/shlex"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// hangupGrace is how long a command may take to exit after its terminal
// hung up before its process group is killed.
const hangupGrace = 2 * time.Second

// CommandService is the command-service entity: a mesh stream listener
// (advertised with the "Command Service" tag, as upstream's) that runs the
// command for every connection, on a pseudo-terminal whose input is what
// the peer sends and whose output (stdout and stderr, with the terminal's
// echo) goes back to it. When the command exits the connection closes;
// when the peer closes or half-closes, the terminal hangs up (SIGHUP to
// the command; SIGKILL to its process group after 2 s).
type CommandService struct {
	network mesh.PacketNetwork
	cfg     config.CommandService
	args    []string
	tls     *tls.Config
	opts    Options
}

// NewCommandService checks cfg (the command is split with shell-like
// quoting, as work-command params) and resolves its TLS name.
func NewCommandService(network mesh.PacketNetwork, store *tlsconf.Store, cfg config.CommandService, opts Options) (*CommandService, error) {
	fail := func(err error) (*CommandService, error) {
		return nil, fmt.Errorf("command-service %s: %w", cfg.Service, err)
	}
	if err := checkService(cfg.Service); err != nil {
		return fail(err)
	}
	args, err := shlex.Split(cfg.Command)
	if err != nil {
		return fail(fmt.Errorf("command %q: %w", cfg.Command, err))
	}
	if len(args) == 0 {
		return fail(errors.New("command is empty"))
	}
	tlsCfg, err := serverTLS(store, cfg.TLS)
	if err != nil {
		return fail(err)
	}
	return &CommandService{network: network, cfg: cfg, args: args, tls: tlsCfg, opts: opts.withDefaults()}, nil
}

// Kind implements Proxy.
func (c *CommandService) Kind() string { return "command-service" }

// Start implements Proxy.
func (c *CommandService) Start(ctx context.Context) (func(), error) {
	ln, err := stream.Listen(ctx, c.network, c.cfg.Service, stream.ListenOptions{
		TLS: c.tls, Advertise: true, Logger: c.opts.Logger,
		Tags: map[string]string{"type": "Command Service"},
	})
	if err != nil {
		return nil, fmt.Errorf("command-service: listen on mesh service %q: %w", c.cfg.Service, err)
	}
	log := c.opts.Logger.With("proxy", c.Kind(), "service", c.cfg.Service)
	log.Info("command service listening", "command", c.cfg.Command, "tls", c.tls != nil)
	f := &forwarder{ln: ln, opts: c.opts, log: log, serve: c.serve}
	return f.start(ctx), nil
}

// serve runs the command for conn until either ends.
func (c *CommandService) serve(ctx context.Context, conn net.Conn) {
	log := c.opts.Logger.With("proxy", c.Kind(), "service", c.cfg.Service, "from", conn.RemoteAddr())
	cmd := exec.Command(c.args[0], c.args[1:]...)
	term, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		log.Error("command service: cannot start the command", "command", c.cfg.Command, "err", err)
		_ = conn.Close()
		return
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	hangUp := sync.OnceFunc(func() {
		_ = conn.Close()
		_ = term.Close()
	})
	ended := make(chan struct{}, 2)
	var wg sync.WaitGroup
	// Command to peer: ends when the command has exited and its output is
	// read (the terminal then reads EIO).
	wg.Go(func() {
		_, _ = io.Copy(conn, term)
		ended <- struct{}{}
	})
	// Peer to command: ends when the peer closes or half-closes.
	wg.Go(func() {
		_, _ = io.Copy(term, conn)
		ended <- struct{}{}
	})
	select {
	case <-ended:
	case <-ctx.Done():
	}
	hangUp()
	select {
	case <-exited:
	case <-time.After(hangupGrace):
		// pty.Start made the command a session (and process group) leader.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}
	wg.Wait()
	log.Debug("command service: connection done", "exit", cmd.ProcessState.String())
}
