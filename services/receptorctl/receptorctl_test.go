package receptorctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/receptor-mesh/receptor/services/control/client"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Python's json.dumps(indent=4, sort_keys=True) and repr, as receptorctl
// prints them (expected values from Python 3.11).
func TestPythonFormats(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1", "1"}, {"1.0", "1.0"}, {"1.5", "1.5"}, {"0.0001", "0.0001"}, {"0.00001", "1e-05"},
		{"1e16", "1e+16"}, {"123456789012345678901234", "123456789012345678901234"}, {"1.5e300", "1.5e+300"},
	} {
		if got := pyNumber(json.Number(tc.in)); got != tc.want {
			t.Errorf("pyNumber(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	v, err := decodeJSON([]byte(`{"b":[1,2.5,{"x":null}],"a":"é\"\n😀","c":{},"d":[],"e":true}`))
	if err != nil {
		t.Fatal(err)
	}
	want := "{\n    \"a\": \"\\u00e9\\\"\\n\\ud83d\\ude00\",\n    \"b\": [\n        1,\n        2.5,\n        {\n            \"x\": null\n        }\n    ],\n    \"c\": {},\n    \"d\": [],\n    \"e\": true\n}"
	if got := pyJSON(v); got != want {
		t.Errorf("pyJSON:\n%s\nwant\n%s", got, want)
	}
	tags, _ := decodeJSON([]byte(`{"type":"Control Service","q":"it's","n":1,"z":null}`))
	if got, want := pyRepr(tags), `{'n': 1, 'q': "it's", 'type': 'Control Service', 'z': None}`; got != want {
		t.Errorf("pyRepr = %s, want %s", got, want)
	}
	if got, want := pyReprString("a'b\"c\\\t"), `'a\'b"c\\\t'`; got != want {
		t.Errorf("pyReprString = %s, want %s", got, want)
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{&client.RemoteError{Message: "unknown work unit x"}, ExitNotFound},
		{&client.RemoteError{Message: "permission denied: uid:5 (role reader) may not work submit"}, ExitRefused},
		{&client.RemoteError{Message: "authentication required: anonymous callers may not status"}, ExitRefused},
		{&client.RemoteError{Message: "no route to node"}, ExitUnreachable},
		{&client.RemoteError{Message: "ttl option is intended for remote work only"}, ExitUsage},
		{&client.RemoteError{Message: "something else"}, ExitSubmit},
		{status.Error(codes.NotFound, "x"), ExitNotFound},
		{status.Error(codes.PermissionDenied, "x"), ExitRefused},
		{status.Error(codes.Unavailable, "x"), ExitUnreachable},
		{status.Error(codes.DeadlineExceeded, "x"), ExitTimeout},
		{status.Error(codes.InvalidArgument, "x"), ExitUsage},
		{usageError(errors.New("x")), ExitUsage},
		{errors.New("whatever"), ExitSubmit},
	} {
		if got := exitCode(tc.err, ExitSubmit); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	wrapped := errors.Join(errors.New("Failed to start work unit"), status.Error(codes.NotFound, "unknown work type t"))
	if got := errorText(wrapped); strings.Contains(got, "rpc error") || !strings.Contains(got, "unknown work type t") {
		t.Errorf("errorText = %q", got)
	}
}

func TestProgressBar(t *testing.T) {
	if got, want := renderBar("id", 5<<20, 10<<20, 10), "id [=====>    ]  50%  5.0 MiB / 10.0 MiB"; got != want {
		t.Errorf("renderBar = %q, want %q", got, want)
	}
	if got := renderBar("id", 11<<20, 10<<20, 10); got != "id 11.0 MiB" {
		t.Errorf("renderBar past total = %q", got)
	}
	if newProgressBar(&bytes.Buffer{}, "id", progressMin-1) != nil {
		t.Error("a bar for a small result")
	}
	var out, errw bytes.Buffer
	terms := map[any]bool{}
	a := &app{stdio: Stdio{Out: &out, Err: &errw, IsTerminal: func(f any) bool { return terms[f] }}}
	for _, tc := range []struct {
		errTerm, outTerm bool
		mode, output     string
		want             bool
	}{
		{true, false, "auto", "", true},
		{true, true, "auto", "", false},
		{false, false, "auto", "", false},
		{true, false, "auto", "json", false},
		{false, false, "always", "", true},
		{true, false, "never", "", false},
	} {
		terms[&errw], terms[&out] = tc.errTerm, tc.outTerm
		a.output = tc.output
		if got := a.showProgress(tc.mode); got != tc.want {
			t.Errorf("showProgress %+v = %v", tc, got)
		}
	}
}

func TestWorkParams(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "p")
	if err := os.WriteFile(f, []byte("from file"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := workParams([]string{"params=-x", "k=@" + f, "lit=@@y", "eq=a=b"}, []string{"1", "2"}, submitRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"params": "-x 1 2", "k": "from file", "lit": "@@y", "eq": "a=b"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("param %s = %q, want %q", k, got[k], v)
		}
	}
	for _, bad := range [][]string{{"novalue"}, {"node=x"}, {"k=@" + filepath.Join(dir, "none")}} {
		if _, err := workParams(bad, nil, submitRequest{}); exitCode(err, 0) != ExitUsage {
			t.Errorf("workParams(%q) = %v, want a usage error", bad, err)
		}
	}
	if _, err := workParams([]string{"ttl=1"}, nil, submitRequest{TTL: "5s"}); err == nil {
		t.Error("ttl both as flag and param accepted")
	}
	states, err := parseStates([]string{"failed,Succeeded", " running "})
	if err != nil || strings.Join(states, " ") != "Failed Succeeded Running" {
		t.Errorf("parseStates = %v %v", states, err)
	}
	if _, err := parseStates([]string{"done"}); exitCode(err, 0) != ExitUsage {
		t.Errorf("parseStates(done) = %v", err)
	}
}

// TestUsageWithoutNode: command-line mistakes are found before any
// connection, with exit 64 and receptorctl's texts.
func TestUsageWithoutNode(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status"}, ExitUsage, "--socket"},
		{[]string{"--socket", "/nonexistent/x.sock", "status"}, ExitUnreachable, "Socket path does not exist"},
		{[]string{"--socket", "/x", "ping"}, ExitUsage, "accepts 1 arg"},
		{[]string{"--socket", "/x", "work", "submit", "cat"}, ExitUsage, "Must provide one of --payload"},
		{[]string{"--socket", "/x", "work", "submit", "cat", "-n", "-l", "x"}, ExitUsage, "Cannot provide more than one"},
		{[]string{"--socket", "/x", "--nope"}, ExitUsage, "unknown flag"},
		{[]string{"--socket", "http://x:1", "status"}, ExitUsage, "Invalid socket address"},
		{[]string{"--config", "c", "--cert", "x", "--socket", "/x", "status"}, ExitUsage, "Cannot specify both config"},
		{[]string{"--socket", "/x", "--socket", "/y", "--grpc", "unix:///z", "status"}, ExitUsage, "not both"},
		{[]string{"completion", "bash"}, ExitOK, "receptorctl"},
	} {
		var out, errw bytes.Buffer
		code := Main(tc.args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errw})
		if code != tc.code || !strings.Contains(out.String()+errw.String(), tc.want) {
			t.Errorf("%q: exit %d, %q %q; want %d and %q", tc.args, code, out.String()[:min(out.Len(), 200)], errw.String(), tc.code, tc.want)
		}
	}
}

// A watch ends with exit 0 when the user or --timeout ends it, with
// ExitWatchOverrun when the node ended it for a slow reader, and with the
// failure's class otherwise.
func TestWatchEnd(t *testing.T) {
	live := context.Background()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	overrun := status.Error(codes.ResourceExhausted, "watcher too slow: watch again for a fresh snapshot")
	for _, tc := range []struct {
		name          string
		cmdCtx, ctx   context.Context
		err           error
		want          int
		wantInMessage string
	}{
		{"interrupted", ended, ended, status.Error(codes.Canceled, "context canceled"), ExitOK, ""},
		{"--timeout", live, ended, status.Error(codes.DeadlineExceeded, "deadline"), ExitOK, ""},
		{"overrun", live, live, overrun, ExitWatchOverrun, "watch again"},
		{"node gone", live, live, status.Error(codes.Unavailable, "connection refused"), ExitUnreachable, ""},
		{"server closed", live, live, io.EOF, ExitError, "ended the watch"},
	} {
		err := watchEnd(tc.cmdCtx, tc.ctx, tc.err)
		if got := exitCode(err, ExitError); got != tc.want {
			t.Errorf("%s: exit %d, want %d (%v)", tc.name, got, tc.want, err)
		}
		if tc.wantInMessage != "" && (err == nil || !strings.Contains(errorText(err), tc.wantInMessage)) {
			t.Errorf("%s: message %v, want it to contain %q", tc.name, err, tc.wantInMessage)
		}
	}
	if className(ExitWatchOverrun) != "watch_overrun" {
		t.Errorf("className(%d) = %s", ExitWatchOverrun, className(ExitWatchOverrun))
	}
}

// Watch needs --grpc: over the control socket (or with no address) it is
// a usage error that names --grpc, before anything is dialled.
func TestWatchNeedsGRPC(t *testing.T) {
	for _, args := range [][]string{{"--socket", "/nonexistent.sock", "watch", "mesh"}, {"watch", "work"},
		{"--socket", "/nonexistent.sock", "work", "release", "--older-than", "1h"}} {
		var out, errb bytes.Buffer
		code := Main(args, Stdio{In: strings.NewReader(""), Out: &out, Err: &errb, IsTerminal: func(any) bool { return false }})
		if code != ExitUsage || !strings.Contains(errb.String(), "--grpc") {
			t.Errorf("%v: exit %d, stderr %q; want %d naming --grpc", args, code, errb.String(), ExitUsage)
		}
	}
}
