package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// replayConn is a control connection whose server is a script: Read
// returns the server's bytes, Write records the client's, CloseWrite
// records the half-close. Nothing blocks, nothing runs in the background.
type replayConn struct {
	r          io.Reader
	sent       bytes.Buffer
	halfClosed bool
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error) {
	if c.halfClosed {
		return 0, net.ErrClosed
	}
	return c.sent.Write(p)
}
func (c *replayConn) CloseWrite() error                { c.halfClosed = true; return nil }
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return &net.UnixAddr{Name: "client", Net: "unix"} }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Name: "server", Net: "unix"} }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }

// script splits a server's bytes the way the client must: complete lines
// ("\n" included) and what follows the last one.
type script struct {
	lines []string
	rest  []byte
}

func splitScript(data []byte) script {
	var s script
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			s.rest = data
			return s
		}
		s.lines = append(s.lines, string(data[:i+1]))
		data = data[i+1:]
	}
}

// line is the n-th complete line without its line end, or ok false.
func (s script) line(n int) (string, bool) {
	if n >= len(s.lines) {
		return "", false
	}
	return strings.TrimRight(s.lines[n], "\r\n"), true
}

// after is every server byte after the first n lines.
func (s script) after(n int) []byte {
	return append([]byte(strings.Join(s.lines[n:], "")), s.rest...)
}

const maxFuzzReply = 16 << 10

var (
	fuzzCreatedRE   = regexp.MustCompile(`^Work unit created with ID (.+)\. Send stdin data and EOF\.$`)
	fuzzStreamingRE = regexp.MustCompile(`^Streaming results for work unit (.+)$`)
)

