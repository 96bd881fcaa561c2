package apierr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestCatalogue(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode codes.Code
		wantText string
	}{
		{"not found verbatim", NotFound("unknown work unit abc12345"), codes.NotFound, "unknown work unit abc12345"},
		{"unknown tls config", UnknownTLSConfig("tlsclient"), codes.NotFound, "unknown TLS config tlsclient"},
		{"unknown connection", UnknownConnection("c7"), codes.NotFound, "unknown connection c7"},
		{"no work agent", NoWorkAgent(), codes.Unavailable, textNoWorkAgent},
		{"service in use", ServiceInUse("control"), codes.AlreadyExists, "service control is already listening"},
		{"invalid argument", InvalidArgument("hops_to_live", "must be at most 30"), codes.InvalidArgument, "invalid hops_to_live: must be at most 30"},
		{"bad request verbatim", BadRequest("ttl option is intended for remote work only"), codes.InvalidArgument, "ttl option is intended for remote work only"},
		{"too large", TooLarge("data", 70000, 65499), codes.InvalidArgument, "invalid data: 70000 bytes exceeds the limit of 65499 bytes"},
		{"signature", SignatureRejected("could not verify signature: signature is empty"), codes.PermissionDenied, "could not verify signature: signature is empty"},
		{"unavailable", Unavailable("nodeb", errors.New("no route to node")), codes.Unavailable, "no route to node"},
		{"unavailable nil cause", Unavailable("nodeb", nil), codes.Unavailable, "unknown error"},
		{"unavailable keeps status text", Unavailable("nodeb", status.Error(codes.Unknown, "write error sending to nodeb: EOF")), codes.Unavailable, "write error sending to nodeb: EOF"},
		{"mesh timeout", MeshFailure("nodeb", "timeout"), codes.DeadlineExceeded, "timeout"},
		{"timeout", Timeout("nodeb"), codes.DeadlineExceeded, "timeout"},
		{"cancelled", Cancelled("nodeb"), codes.Canceled, "user cancelled"},
		{"shutdown", Shutdown(""), codes.Unavailable, "netceptor shutdown"},
		{"context cancelled", ContextEnded(context.Canceled), codes.Canceled, "context canceled"},
		{"context deadline", ContextEnded(fmt.Errorf("watch: %w", context.DeadlineExceeded)), codes.DeadlineExceeded, "watch: context deadline exceeded"},
		{"work agent unreachable", WorkAgentUnreachable("unix:/run/w.sock", status.Error(codes.Unavailable, "connection refused")), codes.Unavailable,
			"work agent unavailable: cannot reach unix:/run/w.sock: connection refused"},
		{"work agent unreachable, transport text", WorkAgentUnreachable("unix:/run/w.sock", status.Error(codes.Unavailable,
			`connection error: desc = "transport: Error while dialing: dial unix /run/w.sock: connect: connection refused"`)), codes.Unavailable,
			"work agent unavailable: cannot reach unix:/run/w.sock: connection refused"},
		{"work agent unreachable, not wrapped twice", WorkAgentUnreachable("unix:/run/w.sock",
			WorkAgentUnreachable("unix:/run/w.sock", status.Error(codes.Unavailable, "connection refused"))), codes.Unavailable,
			"work agent unavailable: cannot reach unix:/run/w.sock: connection refused"},
		{"work agent closing", WorkAgentClosing(), codes.Unavailable, "work agent is closing"},
		{"work unavailable verbatim", WorkUnavailable("remote work is not available: no mesh connection"), codes.Unavailable, "remote work is not available: no mesh connection"},
		{"unauthenticated", Unauthenticated("authentication failed: unknown bearer token"), codes.Unauthenticated, "authentication failed: unknown bearer token"},
		{"unclassified verbatim", Unclassified("disk full"), codes.Internal, "disk full"},
		{"mesh cancelled", MeshFailure("nodeb", "user cancelled"), codes.Canceled, "user cancelled"},
		{"mesh firewall", MeshFailure("nodeb", "blocked by firewall"), codes.PermissionDenied, "blocked by firewall"},
		{"mesh no route", MeshFailure("nodeb", "no route to node"), codes.Unavailable, "no route to node"},
		{"reload 3", ReloadFailed("a non-reloadable config action 'node' was removed. Must restart receptor for changes to take effect", 3), codes.FailedPrecondition,
			"a non-reloadable config action 'node' was removed. Must restart receptor for changes to take effect ERRORCODE 3"},
		{"internal", Internal(fmt.Errorf("open unit dir %q: %w", "/x", errors.New("denied"))), codes.Internal, `internal error: open unit dir "/x": denied`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, ok := status.FromError(tt.err)
			if !ok {
				t.Fatalf("%v is not a gRPC status", tt.err)
			}
			if st.Code() != tt.wantCode {
				t.Errorf("code = %v, want %v", st.Code(), tt.wantCode)
			}
			if got := Text(tt.err); got != tt.wantText {
				t.Errorf("Text = %q, want %q", got, tt.wantText)
			}
			if strings.HasPrefix(Text(tt.err), "ERROR") {
				t.Errorf("Text %q carries the ERROR prefix", Text(tt.err))
			}
		})
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"plain error", errors.New("boom"), "boom"},
		{"deadline", fmt.Errorf("ping: %w", context.DeadlineExceeded), "timeout"},
		{"cancelled", context.Canceled, "user cancelled"},
		{"status", status.Error(codes.NotFound, "unknown work unit x"), "unknown work unit x"},
		{"wrapped status", fmt.Errorf("calling agent: %w", NotFound("unknown work unit x")), "unknown work unit x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Text(tt.err); got != tt.want {
				t.Errorf("Text(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestDetails(t *testing.T) {
	if got := Node(Unavailable("nodeb", errors.New("no route to node"))); got != "nodeb" {
		t.Errorf("Node(Unavailable) = %q, want nodeb", got)
	}
	if got := Node(MeshFailure("", "timeout")); got != "" {
		t.Errorf("Node without node = %q, want empty", got)
	}
	if got := Node(errors.New("x")); got != "" {
		t.Errorf("Node(plain) = %q", got)
	}
	st := status.Convert(InvalidArgument("node", "must not be empty"))
	var found bool
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			v := br.GetFieldViolations()
			found = len(v) == 1 && v[0].GetField() == "node" && v[0].GetDescription() == "must not be empty"
		}
	}
	if !found {
		t.Errorf("InvalidArgument details = %v, want one BadRequest violation for node", st.Details())
	}
	st = status.Convert(ReloadFailed("x", 4))
	found = false
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			found = info.GetReason() == ReasonReloadFailed && info.GetMetadata()["errorcode"] == "4"
		}
	}
	if !found {
		t.Errorf("ReloadFailed details = %v, want ErrorInfo errorcode 4", st.Details())
	}
}

