package work

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// recordingHandler keeps the messages and unit attributes of every record.
type recordingHandler struct {
	mu   sync.Mutex
	recs []string
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	u := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "unit" {
			u = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	h.recs = append(h.recs, r.Message+" unit="+u)
	h.mu.Unlock()
	return nil
}

func (h *recordingHandler) count(substr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if strings.Contains(r, substr) {
			n++
		}
	}
	return n
}

// writeUnit creates a finished echo unit directly on disk.
func writeUnit(t *testing.T, dataDir, id string) {
	t.Helper()
	d := unit.Dir(filepath.Join(dataDir, "nodea", id))
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Update(func(st *unit.Status) {
		*st = unit.Status{State: unit.Succeeded, Detail: "exit status 0", WorkType: "echo", ExtraData: []byte(`{"Pid":0,"Params":"x"}`)}
	}); err != nil {
		t.Fatal(err)
	}
}

// TestListSkipsUnreadableUnits: a unit whose status file is garbage, empty
// or gone, or is not a file, is left out of the list (logged once), and the
// other units are listed; "work status" of such a unit is an error that
// names the problem.
func TestListSkipsUnreadableUnits(t *testing.T) {
	v := newEnv(t)
	ids := []string{"good1", "garbage", "empty", "gone", "isdir", "good2"}
	for _, id := range ids {
		writeUnit(t, v.dataDir, id)
	}
	h := &recordingHandler{}
	a := v.agent(t, func(o *Options) { o.Logger = slog.New(h) })
	if l, err := a.List(""); err != nil || len(l) != len(ids) {
		t.Fatalf("List before damage = %d units, %v", len(l), err)
	}
	root := filepath.Join(v.dataDir, "nodea")
	mustWrite := func(id, content string) {
		if err := os.WriteFile(filepath.Join(root, id, unit.StatusFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("garbage", "this is not json\n")
	mustWrite("empty", "")
	if err := os.Remove(filepath.Join(root, "gone", unit.StatusFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "isdir", unit.StatusFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "isdir", unit.StatusFile), 0o700); err != nil {
		t.Fatal(err)
	}

	for range 3 {
		l, err := a.List("")
		if err != nil {
			t.Fatalf("List with unreadable units: %v", err)
		}
		if len(l) != 2 || l["good1"].State != unit.Succeeded || l["good2"].State != unit.Succeeded {
			t.Fatalf("List = %+v, want good1 and good2 only", l)
		}
	}
	for _, id := range []string{"garbage", "empty", "gone", "isdir"} {
		if n := h.count("unit=" + id); n != 1 {
			t.Errorf("unit %s logged %d times over three lists, want once", id, n)
		}
	}
	for id, want := range map[string]string{
		"garbage": "parsing status",
		"empty":   "parsing status",
		"gone":    "unknown work unit gone",
		"isdir":   "is a directory",
	} {
		if _, err := a.Status(id); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Status(%s) = %v, want an error containing %q", id, err, want)
		}
	}

	// A repaired unit is listed again.
	var buf bytes.Buffer
	buf.WriteString(`{"State":2,"Detail":"exit status 0","StdoutSize":0,"WorkType":"echo","ExtraData":null}` + "\n")
	mustWrite("garbage", buf.String())
	l, err := a.List("")
	if err != nil || len(l) != 3 {
		t.Fatalf("List after repair = %d units, %v; want 3", len(l), err)
	}
}