// wantRemoteError checks that a reply line starting "ERROR: " came back as
// a *RemoteError carrying the rest of the line, and reports whether it did.
func wantRemoteError(t *testing.T, line string, err error) bool {
	t.Helper()
	msg, ok := strings.CutPrefix(line, "ERROR: ")
	if !ok {
		return false
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.Message != msg {
		t.Fatalf("reply %q: error %v, want RemoteError %q", line, err, msg)
	}
	return true
}

// FuzzClientReplies plays arbitrary server bytes, delivered whole or one
// byte at a time, to the control client (the receptorctl side: greeting,
// command replies, JSON replies, work submit, results and connect headers)
// and checks every verdict against the protocol's rules: a greeting is
// accepted exactly when it names a node, "ERROR: " lines become the
// RemoteError of their text, JSON replies are returned only when valid,
// and the bytes after a results or connect header reach the caller
// unchanged.
func FuzzClientReplies(f *testing.F) {
	const greet = "Receptor Control, node nodeb\n"
	f.Add([]byte(greet+`{"NodeID":"nodeb"}`+"\n"), uint8(0))
	f.Add([]byte(greet+"ERROR: unknown command\n"), uint8(0))
	f.Add([]byte(greet+`{"NodeID":5}`+"\r\n"), uint8(1))
	f.Add([]byte(greet+"Work unit created with ID ab12. Send stdin data and EOF.\n"+`{"result":"Job Started","unitid":"ab12"}`+"\n"), uint8(2))
	f.Add([]byte(greet+"Work unit created with ID ab12. Send stdin data and EOF.\nERROR: no space\n"), uint8(2|8))
	f.Add([]byte(greet+"Streaming results for work unit ab12\nhello\x00world"), uint8(3))
	f.Add([]byte(greet+"Connecting\nReceptor Control, node nodec\n"), uint8(4|8))
	f.Add([]byte("Receptor Control, node \n"), uint8(0))
	f.Add([]byte("receptor control, node x\n"), uint8(0))
	f.Add([]byte("Receptor Control, node  x \r\nnot json\n"), uint8(0))
	f.Fuzz(func(t *testing.T, server []byte, op uint8) {
		if len(server) > maxFuzzReply {
			return
		}
		conn, sc := replayServer(server, op)
		ctx := context.Background()

		cc, err := NewConn(ctx, conn)
		first, ok := sc.line(0)
		node, named := strings.CutPrefix(strings.TrimSpace(first), "Receptor Control, node ")
		if want := ok && named && node != ""; (err == nil) != want {
			t.Fatalf("greeting %q: NewConn error %v, want success %v", first, err, want)
		}
		if err != nil {
			return
		}
		if cc.NodeID() != node {
			t.Fatalf("greeting %q: NodeID %q, want %q", first, cc.NodeID(), node)
		}
		reply, haveReply := sc.line(1)

		switch op % 5 {
		case 0: // a text command and its JSON reply
			raw, err := cc.Command(ctx, "status")
			if conn.sent.String() != "status\n" {
				t.Fatalf("sent %q", conn.sent.String())
			}
			switch {
			case !haveReply:
				if err == nil {
					t.Fatalf("no reply line, yet Command = %s", raw)
				}
			case wantRemoteError(t, reply, err):
			case json.Valid([]byte(reply)):
				if err != nil || string(raw) != reply {
					t.Fatalf("reply %q: Command = %s, %v", reply, raw, err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), "is not JSON") {
					t.Fatalf("reply %q: Command = %s, %v; want a not-JSON error", reply, raw, err)
				}
			}
		case 1: // a JSON command decoded into a struct
			var out struct{ NodeID string }
			err := cc.CommandJSON(ctx, map[string]string{"command": "status"}, &out)
			if conn.sent.String() != `{"command":"status"}`+"\n" {
				t.Fatalf("sent %q", conn.sent.String())
			}
			if err == nil {
				var again struct{ NodeID string }
				if json.Unmarshal([]byte(reply), &again) != nil || again != out {
					t.Fatalf("reply %q decoded as %+v", reply, out)
				}
			} else if haveReply && !wantRemoteError(t, reply, err) && json.Valid([]byte(reply)) && !strings.Contains(err.Error(), "decode reply") {
				t.Fatalf("reply %q: CommandJSON error %v", reply, err)
			}
		case 2: // work submit: created line, payload, final JSON reply
			res, err := cc.SubmitWork(ctx, map[string]string{"node": "nodeb", "worktype": "cat"}, strings.NewReader("payload"))
			req, _ := submitRequest(map[string]string{"node": "nodeb", "worktype": "cat"})
			created := haveReply && fuzzCreatedRE.MatchString(reply)
			wantSent := req + "\n"
			if created {
				wantSent += "payload"
			}
			if conn.sent.String() != wantSent || conn.halfClosed != created {
				t.Fatalf("reply %q: sent %q (half-closed %v), want %q", reply, conn.sent.String(), conn.halfClosed, wantSent)
			}
			final, haveFinal := sc.line(2)
			switch {
			case !haveReply:
				if err == nil {
					t.Fatal("no reply, yet SubmitWork succeeded")
				}
			case wantRemoteError(t, reply, err):
			case !created:
				if err == nil || !strings.Contains(err.Error(), "failed to start work unit") {
					t.Fatalf("reply %q: SubmitWork = %+v, %v", reply, res, err)
				}
			case !haveFinal:
				if err == nil {
					t.Fatal("no final reply, yet SubmitWork succeeded")
				}
			case wantRemoteError(t, final, err):
			default:
				var want SubmitResult
				if json.Unmarshal([]byte(final), &want) == nil {
					if err != nil || res != want {
						t.Fatalf("final reply %q: SubmitWork = %+v, %v", final, res, err)
					}
				} else if err == nil {
					t.Fatalf("final reply %q is not a result, yet SubmitWork = %+v", final, res)
				}
			}
		case 3: // results: the header, then the raw stream
			r, err := cc.Results(ctx, "ab12", 7)
			if !strings.HasPrefix(conn.sent.String(), "work results ab12 7\n") {
				t.Fatalf("sent %q", conn.sent.String())
			}
			switch {
			case !haveReply:
				if err == nil {
					t.Fatal("no header, yet Results succeeded")
				}
			case wantRemoteError(t, reply, err):
			case fuzzStreamingRE.MatchString(reply):
				if err != nil {
					t.Fatalf("header %q: Results error %v", reply, err)
				}
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, sc.after(2)) || !conn.halfClosed {
					t.Fatalf("results after %q: %q, %v (half-closed %v); want %q", reply, got, err, conn.halfClosed, sc.after(2))
				}
			default:
				if err == nil || !strings.Contains(err.Error(), "failed to get results") {
					t.Fatalf("header %q: Results error %v", reply, err)
				}
			}
		case 4: // connect: the header, then a bridged stream
			c, err := cc.Connect(ctx, "nodec", "control", "")
			switch {
			case !haveReply:
				if err == nil {
					t.Fatal("no reply, yet Connect succeeded")
				}
			case wantRemoteError(t, reply, err):
			case strings.HasPrefix(reply, "Connecting"):
				if err != nil {
					t.Fatalf("reply %q: Connect error %v", reply, err)
				}
				got, err := io.ReadAll(c)
				if err != nil || !bytes.Equal(got, sc.after(2)) {
					t.Fatalf("bridged bytes after %q: %q, %v; want %q", reply, got, err, sc.after(2))
				}
			default:
				if err == nil || !strings.Contains(err.Error(), "unexpected reply") {
					t.Fatalf("reply %q: Connect error %v", reply, err)
				}
			}
		}
	})
}

