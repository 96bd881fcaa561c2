// Package launch is the shared start-up of the three binaries: it parses
// the command line or configuration files, runs one-shot commands
// (--help, --version, cert-*, validate), builds the logger, and runs the
// services until SIGINT or SIGTERM.
package launch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/buildinfo"
	"github.com/receptor-mesh/receptor/services/internal/logging"
	"github.com/receptor-mesh/receptor/services/internal/safedir"
	"github.com/receptor-mesh/receptor/services/tlsconf"
	"github.com/receptor-mesh/receptor/services/work/command"
)

// Program describes one binary.
type Program struct {
	Name string
	// Embedded, when set, is an upstream v1 YAML configuration that
	// --embedded-config runs (make run).
	Embedded []byte
	// Check validates cfg beyond the loader (TLS files, firewall rules...)
	// without starting anything.
	Check func(cfg *config.Config, log *slog.Logger) error
	// Run serves until ctx is cancelled. reload re-reads every
	// configuration source the program was started with and carries the
	// requests to do so (SIGHUP, a changed --config-v2 file).
	Run func(ctx context.Context, cfg *config.Config, log *slog.Logger, reload *config.Reloader) error
}

// Env is the process environment, injectable for tests.
type Env struct {
	Args    []string // without argv0
	Environ []string
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// Main runs p with the process's arguments and returns the exit code.
func Main(p Program) int {
	return p.Main(context.Background(), Env{
		Args: os.Args[1:], Environ: os.Environ(), Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
	})
}

// Main runs p in env and returns the exit code.
func (p Program) Main(ctx context.Context, env Env) int {
	args := env.Args
	// The detached command runner of work units re-executes the binary when
	// no receptor-runner sits next to it.
	if command.IsRunnerInvocation(args) {
		return command.RunnerMain(args)
	}
	validate := false
	if len(args) > 0 && args[0] == "validate" {
		validate, args = true, validateArgs(args[1:])
	}
	embedded := len(args) == 1 && args[0] == "--embedded-config" && p.Embedded != nil
	load := func() (*config.Config, error) {
		if embedded {
			return config.LoadV1("embedded config", p.Embedded, env.Environ)
		}
		return config.ParseArgs(args, env.Environ)
	}
	cfg, err := load()
	if err == nil && embedded && !validate {
		// The embedded config keeps its sockets in the data directory.
		err = safedir.MkdirAll(cfg.Node.DataDir)
	}
	if err != nil {
		fmt.Fprintf(env.Stdout, "Error: %v\n", err)
		return 1
	}
	switch {
	case cfg.Help:
		if err := config.WriteHelp(env.Stdout, p.Name, p.Embedded != nil); err != nil {
			fmt.Fprintf(env.Stderr, "Error: %v\n", err)
			return 1
		}
		return 0
	case cfg.BashCompletion:
		if err := config.WriteBashCompletion(env.Stdout, p.Name); err != nil {
			return 1
		}
		return 0
	case cfg.Exclusive != nil:
		if err := runExclusive(cfg.Exclusive, env); err != nil {
			fmt.Fprintf(env.Stdout, "Error: %v\n", err)
			return 1
		}
		return 0
	}

	level, err := logging.ParseLevel(cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(env.Stdout, "Error: %v\n", err)
		return 1
	}
	log, err := logging.NewFormat(env.Stdout, level, cfg.LogFormat)
	if err != nil {
		fmt.Fprintf(env.Stdout, "Error: %v\n", err)
		return 1
	}

	if p.Check != nil {
		if err := p.Check(cfg, log); err != nil {
			fmt.Fprintf(env.Stdout, "Error: %v\n", err)
			return 1
		}
	}
	if validate {
		fmt.Fprintf(env.Stdout, "configuration is valid\n%s", cfg.Summary())
		return 0
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	requests, stopRequests, err := reloadRequests(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(env.Stdout, "Error: %v\n", err)
		return 1
	}
	defer stopRequests()
	reload := &config.Reloader{Load: load, Requests: requests}
	if addr := envValue(env.Environ, "RECEPTOR_PPROF"); addr != "" {
		stopPprof, err := servePprof(ctx, addr, log)
		if err != nil {
			fmt.Fprintf(env.Stdout, "Error: RECEPTOR_PPROF: %v\n", err)
			return 1
		}
		defer stopPprof()
	}
	if err := p.Run(ctx, cfg, log, reload); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(env.Stdout, "Error: %v\n", err)
		return 1
	}
	return 0
}

// validateArgs turns the arguments of `validate` into a command line:
// leading file names (validate FILE...) become -c FILE.
func validateArgs(args []string) []string {
	var out []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		out = append(out, "-c", args[0])
		args = args[1:]
	}
	return append(out, args...)
}

// runExclusive runs version and the certificate commands.
func runExclusive(ex *config.Exclusive, env Env) error {
	switch {
	case ex.CertInit != nil:
		return tlsconf.CertInit(tlsconf.CertInitOptions(*ex.CertInit))
	case ex.CertMakeReq != nil:
		return tlsconf.CertMakeReq(tlsconf.CertMakeReqOptions(*ex.CertMakeReq))
	case ex.CertSignReq != nil:
		return tlsconf.CertSignReq(tlsconf.CertSignReqOptions(*ex.CertSignReq), env.Stdin, env.Stdout)
	default: // version
		fmt.Fprintln(env.Stdout, buildinfo.Get().Version)
		return nil
	}
}
