package command

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// TestStdoutWriteFailureInDetail: when the unit's stdout cannot be written
// (a full disk), the unit fails with the OS error in its Detail, not with
// the command's own exit status. The disk is simulated by pointing the
// stdout file at /dev/full, where every write fails with ENOSPC.
func TestStdoutWriteFailureInDetail(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("no /dev/full to simulate a full disk: %v", err)
	}
	for _, tt := range []struct {
		name string
		cfg  Config
	}{
		// echo fails itself on the write error (exit status 1).
		{"echo", Config{WorkType: "echo", Command: "echo", Params: "hello"}},
		// A command that ignores write errors still makes the unit fail.
		{"ignoring errors", Config{WorkType: "sh", Command: "sh", Params: `-c "echo hello 2>/dev/null; exit 0"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			typ := f.typ(tt.cfg)
			extra, err := typ.Prepare(nil)
			if err != nil {
				t.Fatal(err)
			}
			_, dir, err := f.store.Create(typ.Name(), extra)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/dev/full", dir.Path(unit.StdoutFile)); err != nil {
				t.Fatal(err)
			}
			e, err := typ.Start(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			waitDone(t, e)
			st := status(t, dir)
			if st.State != unit.Failed || !strings.Contains(st.Detail, "no space left on device") {
				t.Fatalf("status = %d %q, want Failed with %q in the detail", st.State, st.Detail, "no space left on device")
			}
			if testing.Verbose() {
				t.Logf("detail: %s", st.Detail)
			}
		})
	}
}