// FuzzPeerReplies plays arbitrary server bytes to the peer side of the
// client (a node's requests to another node's control service for remote
// work) and checks upstream's rules: the greeting only has to contain the
// node ID, replies come back as sent, the unit ID of a submit is the
// alphanumeric word of "with ID <id>.", and results bytes after the header
// reach the caller unchanged.
func FuzzPeerReplies(f *testing.F) {
	const greet = "Receptor Control, node nodeb\n"
	f.Add([]byte(greet+`{"State":2,"Detail":"exit 0","StdoutSize":5}`+"\n"), uint8(0))
	f.Add([]byte(greet+"Work unit created with ID Ab12. Send stdin data and EOF.\n"), uint8(1))
	f.Add([]byte(greet+"ERROR: could not parse\n"), uint8(1))
	f.Add([]byte(greet+"Streaming results for work unit ab12\nout"), uint8(2|8))
	f.Add([]byte(greet+"ERROR: unknown work unit ab12\n"), uint8(2))
	f.Add([]byte(greet+"{\"Detail\":\"canceled\"}"), uint8(3))
	f.Add([]byte("hello nodeb\n"), uint8(0))
	f.Add([]byte("Receptor Control, node other\n"), uint8(0))
	f.Fuzz(func(t *testing.T, server []byte, op uint8) {
		if len(server) > maxFuzzReply {
			return
		}
		conn, sc := replayServer(server, op)
		ctx := context.Background()
		c, err := Greet(ctx, conn, "nodeb")
		if want := len(sc.lines) > 0 && strings.Contains(sc.lines[0], "nodeb"); (err == nil) != want {
			t.Fatalf("greeting %q: Greet error %v, want success %v", server, err, want)
		}
		if err != nil {
			return
		}
		var raw string
		if len(sc.lines) > 1 {
			raw = sc.lines[1]
		}
		switch op % 4 {
		case 0: // work status: the reply as sent
			got, err := c.WorkStatus(ctx, "ab12")
			if raw != "" && (err != nil || got != raw) {
				t.Fatalf("WorkStatus = %q, %v; want %q", got, err, raw)
			}
			if raw == "" && (err == nil || got != string(sc.rest)) {
				t.Fatalf("unterminated reply: WorkStatus = %q, %v; want %q and an error", got, err, sc.rest)
			}
		case 1: // submit: the unit ID of the created line
			id, err := c.StartSubmit(ctx, map[string]string{"node": "nodeb", "worktype": "cat"})
			m := unitIDRE.FindStringSubmatch(raw)
			switch {
			case raw == "":
				if err == nil {
					t.Fatalf("no reply, yet StartSubmit = %q", id)
				}
			case m == nil:
				if err == nil || err.Error() != "could not parse response: "+strings.TrimRight(raw, "\n") {
					t.Fatalf("reply %q: StartSubmit = %q, %v", raw, id, err)
				}
			default:
				if err != nil || id != m[1] || !strings.Contains(raw, "with ID "+id+".") {
					t.Fatalf("reply %q: StartSubmit = %q, %v", raw, id, err)
				}
			}
		case 2: // results: header, then the raw stream
			r, err := c.ResultsFrom(ctx, "ab12", 3, "")
			if conn.sent.String() != `{"command":"work","subcommand":"results","unitid":"ab12","startpos":3}`+"\n" {
				t.Fatalf("sent %q", conn.sent.String())
			}
			switch {
			case raw == "":
				if err == nil {
					t.Fatal("no header, yet ResultsFrom succeeded")
				}
			case strings.Contains(raw, "Streaming results"):
				got, rerr := io.ReadAll(r)
				if err != nil || rerr != nil || !bytes.Equal(got, sc.after(2)) {
					t.Fatalf("results after %q: %q, %v, %v; want %q", raw, got, err, rerr, sc.after(2))
				}
			default:
				if err == nil || err.Error() != "results of remote unit ab12: "+strings.TrimSpace(raw) {
					t.Fatalf("header %q: ResultsFrom error %v", raw, err)
				}
			}
		case 3: // cancel: the reply as sent
			got, err := c.CancelWork(ctx, "ab12", op&16 != 0, "tok")
			if raw != "" && (err != nil || got != raw) {
				t.Fatalf("CancelWork = %q, %v; want %q", got, err, raw)
			}
		}
	})
}

// replayServer is a connection that plays server's bytes (one at a time
// when op has bit 8 set, to exercise partial reads) and the script of
// those bytes' lines.
func replayServer(server []byte, op uint8) (*replayConn, script) {
	conn := &replayConn{r: bytes.NewReader(server)}
	if op&8 != 0 {
		conn.r = iotest.OneByteReader(conn.r)
	}
	return conn, splitScript(server)
}
