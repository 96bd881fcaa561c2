package logging

import (
	"bytes"
	"log/slog"
	"regexp"
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
