package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestLineFormat(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelInfo).With("node", "a").WithGroup("sess")
	log.Info("Connection established", "peer", "b c", "n", 3)
	log.Debug("hidden")
	want := regexp.MustCompile(`^INFO \d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} Connection established node=a sess.peer="b c" sess.n=3\n$`)
	if !want.Match(buf.Bytes()) {
		t.Fatalf("log line %q does not match %s", buf.String(), want)
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"Error": slog.LevelError, "warning": slog.LevelWarn, "INFO": slog.LevelInfo, "debug": slog.LevelDebug} {
		got, err := ParseLevel(in)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseLevel("loud"); err == nil || err.Error() != "loud is not a valid log level name" {
		t.Errorf("ParseLevel(loud) error = %v", err)
	}
}

func TestNewFormatJSON(t *testing.T) {
	var b strings.Builder
	log, err := NewFormat(&b, slog.LevelInfo, "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hello", "err", "boom")
	var rec map[string]any
	if err := json.Unmarshal([]byte(b.String()), &rec); err != nil {
		t.Fatalf("not one JSON object: %q: %v", b.String(), err)
	}
	if rec["msg"] != "hello" || rec["err"] != "boom" || rec["level"] != "INFO" {
		t.Fatalf("record %v", rec)
	}
	if _, err := NewFormat(&b, slog.LevelInfo, "xml"); err == nil {
		t.Fatal("log-format xml accepted")
	}
	if l, err := NewFormat(&b, slog.LevelInfo, ""); err != nil || l == nil {
		t.Fatalf("default format: %v", err)
	}
}
