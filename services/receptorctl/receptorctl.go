// Package receptorctl is the Go receptorctl: the command-line client of a
// receptor node (cmd/receptorctl is its main). It has the Python
// receptorctl's verbs, arguments, flags and default output text, so that
// scripts written for it keep working, and adds machine-readable output
// (-o json|yaml|table) on every verb, exit codes per failure class
// (exitcode.go), bulk selection of units, resumable results and shell
// completion. It speaks the receptorctl control protocol through the one
// control client (services/control/client) over a unix socket, TCP or TLS
// (--socket, so it works against upstream nodes too), or the router's
// gRPC ControlService (--grpc). docs/receptorctl.md is the user's page.
//
// Every verb lives in its own file and registers itself with addVerb in an
// init function, under the root or under a group ("work"); a new verb
// group such as "watch" is one more file.
package receptorctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/status"

	"github.com/receptor-mesh/receptor/services/internal/buildinfo"
)

// Stdio is where a run reads and writes; IsTerminal reports whether a
// stream is a terminal (the progress bar and connect's raw mode need one).
type Stdio struct {
	In         io.Reader
	Out, Err   io.Writer
	IsTerminal func(f any) bool
}

// app is one invocation: the global flags and the backend, dialled when a
// verb first needs it.
type app struct {
	stdio Stdio

	socket, grpcAddr   string
	config, tlsClient  string
	rootCAs, key, cert string
	insecure           boolFlag
	output             string
	timeout            time.Duration

	be     backend
	cancel context.CancelFunc
}

// verbs registered by the verb files: parent "" is the root, else the
// name of a group command.
var verbs []verb

type verb struct {
	parent string
	make   func(a *app) *cobra.Command
}

// addVerb registers a verb; verb files call it from init.
func addVerb(parent string, make func(a *app) *cobra.Command) {
	verbs = append(verbs, verb{parent: parent, make: make})
}

// Main runs receptorctl with args (without the program name) and returns
// the exit code.
func Main(args []string, stdio Stdio) int {
	a := &app{stdio: stdio}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdio.In)
	root.SetOut(stdio.Out)
	root.SetErr(stdio.Err)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := root.ExecuteContext(ctx)
	if a.cancel != nil {
		a.cancel()
	}
	if a.be != nil {
		_ = a.be.Close()
	}
	if err == nil {
		return ExitOK
	}
	code := exitCode(err, ExitError)
	var ee *exitError
	if errors.As(err, &ee) && ee.quiet {
		return code
	}
	a.printError(err, code)
	return code
}

// printError writes a failure to stderr: "ERROR: <text>" as the Python
// receptorctl, or one JSON/YAML object with the text, class and exit code.
func (a *app) printError(err error, code int) {
	msg := errorText(err)
	switch a.output {
	case "json", "yaml":
		_ = a.writeValue(a.stdio.Err, map[string]any{"error": msg, "class": className(code), "exit_code": code}, a.output == "json")
	default:
		fmt.Fprintf(a.stdio.Err, "ERROR: %s\n", msg)
	}
}

