package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		line string
		want Request
		err  string
	}{
		{line: "ping nodeb", want: PingRequest{Target: "nodeb"}},
		{line: "Ping a b", want: PingRequest{Target: "a b"}},
		{line: "status", want: StatusRequest{}},
		{line: `{"command":"status","requested_fields":["A","B"]}`, want: StatusRequest{Selected: true, Fields: []string{"A", "B"}}},
		{line: "connect n s ", want: ConnectRequest{Node: "n", Service: "s"}},
		{line: "connect n s t", want: ConnectRequest{Node: "n", Service: "s", TLS: "t"}},
		{line: "connect n  s", want: ConnectRequest{Node: "n", Service: "", TLS: "s"}},
		{line: `{"command":"connect","node":"n","service":"s","tls":"t"}`, want: ConnectRequest{Node: "n", Service: "s", TLS: "t"}},
		{line: "reload x", want: ReloadRequest{}},
		{line: "work submit n t", want: WorkSubmitRequest{Node: "n", WorkType: "t", Params: map[string]string{}}},
		{line: "work submit n t a  b", want: WorkSubmitRequest{Node: "n", WorkType: "t", Params: map[string]string{"params": "a  b"}}},
		{line: "work submit n t ", want: WorkSubmitRequest{Node: "n", WorkType: "t", Params: map[string]string{"params": ""}}},
		{line: `{"command":"work","subcommand":"SUBMIT","node":"n","worktype":"t","signwork":"yes","signature":"j","k":"v"}`,
			want: WorkSubmitRequest{Node: "n", WorkType: "t", Signature: Signature{JWT: "j"}, Params: map[string]string{"k": "v"}}},
		{line: "work list", want: WorkListRequest{}},
		{line: "work list a b", want: WorkListRequest{UnitID: "a", HasUnitID: true}},
		{line: `{"command":"work","subcommand":"list","unitid":"u"}`, want: WorkListRequest{UnitID: "u", HasUnitID: true}},
		{line: "work Status u", want: WorkStatusRequest{UnitID: "u"}},
		{line: `{"command":"work","subcommand":"cancel","unitid":"u","signature":"s"}`, want: WorkCancelRequest{UnitID: "u", Signature: "s"}},
		{line: `{"command":"work","subcommand":"release","unitid":"u","signature":1}`, want: WorkReleaseRequest{UnitID: "u"}},
		{line: "work force-release u", want: WorkReleaseRequest{UnitID: "u", Force: true}},
		{line: "work results u", want: WorkResultsRequest{UnitID: "u"}},
		{line: "work results u -5", want: WorkResultsRequest{UnitID: "u", StartPos: -5}},
		{line: `{"command":"work","subcommand":"results","unitid":"u","startpos":1e300,"signature":"s"}`,
			want: WorkResultsRequest{UnitID: "u", StartPos: math.MaxInt64, Signature: "s"}},
		{line: `{"command":"work","subcommand":"results","unitid":"u","startpos":-1e300}`, want: WorkResultsRequest{UnitID: "u", StartPos: math.MinInt64}},
		{line: "work results u 99999999999999999999", err: `error converting start position to integer: strconv.ParseInt: parsing "99999999999999999999": value out of range`},
		{line: `{"command":"work","subcommand":"results","unitid":"u","startpos":null}`, err: "field startpos value %!s(<nil>) is not convertible to an int"},
		{line: `{"command":"work","subcommand":"results","unitid":"u","startpos":1e400}`, err: "json: cannot unmarshal number 1e400 into Go value of type float64"},
		{line: "", err: "Unknown command"},
		{line: " ping x", err: "Unknown command"},
		{line: `{"command":"Ping","target":"x"}`, err: "Unknown command"},
		{line: `{"command":"ping","target":"x"} trailing`, err: "invalid character 't' after top-level value"},
		{line: `{"command":"work","subcommand":"submit","node":"n","worktype":"t","a":1,"b":2}`, err: "submit parameters must all be strings and a is not"},
	}
	for _, tt := range tests {
		got, err := ParseRequest(tt.line)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseRequest(%q) error = %v, want %q", tt.line, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRequest(%q) = %#v, %v; want %#v", tt.line, got, err, tt.want)
		}
	}
}

