package unit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/safedir"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStateNames(t *testing.T) {
	tests := []struct {
		s        State
		name     string
		complete bool
	}{
		{Pending, "Pending", false},
		{Running, "Running", false},
		{Succeeded, "Succeeded", true},
		{Failed, "Failed", true},
		{Canceled, "Canceled", false},
		{7, "Unknown: 7", false},
	}
	for _, tt := range tests {
		if got := tt.s.Name(); got != tt.name {
			t.Errorf("State(%d).Name() = %q, want %q", tt.s, got, tt.name)
		}
		if got := tt.s.Complete(); got != tt.complete {
			t.Errorf("State(%d).Complete() = %v, want %v", tt.s, got, tt.complete)
		}
	}
}

func TestStatusGoldenBytes(t *testing.T) {
	tests := []struct {
		name string
		st   Status
		want string
	}{
		{"null extra", Status{State: Succeeded, Detail: "exit status 0", StdoutSize: 12, WorkType: "cat"},
			`{"State":2,"Detail":"exit status 0","StdoutSize":12,"WorkType":"cat","ExtraData":null}` + "\n"},
		{"command extra", Status{State: Running, Detail: "Running: PID 7", WorkType: "sleep", ExtraData: json.RawMessage(`{"Pid":5,"Params":"30"}`)},
			`{"State":1,"Detail":"Running: PID 7","StdoutSize":0,"WorkType":"sleep","ExtraData":{"Pid":5,"Params":"30"}}` + "\n"},
		{"html escaped", Status{Detail: "<a&b>"},
			`{"State":0,"Detail":"\u003ca\u0026b\u003e","StdoutSize":0,"WorkType":"","ExtraData":null}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.st.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("Marshal = %s, want %s", b, tt.want)
			}
			back, err := ParseStatus(b)
			if err != nil {
				t.Fatal(err)
			}
			b2, _ := back.Marshal()
			if string(b2) != tt.want {
				t.Fatalf("round trip = %s, want %s", b2, tt.want)
			}
		})
	}
}

func TestReportGoldenBytes(t *testing.T) {
	st := Status{State: Succeeded, Detail: "exit status 0", StdoutSize: 12, WorkType: "cat"}
	b, err := json.Marshal(st.Report(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Detail":"exit status 0","ExtraData":null,"State":2,"StateName":"Succeeded","StdoutSize":12,"WorkType":"cat"}`
	if string(b) != want {
		t.Fatalf("report = %s, want %s", b, want)
	}
	// Updated is never part of the reply (upstream's object has no such member).
	r := st.Report(nil)
	r.Updated = time.Now()
	if b, _ := json.Marshal(r); string(b) != want {
		t.Fatalf("report with Updated = %s, want %s", b, want)
	}
}

// Dir.Updated is the status file's modification time: zero without a
// status file, and moved by every status write.
func TestDirUpdated(t *testing.T) {
	d := Dir(t.TempDir())
	if !d.Updated().IsZero() {
		t.Fatalf("Updated of a unit without status = %v, want zero", d.Updated())
	}
	if _, err := d.Update(func(s *Status) { s.Detail = "one" }); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(d.Path(StatusFile), old, old); err != nil {
		t.Fatal(err)
	}
	if got := d.Updated(); !got.Equal(old) {
		t.Fatalf("Updated = %v, want %v", got, old)
	}
	if _, err := d.Update(func(s *Status) { s.State = Running }); err != nil {
		t.Fatal(err)
	}
	if got := d.Updated(); time.Since(got) > time.Minute {
		t.Fatalf("Updated after a write = %v, want about now", got)
	}
}

func TestParseStatusErrors(t *testing.T) {
	for _, in := range []string{"", "{", `{"State":"x"}`, "[]"} {
		if _, err := ParseStatus([]byte(in)); err == nil {
			t.Errorf("ParseStatus(%q) succeeded", in)
		}
	}
	big := make([]byte, MaxStatusSize+1)
	if _, err := ParseStatus(big); err == nil {
		t.Error("oversized status accepted")
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id string
		ok bool
	}{
		{"abcDEF12", true},
		{"a", true},
		{"", false},
		{"..", false},
		{"../x", false},
		{"a/b", false},
		{"a b", false},
		{"ab\x00", false},
		{string(make([]byte, 65)), false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.ok {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.ok)
		}
	}
	for range 100 {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != IDLength || !ValidID(id) {
			t.Fatalf("NewID() = %q", id)
		}
	}
}

func TestNewStoreRejectsBadNodeIDs(t *testing.T) {
	for _, n := range []string{"", ".", "..", "a/b", "x\x00"} {
		if _, err := NewStore(t.TempDir(), n); err == nil {
			t.Errorf("NewStore(node %q) succeeded", n)
		}
	}
}

func TestStoreCreateListRemove(t *testing.T) {
	dir := t.TempDir()
	s, err := NewStore(dir, "nodea")
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := s.IDs(); err != nil || len(ids) != 0 {
		t.Fatalf("IDs on empty store = %v, %v", ids, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nodea")); !os.IsNotExist(err) {
		t.Fatalf("store created its directory before the first unit: %v", err)
	}
	id, d, err := s.Create("cat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(d) != filepath.Join(dir, "nodea", id) {
		t.Fatalf("unit dir = %s", d)
	}
	fi, err := os.Stat(string(d))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("unit dir mode = %v, %v", fi.Mode(), err)
	}
	raw, err := os.ReadFile(d.Path(StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"State":0,"Detail":"Unit Created","StdoutSize":0,"WorkType":"cat","ExtraData":null}` + "\n"
	if string(raw) != want {
		t.Fatalf("status file = %s, want %s", raw, want)
	}
	for _, name := range []string{StatusFile, LockFile} {
		fi, err := os.Stat(d.Path(name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode = %v, %v", name, fi, err)
		}
	}
	// A stray file and an invalid directory name are not units.
	_ = os.WriteFile(filepath.Join(dir, "nodea", "junk"), nil, 0o600)
	_ = os.Mkdir(filepath.Join(dir, "nodea", "bad.name"), 0o700)
	ids, err := s.IDs()
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("IDs = %v, %v; want [%s]", ids, err, id)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if d.Exists() {
		t.Fatal("unit still exists after Remove")
	}
}

// TestStoreUnsafeDirectories: a data directory or node directory writable
// by others is refused when the store opens, and when one becomes so
// later, unit creation is refused.
func TestStoreUnsafeDirectories(t *testing.T) {
	for _, sub := range []string{"", "nodea"} {
		dir := t.TempDir()
		bad := filepath.Join(dir, sub)
		if err := os.MkdirAll(bad, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(bad, 0o777); err != nil {
			t.Fatal(err)
		}
		if _, err := NewStore(dir, "nodea"); !errors.Is(err, safedir.ErrUnsafe) || !strings.Contains(err.Error(), bad) {
			t.Errorf("NewStore with %s mode 0777 = %v, want safedir.ErrUnsafe naming it", bad, err)
		}
	}
	dir := t.TempDir()
	s, err := NewStore(dir, "nodea")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Create("cat", nil); !errors.Is(err, safedir.ErrUnsafe) {
		t.Errorf("Create in a group-writable data directory = %v, want safedir.ErrUnsafe", err)
	}
}

func TestStoreDirRejectsEscapes(t *testing.T) {
	s, err := NewStore(t.TempDir(), "n")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"..", "../../etc", "a/../b", "/abs", ""} {
		if _, err := s.Dir(id); err == nil {
			t.Errorf("Dir(%q) accepted", id)
		}
	}
}

func TestUpdateConcurrentWritersMerge(t *testing.T) {
	s, err := NewStore(t.TempDir(), "n")
	if err != nil {
		t.Fatal(err)
	}
	_, d, err := s.Create("cat", nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := d.Update(func(st *Status) { st.StdoutSize++ }); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st, err := d.ReadStatus()
	if err != nil {
		t.Fatal(err)
	}
	if st.StdoutSize != 20 {
		t.Fatalf("StdoutSize = %d after 20 increments", st.StdoutSize)
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(`{"State":2,"Detail":"exit status 0","StdoutSize":12,"WorkType":"cat","ExtraData":null}`))
	f.Add([]byte(`{"State":1,"ExtraData":{"Pid":1,"Params":""}}`))
	f.Add([]byte(`{"State":3,"ExtraData":"Unknown WorkType"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := ParseStatus(b)
		if err != nil {
			return
		}
		out, err := st.Marshal()
		if err != nil {
			t.Fatalf("re-encoding parsed status: %v", err)
		}
		st2, err := ParseStatus(out)
		if err != nil {
			t.Fatalf("parsing re-encoded status %s: %v", out, err)
		}
		if st2.State != st.State || st2.Detail != st.Detail || st2.StdoutSize != st.StdoutSize || st2.WorkType != st.WorkType {
			t.Fatalf("round trip changed status: %+v -> %+v", st, st2)
		}
	})
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestUpdateRewritesInPlace(t *testing.T) {
	s, err := NewStore(t.TempDir(), "n")
	if err != nil {
		t.Fatal(err)
	}
	_, d, err := s.Create("cat", nil)
	if err != nil {
		t.Fatal(err)
	}
	ino := inode(t, d.Path(StatusFile))
	tests := []struct{ detail, want string }{
		{"a much longer detail than before", `{"State":1,"Detail":"a much longer detail than before","StdoutSize":0,"WorkType":"cat","ExtraData":null}` + "\n"},
		{"short", `{"State":1,"Detail":"short","StdoutSize":0,"WorkType":"cat","ExtraData":null}` + "\n"},
	}
	for _, tt := range tests {
		if _, err := d.Update(func(st *Status) { st.State, st.Detail = Running, tt.detail }); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(d.Path(StatusFile))
		if err != nil {
			t.Fatal(err)
		}
		if string(raw) != tt.want {
			t.Fatalf("status file = %q, want %q", raw, tt.want)
		}
		if got := inode(t, d.Path(StatusFile)); got != ino {
			t.Fatalf("status file replaced (inode %d -> %d), want rewritten in place", ino, got)
		}
	}
	// What a writer dying between its write and the truncation leaves
	// behind: a whole record padded with spaces. It reads as that record.
	if err := os.WriteFile(d.Path(StatusFile), []byte(tests[1].want+"          "), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := d.ReadStatus()
	if err != nil || st.Detail != "short" {
		t.Fatalf("padded status = %+v, %v", st, err)
	}
	if st, err = d.Update(func(st *Status) { st.StdoutSize = 3 }); err != nil || st.Detail != "short" {
		t.Fatalf("Update of padded status = %+v, %v", st, err)
	}
}

func TestReadersNeverSeePartialWrites(t *testing.T) {
	s, err := NewStore(t.TempDir(), "n")
	if err != nil {
		t.Fatal(err)
	}
	_, d, err := s.Create("cat", nil)
	if err != nil {
		t.Fatal(err)
	}
	long := string(bytes.Repeat([]byte("x"), 3000))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			detail := "short"
			if i%2 == 0 {
				detail = long
			}
			if _, err := d.Update(func(st *Status) { st.Detail = detail }); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 2000 {
		st, err := d.ReadStatus()
		if err != nil {
			t.Fatalf("reader saw a partial status: %v", err)
		}
		if st.Detail != "short" && st.Detail != long && st.Detail != "Unit Created" {
			t.Fatalf("reader saw Detail of %d bytes", len(st.Detail))
		}
	}
	close(stop)
	wg.Wait()
}
