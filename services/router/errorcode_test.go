package router

import (
	"strings"
	"testing"
)

func TestSplitErrorCode(t *testing.T) {
	tests := []struct {
		in   string
		text string
		code int
	}{
		{"a non-reloadable config action 'node' was removed ERRORCODE 3", "a non-reloadable config action 'node' was removed", 3},
		{"open /x: no such file ERRORCODE 4", "open /x: no such file", 4},
		{"something else ERRORCODE 7", "something else", 5},
		{"no suffix at all", "no suffix at all", 5},
		{"ERRORCODE 3", "ERRORCODE 3", 5}, // no separating space before it
		{"x ERRORCODE 3 ERRORCODE 4", "x ERRORCODE 3", 4},
		{"x ERRORCODE ", "x", 5},
	}
	for _, tt := range tests {
		text, code := splitErrorCode(tt.in)
		if text != tt.text || code != tt.code {
			t.Errorf("splitErrorCode(%q) = %q, %d; want %q, %d", tt.in, text, code, tt.text, tt.code)
		}
	}
}

// FuzzSplitErrorCode checks that any reload error text splits into a
// prefix of itself and one of receptorctl's exit codes.
func FuzzSplitErrorCode(f *testing.F) {
	for _, s := range []string{"", "x ERRORCODE 3", "ERRORCODE 4", " ERRORCODE ", "a ERRORCODE 4 ERRORCODE 3", "\xff ERRORCODE 4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		text, code := splitErrorCode(s)
		if code != 3 && code != 4 && code != 5 {
			t.Fatalf("code %d", code)
		}
		if !strings.HasPrefix(s, text) {
			t.Fatalf("text %q is not a prefix of %q", text, s)
		}
		if code != 5 && s != text+" ERRORCODE "+string(rune('0'+code)) {
			t.Fatalf("%q split into %q and %d", s, text, code)
		}
	})
}