func TestErrorReplyShapes(t *testing.T) {
	_, err := ParseRequest("{")
	if got := string(ErrorReply(err)); got != "ERROR: unexpected end of JSON input\nERROR: Unknown command\n" {
		t.Errorf("decode error reply = %q", got)
	}
	if got := string(ErrorReply(errors.New("x"))); got != "ERROR: x\n" {
		t.Errorf("plain error reply = %q", got)
	}
}

func TestReadLine(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		lines []string
		err   error
	}{
		{in: "a\r\nb\n", limit: 10, lines: []string{"a", "b", ""}},
		{in: "\r\r\n", limit: 10, lines: []string{"", ""}},
		{in: "a\rb\rc\nrest", limit: 10, lines: []string{"abc", "rest"}},
		{in: "0123456789\n", limit: 10, lines: []string{"0123456789", ""}},
		{in: "0123456789a\n", limit: 10, err: errLineTooLong},
		{in: strings.Repeat("\r", 100) + "x\n", limit: 1, lines: []string{"x", ""}},
	}
	for _, tt := range tests {
		br := bufio.NewReaderSize(strings.NewReader(tt.in), 16)
		var lines []string
		for {
			line, err := readLine(br, tt.limit)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Errorf("readLine(%q) error = %v, want %v", tt.in, err, tt.err)
				}
				break
			}
			lines = append(lines, string(line))
			if err != nil {
				break
			}
		}
		if tt.err == nil && !reflect.DeepEqual(lines, tt.lines) {
			t.Errorf("readLine(%q) lines = %q, want %q", tt.in, lines, tt.lines)
		}
	}
}

func TestStatusReplyDefaults(t *testing.T) {
	b, err := StatusReply(Status{NodeID: "x"}, StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Advertisements":[],"Connections":[],"KnownConnectionCosts":{},"NodeID":"x","RoutingTable":{},"SystemCPUCount":0,"SystemMemoryMiB":0,"Version":""}` + "\n"
	if string(b) != want {
		t.Fatalf("got %s want %s", b, want)
	}
}

func TestWorkStatusExtraDataForms(t *testing.T) {
	type cmdExtra struct {
		Pid    int
		Params string
	}
	tests := []struct {
		extra any
		want  string
	}{
		{nil, `null`},
		{"Unknown WorkType", `"Unknown WorkType"`},
		{cmdExtra{Pid: 7, Params: "30"}, `{"Pid":7,"Params":"30"}`},
		{json.RawMessage(`{"RemoteNode":"b"}`), `{"RemoteNode":"b"}`},
	}
	for _, tt := range tests {
		b, err := WorkStatusReply(WorkStatus{ExtraData: tt.extra, StateName: "Pending"})
		if err != nil {
			t.Fatal(err)
		}
		want := `{"Detail":"","ExtraData":` + tt.want + `,"State":0,"StateName":"Pending","StdoutSize":0,"WorkType":""}` + "\n"
		if string(b) != want {
			t.Errorf("got %s want %s", b, want)
		}
	}
}

// FuzzParseRequest checks that no line panics the parser, that errors render
// as one ERROR line (two for JSON decode problems), and that text requests
// survive a render/parse round trip of their fields.
func FuzzParseRequest(f *testing.F) {
	seeds := []string{
		"ping nodeb", "status", "STATUS x", "connect a b ", "connect a b c d", "reload",
		"work", "work submit a b c d", "work list", "work status u", "work results u 5", "work results u x",
		"work force-release u", "{", "{bad", `{"command":5}`, `{"nocommand":1}`,
		`{"command":"status","requested_fields":["Version",1]}`, `{"command":"status","requested_fields":{}}`,
		`{"command":"work","subcommand":"submit","node":"n","worktype":"t","x":"y"}`,
		`{"command":"work","subcommand":"results","unitid":"u","startpos":"6"}`,
		`{"command":"work","subcommand":"results","unitid":"u","startpos":1e308}`,
		`{"command":"connect","node":"a","service":"b","tls":null}`, "\x00\xff",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\r\n") {
			return // the session strips these before parsing
		}
		req, err := ParseRequest(line)
		if err != nil {
			reply := ErrorReply(err)
			if !bytes.HasPrefix(reply, []byte("ERROR: ")) || !bytes.HasSuffix(reply, []byte("\n")) {
				t.Fatalf("bad error reply %q", reply)
			}
			var jerr *JSONRequestError
			if errors.As(err, &jerr) && !strings.HasPrefix(line, "{") {
				t.Fatalf("text line %q gave a JSON error", line)
			}
			return
		}
		if req == nil {
			t.Fatalf("ParseRequest(%q) returned neither request nor error", line)
		}
		if s, ok := req.(WorkSubmitRequest); ok && s.Params == nil {
			t.Fatalf("submit params nil for %q", line)
		}
		if p, ok := req.(PingRequest); ok && !strings.HasPrefix(line, "{") && !strings.HasSuffix(line, p.Target) {
			t.Fatalf("ping target %q not taken verbatim from %q", p.Target, line)
		}
		if utf8.ValidString(line) && !strings.HasPrefix(line, "{") && !strings.EqualFold(req.command(), strings.SplitN(line, " ", 2)[0]) {
			t.Fatalf("command %q does not match line %q", req.command(), line)
		}
	})
}

