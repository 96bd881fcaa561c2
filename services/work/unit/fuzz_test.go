package unit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzStatusRoundTrip encodes arbitrary status records (Detail is
// detail×repeat, so short inputs reach the size limit) and reads them
// back: Marshal either refuses the record (invalid ExtraData, or over
// MaxStatusSize, so that no writer leaves a file its readers reject) or
// writes one newline-terminated line that ParseStatus turns back into the
// same record, ExtraData compacted (and HTML-escaped, as encoding/json
// writes it).
func FuzzStatusRoundTrip(f *testing.F) {
	f.Add(1, "Running", int64(0), "cat", []byte(`{"RemoteNode":"b"}`), "", uint16(0))
	f.Add(2, "exit 0", int64(12), "remote", []byte(` { "a" : [1, 2] } `), "", uint16(0))
	f.Add(-7, "", int64(-1), "", []byte(`null`), "", uint16(0))
	f.Add(0, "", int64(0), "x", []byte(`{`), "", uint16(0))
	f.Add(3, "", int64(0), "x", []byte{}, "<\x00\u2028", uint16(60000))
	f.Fuzz(func(t *testing.T, state int, detail string, size int64, workType string, extra []byte, part string, repeat uint16) {
		if len(part)*int(repeat) > 2*MaxStatusSize {
			return
		}
		st := Status{State: State(state), Detail: detail + strings.Repeat(part, int(repeat)), StdoutSize: size,
			WorkType: workType, ExtraData: extra}
		b, err := st.Marshal()
		if err != nil {
			if errors.Is(err, ErrStatusTooLarge) {
				return
			}
			if len(extra) > 0 && !json.Valid(extra) {
				return
			}
			t.Fatalf("Marshal: %v", err)
		}
		if len(b) > MaxStatusSize || !bytes.HasSuffix(b, []byte("\n")) || bytes.Count(b, []byte("\n")) != 1 {
			t.Fatalf("Marshal wrote %d bytes that are not one line within the limit", len(b))
		}
		back, err := ParseStatus(b)
		if err != nil {
			t.Fatalf("ParseStatus(Marshal(st)): %v", err)
		}
		var wantExtra []byte
		if len(extra) > 0 && !bytes.Equal(bytes.TrimSpace(extra), []byte("null")) {
			// encoding/json writes a RawMessage compacted and with <, >
			// and & escaped (\u003c...), as upstream's status files have it.
			var compact, escaped bytes.Buffer
			_ = json.Compact(&compact, extra)
			json.HTMLEscape(&escaped, compact.Bytes())
			wantExtra = escaped.Bytes()
		}
		// encoding/json replaces invalid UTF-8 with U+FFFD.
		want := st
		want.Detail, want.WorkType = validUTF8(st.Detail), validUTF8(st.WorkType)
		if back.State != want.State || back.Detail != want.Detail || back.StdoutSize != want.StdoutSize ||
			back.WorkType != want.WorkType || !bytes.Equal(back.ExtraData, wantExtra) {
			t.Fatalf("round trip changed the record: %+v -> %+v", st, back)
		}
	})
}

// validUTF8 replaces every invalid byte with U+FFFD, as encoding/json does.
func validUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r) // an invalid byte ranges as utf8.RuneError, one byte at a time
	}
	return b.String()
}
