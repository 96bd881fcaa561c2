package receptorctl

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receptor-mesh/receptor/services/control/client"
)

// Exit codes. 0-5 and 101 are the Python receptorctl's (scripts written for
// it keep working); the others name a class of failure so that scripts can
// tell them apart, following sysexits(3) where a code fits. The table is
// documented in docs/receptorctl.md; keep the two in step.
const (
	ExitOK           = 0   // success
	ExitError        = 1   // a failure in no class below; a unit that ended Failed (work results, submit -f)
	ExitPingFailed   = 2   // ping: at least one ping got no reply
	ExitReload3      = 3   // reload: a non-reloadable entity changed (ERRORCODE 3)
	ExitReload4      = 4   // reload: no or unreadable configuration (ERRORCODE 4)
	ExitReload5      = 5   // reload: any other reload failure
	ExitUsage        = 64  // bad command line or arguments, or the node rejected them as invalid
	ExitNotFound     = 66  // unknown work unit, work type, TLS config or node service
	ExitUnreachable  = 69  // cannot reach the control socket, the gRPC server, the node or its work agent
	ExitTimeout      = 75  // a timeout: ping, mesh dial, the --timeout of a request
	ExitWatchOverrun = 76  // watch: the node ended the stream because the client read too slowly (RESOURCE_EXHAUSTED)
	ExitRefused      = 77  // permission denied: the authorizer, a work signature, a TLS handshake
	ExitSubmit       = 101 // work submit failed for a reason in no class above (Python's code)
)

// className names an exit code in machine-readable error output.
func className(code int) string {
	switch code {
	case ExitUsage:
		return "usage"
	case ExitNotFound:
		return "not_found"
	case ExitUnreachable:
		return "unreachable"
	case ExitTimeout:
		return "timeout"
	case ExitRefused:
		return "refused"
	case ExitPingFailed:
		return "ping_failed"
	case ExitReload3, ExitReload4, ExitReload5:
		return "reload_failed"
	case ExitSubmit:
		return "submit_failed"
	case ExitWatchOverrun:
		return "watch_overrun"
	}
	return "error"
}

// exitError carries the exit code of a failure. quiet: the message was
// already printed (as ping and reload do).
type exitError struct {
	code  int
	err   error
	quiet bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageError marks err as a command-line mistake (ExitUsage).
func usageError(err error) error { return withCode(ExitUsage, err) }

// exitCode is the exit code of err: its own when it carries one, else the
// class of a gRPC status, of a transport error, or of an upstream error text
// (the control protocol's "ERROR: " replies); fallback when none applies.
func exitCode(err error, fallback int) int {
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK && st.Code() != codes.Unknown {
		switch st.Code() {
		case codes.NotFound:
			return ExitNotFound
		case codes.PermissionDenied, codes.Unauthenticated:
			return ExitRefused
		case codes.Unavailable:
			if c := textClass(st.Message()); c != 0 {
				return c
			}
			return ExitUnreachable
		case codes.DeadlineExceeded:
			return ExitTimeout
		case codes.InvalidArgument, codes.OutOfRange:
			return ExitUsage
		}
		if c := textClass(st.Message()); c != 0 {
			return c
		}
		return fallback
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return ExitTimeout
	}
	var re *client.RemoteError
	if errors.As(err, &re) {
		if c := textClass(re.Message); c != 0 {
			return c
		}
		return fallback
	}
	if errors.Is(err, syscall.EACCES) || errors.Is(err, fs.ErrPermission) {
		return ExitRefused
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return ExitUnreachable
	}
	if c := textClass(err.Error()); c != 0 {
		return c
	}
	return fallback
}

// textClass classifies an error text of a node (the part after "ERROR: ",
// the same texts for upstream nodes and ours, docs/protocol.md §12.5); 0
// when it names no class.
func textClass(text string) int {
	has := func(s ...string) bool {
		for _, x := range s {
			if strings.Contains(text, x) {
				return true
			}
		}
		return false
	}
	switch {
	case has("permission denied", "authentication required", "could not verify signature", "token not valid", "token audience did not match",
		"signature is empty", "blocked by firewall", "certificate", "tls: "):
		return ExitRefused
	case has("unknown work unit", "unknown work type", "unknown TLS config", "unknown connection", "service unknown"):
		return ExitNotFound
	case text == "timeout" || has("i/o timeout", "deadline exceeded", "timed out"):
		return ExitTimeout
	case has("no route to node", "work agent", "connection refused", "no such file or directory",
		"netceptor shutdown", "unreachable", "connection reset", "broken pipe"):
		return ExitUnreachable
	case has("requires a unit ID", "does not take parameters", "bad command", "Unknown command",
		"ttl option is intended", "invalid duration", "provided but not allowed", "must be a string", "missing"):
		return ExitUsage
	}
	return 0
}