// scriptConn is an in-memory net.Conn: reads come from a script, writes are
// collected. It lets the fuzzer drive whole sessions without sockets.
type scriptConn struct {
	net.Conn // nil: unused methods panic, so the session must not call them
	in       *bytes.Reader
	out      bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) CloseWrite() error           { return nil }
func (c *scriptConn) RemoteAddr() net.Addr        { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }

// SetReadDeadline is accepted and ignored: the script never blocks.
func (c *scriptConn) SetReadDeadline(time.Time) error { return nil }

// FuzzSession runs a whole session over arbitrary input bytes: it must not
// panic, must greet first, and every reply line must be JSON, an ERROR line
// or one of the raw-mode lines.
func FuzzSession(f *testing.F) {
	f.Add([]byte("status\nping nodeb\r\n{bad\nwork submit localhost cat\npayload"))
	f.Add([]byte("work results Done0001 2\nstatus\n"))
	f.Add([]byte(`{"command":"work","subcommand":"submit","node":"nodea","worktype":"cat"}` + "\nxyz"))
	f.Add([]byte("connect a b \nwork list\nwork cancel Done0001\n"))
	f.Fuzz(func(t *testing.T, input []byte) {
		ops := newFakeOps()
		ops.addUnit("Done0001", &fakeUnit{workType: "cat", state: 2, stdout: []byte("results\n")})
		srv := NewServer(ops, Options{MaxLineBytes: 4096, Logger: slog.New(slog.DiscardHandler)})
		conn := &scriptConn{in: bytes.NewReader(input)}
		srv.ServeConn(context.Background(), conn, OriginMesh)
		out := conn.out.String()
		rest, ok := strings.CutPrefix(out, "Receptor Control, node nodea\n")
		if !ok {
			t.Fatalf("no greeting: %q", out)
		}
		if strings.Contains(rest, "Streaming results") || strings.Contains(rest, "Work unit created") {
			return // raw bytes follow; the line shape no longer applies
		}
		for _, line := range strings.SplitAfter(rest, "\n") {
			if line == "" {
				continue
			}
			if !strings.HasSuffix(line, "\n") {
				t.Fatalf("unterminated reply %q", line)
			}
			if !strings.HasPrefix(line, "ERROR: ") && !json.Valid([]byte(line)) {
				t.Fatalf("reply is neither ERROR nor JSON: %q", line)
			}
		}
	})
}