// errorText is an error's text for the user, with a gRPC status's message
// alone (the upstream text) in place of its "rpc error: ..." form, as the
// control protocol would print it.
func errorText(err error) string {
	var ee *exitError
	if errors.As(err, &ee) {
		err = ee.err
	}
	text := err.Error()
	var se interface {
		error
		GRPCStatus() *status.Status
	}
	if errors.As(err, &se) {
		// "rpc error: code = NotFound desc = <text>" -> "<text>"
		text = strings.Replace(text, se.Error(), se.GRPCStatus().Message(), 1)
	}
	return text
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "receptorctl",
		Short: "Command-line client of a receptor node",
		Long: `receptorctl controls a receptor node: mesh status and diagnostics, and units of work.

It speaks the receptorctl control protocol over --socket (unix socket, tcp:// or tls://;
upstream nodes too) or the node's gRPC API over --grpc (unix socket, or TCP with mTLS).
Output: the Python receptorctl's text by default; -o json|yaml|table on every verb.
Exit codes: 0 ok, 1 error, 2 ping failed, 3/4/5 reload failed, 64 usage, 66 not found,
69 unreachable, 75 timeout, 76 watch overrun, 77 refused, 101 work submit failed
(docs/receptorctl.md).`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		TraverseChildren:  true,
		Version:           buildinfo.Get().Version,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetVersionTemplate("receptorctl {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&a.socket, "socket", os.Getenv("RECEPTORCTL_SOCKET"),
		"Control socket address: a unix socket path (or unix:PATH), tcp://HOST:PORT or tls://HOST:PORT [env RECEPTORCTL_SOCKET]")
	pf.StringVar(&a.grpcAddr, "grpc", os.Getenv("RECEPTORCTL_GRPC"),
		"gRPC API address instead of --socket: unix:///PATH, unix:PATH or HOST:PORT (TLS with --rootcas/--cert/--key) [env RECEPTORCTL_GRPC]")
	pf.StringVarP(&a.config, "config", "c", os.Getenv("RECEPTORCTL_CONFIG"),
		"Config filename configured for receptor (with --tls-client: take TLS settings from it) [env RECEPTORCTL_CONFIG]")
	pf.StringVar(&a.tlsClient, "tls-client", os.Getenv("RECEPTORCTL_TLSCLIENT"),
		"TLS client name specified in config [env RECEPTORCTL_TLSCLIENT]")
	pf.StringVar(&a.rootCAs, "rootcas", "", "Root CA bundle to use instead of system trust when connecting with tls")
	pf.StringVar(&a.key, "key", "", "Client private key filename")
	pf.StringVar(&a.cert, "cert", "", "Client certificate filename")
	pf.Var(&a.insecure, "insecureskipverify", "Accept any server cert (true/false)")
	pf.StringVarP(&a.output, "output", "o", "", "Output format: json, yaml or table (default: receptorctl's text)")
	pf.DurationVar(&a.timeout, "timeout", 0, "Give up after this long (e.g. 30s; 0: no limit)")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json", "yaml", "table"}, cobra.ShellCompDirectiveNoFileComp))
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		switch a.output {
		case "", "text", "json", "yaml", "table":
		default:
			return usageError(fmt.Errorf("invalid output format %q: want json, yaml or table", a.output))
		}
		return nil
	}

	groups := map[string]*cobra.Command{"": root}
	for _, v := range verbs {
		cmd := v.make(a)
		parent, ok := groups[v.parent]
		if !ok {
			parent = &cobra.Command{Use: v.parent, Short: groupHelp[v.parent], Args: noArgs, TraverseChildren: true,
				RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() }}
			groups[v.parent] = parent
			root.AddCommand(parent)
		}
		if cmd.Args == nil {
			cmd.Args = noArgs
		}
		cmd.Args = usageArgs(cmd.Args)
		parent.AddCommand(cmd)
	}
	return root
}

// groupHelp is the help line of verb groups.
var groupHelp = map[string]string{
	"work":  "Commands related to unit-of-work processing",
	"watch": "Follow mesh and work events as they happen (needs --grpc)",
}

var noArgs = cobra.NoArgs

// usageArgs makes argument errors usage errors.
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError(err)
		}
		return nil
	}
}

// ctx is the context of a verb's work, bounded by --timeout.
func (a *app) ctx(cmd *cobra.Command) context.Context {
	ctx := cmd.Context()
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		a.cancel = cancel
	}
	return ctx
}

// backend dials the node (once) and, as the Python receptorctl does,
// compares its version with ours, warning on stderr when they differ.
func (a *app) backend(ctx context.Context) (backend, string, error) {
	if a.be != nil {
		return a.be, "", nil
	}
	tlsConf, err := a.tlsConfig()
	if err != nil {
		return nil, "", err
	}
	var be backend
	switch {
	case a.grpcAddr != "" && a.socket != "":
		return nil, "", usageError(errors.New("give --socket or --grpc, not both"))
	case a.grpcAddr != "":
		be, err = newGRPCBackend(a.grpcAddr, tlsConf)
	case a.socket != "":
		be, err = newSocketBackend(expandHome(a.socket), tlsConf)
	default:
		return nil, "", usageError(errors.New("Missing option '--socket' (or --grpc).")) //nolint:staticcheck // receptorctl's text
	}
	if err != nil {
		return nil, "", err
	}
	a.be = be
	version, err := a.be.NodeVersion(ctx)
	if err != nil {
		return nil, "", err
	}
	if version != buildinfo.Get().Version {
		fmt.Fprintln(a.stdio.Err, "Warning: receptorctl and receptor are different versions, they may not be compatible")
	}
	return a.be, version, nil
}

// expandHome expands a leading "~/" of a unix socket path, as receptorctl
// does.
func expandHome(addr string) string {
	for _, prefix := range []string{"unix://", "unix:", ""} {
		if rest, ok := strings.CutPrefix(addr, prefix+"~/"); ok {
			if home, err := os.UserHomeDir(); err == nil {
				return prefix + home + "/" + rest
			}
		}
	}
	return addr
}

// boolFlag is a boolean flag that takes a value (--insecureskipverify
// true), as the Python receptorctl's does.
type boolFlag bool

var _ pflag.Value = (*boolFlag)(nil)

func (b *boolFlag) String() string { return fmt.Sprint(bool(*b)) }
func (b *boolFlag) Type() string   { return "bool" }
func (b *boolFlag) Set(s string) error {
	switch strings.ToLower(s) {
	case "1", "true", "t", "yes", "y", "on":
		*b = true
	case "0", "false", "f", "no", "n", "off", "":
		*b = false
	default:
		return fmt.Errorf("%q is not a valid boolean", s)
	}
	return nil
}
