package backends

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

func TestAppendFrameGolden(t *testing.T) {
	cases := []struct {
		name    string
		msg     []byte
		wantHdr []byte
		wantErr error
	}{
		{"one byte", []byte{0x03}, []byte{0x01, 0x00}, nil},
		{"153-byte route update (docs/protocol.md §3.2)", make([]byte, 153), []byte{0x99, 0x00}, nil},
		{"256 bytes", make([]byte, 256), []byte{0x00, 0x01}, nil},
		{"largest", make([]byte, MaxMessageSize), []byte{0xff, 0xff}, nil},
		{"empty", nil, nil, ErrEmptyMessage},
		{"too large", make([]byte, MaxMessageSize+1), nil, ErrMessageTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := AppendFrame([]byte{0xaa}, tc.msg)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				mustEqual(t, got, []byte{0xaa})
				return
			}
			want := append(append([]byte{0xaa}, tc.wantHdr...), tc.msg...)
			mustEqual(t, got, want)
			back, err := ReadFrame(bytes.NewReader(got[1:]))
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, back, tc.msg)
		})
	}
}

func TestReadFrameErrors(t *testing.T) {
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"clean EOF", nil, io.EOF},
		{"one header byte", []byte{1}, io.ErrUnexpectedEOF},
		{"short body", []byte{4, 0, 1, 2}, io.ErrUnexpectedEOF},
		{"zero length", []byte{0, 0, 1}, ErrEmptyMessage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ReadFrame(bytes.NewReader(tc.input)); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzReadFrame feeds arbitrary streams to the frame reader: it must never
// panic, every message it returns is non-empty, re-framing the messages
// reproduces exactly the bytes consumed, and errors are of the known kinds.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 0, 1, 2, 3, 1, 0, 9})
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, 1})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var reframed []byte
		for {
			before := r.Len()
			msg, err := ReadFrame(r)
			if err != nil {
				switch {
				case errors.Is(err, io.EOF):
					if before != 0 {
						t.Fatalf("io.EOF with %d bytes left", before)
					}
				case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, ErrEmptyMessage):
				default:
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(msg) == 0 || len(msg) > MaxMessageSize {
				t.Fatalf("message of %d bytes", len(msg))
			}
			if reframed, err = AppendFrame(reframed, msg); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.HasPrefix(data, reframed) {
			t.Fatalf("re-framed messages are not a prefix of the input")
		}
	})
}

// countingConn counts Write calls; its first Write blocks until released,
// so the test can queue messages behind it.
type countingConn struct {
	net.Conn
	mu       sync.Mutex
	writes   int
	started  chan struct{}
	release  chan struct{}
	firstOne sync.Once
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	c.firstOne.Do(func() {
		close(c.started)
		<-c.release
	})
	return c.Conn.Write(p)
}

func TestTCPWriterCoalescesQueuedMessages(t *testing.T) {
	const queued = 40
	a, b := net.Pipe()
	conn := &countingConn{Conn: a, started: make(chan struct{}), release: make(chan struct{})}
	g := &group{}
	s, err := newTCPSession(g, "pipe", conn, newNBConn(conn), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = s.Close()
		_ = b.Close()
		g.stop()
		g.wait()
	}()
	if err := s.Send([]byte("first")); err != nil {
		t.Fatal(err)
	}
	<-conn.started // the writer is stuck in its first write
	for i := range queued {
		if err := s.Send(pattern(100, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	close(conn.release)
	mustEqual(t, mustReadFrame(t, b), []byte("first"))
	for i := range queued {
		mustEqual(t, mustReadFrame(t, b), pattern(100, byte(i)))
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	if conn.writes != 2 {
		t.Fatalf("%d writes for 1+%d queued messages, want 2 (one per batch)", conn.writes, queued)
	}
}

func mustReadFrame(t *testing.T, r io.Reader) []byte {
	t.Helper()
	msg, err := ReadFrame(r)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