func TestReloadErrorCode(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		want   int
		wantOK bool
	}{
		{"code 3", ReloadFailed("changed", 3), 3, true},
		{"code 4 from upstream text", errors.New("no configuration file was provided, reload function not set ERRORCODE 4"), 4, true},
		{"no suffix", errors.New("reload failed"), 0, false},
		{"empty digits", errors.New("x ERRORCODE "), 0, false},
		{"not digits", errors.New("x ERRORCODE 4a"), 0, false},
		{"sign", errors.New("x ERRORCODE -4"), 0, false},
		{"huge", errors.New("x ERRORCODE 99999999999999999999"), 0, false},
		{"nil", nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ReloadErrorCode(tt.err)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ReloadErrorCode(%v) = %d, %v; want %d, %v", tt.err, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// FuzzReloadErrorCode feeds arbitrary status texts (they come from the
// network) to the suffix parser: it must not panic, and a code it reports
// must round-trip through ReloadFailed.
func FuzzReloadErrorCode(f *testing.F) {
	for _, s := range []string{"x ERRORCODE 3", "ERRORCODE 4", " ERRORCODE ", "a ERRORCODE 12 ERRORCODE 5", "\x00 ERRORCODE 0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		n, ok := ReloadErrorCode(errors.New(text))
		if !ok {
			return
		}
		if n < 0 {
			t.Fatalf("negative code %d from %q", n, text)
		}
		if got, ok := ReloadErrorCode(ReloadFailed("x", n)); !ok || got != n {
			t.Fatalf("round trip of %d gave %d, %v", n, got, ok)
		}
	})
}
