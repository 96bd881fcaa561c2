package command

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

func TestRunnerExecutable(t *testing.T) {
	tests := []struct {
		name   string
		make   func(path string) error // creates dir/receptor-runner, or not
		runner bool
	}{
		{"absent", func(string) error { return nil }, false},
		{"executable file", func(p string) error { return os.WriteFile(p, nil, 0o755) }, true},
		{"not executable", func(p string) error { return os.WriteFile(p, nil, 0o644) }, false},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }, false},
		{"symlink to executable", func(p string) error {
			target := p + ".real"
			if err := os.WriteFile(target, nil, 0o755); err != nil {
				return err
			}
			return os.Symlink(target, p)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			self := filepath.Join(dir, "receptor")
			if err := tt.make(filepath.Join(dir, RunnerBinary)); err != nil {
				t.Fatal(err)
			}
			want := self
			if tt.runner {
				want = filepath.Join(dir, RunnerBinary)
			}
			if got := RunnerExecutable(self); got != want {
				t.Fatalf("RunnerExecutable(%q) = %q, want %q", self, got, want)
			}
		})
	}
}

// argv0 returns the first argument of pid's command line.
func argv0(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := bytes.Cut(b, []byte{0})
	return string(first)
}

// TestUnitRunsViaDedicatedRunner runs a unit from a worker binary named
// receptor with and without a receptor-runner next to it. Both names
// link to this test binary, whose TestMain serves runner invocations as
// cmd/receptor-runner does; the runner's argv[0] tells which one ran.
func TestUnitRunsViaDedicatedRunner(t *testing.T) {
	testBin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, present := range []bool{true, false} {
		t.Run("runner present="+strconv.FormatBool(present), func(t *testing.T) {
			binDir := t.TempDir()
			self := filepath.Join(binDir, "receptor")
			if err := os.Symlink(testBin, self); err != nil {
				t.Fatal(err)
			}
			want := self
			if present {
				want = filepath.Join(binDir, RunnerBinary)
				if err := os.Symlink(testBin, want); err != nil {
					t.Fatal(err)
				}
			}
			f := newFixture(t)
			devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer devnull.Close()
			gate := filepath.Join(t.TempDir(), "go")
			t.Cleanup(func() { _ = os.WriteFile(gate, nil, 0o600) })
			cfg := Config{WorkType: "sh", Command: "sh", Params: `-c "while [ ! -e ` + gate + ` ]; do sleep 0.02; done; echo finished"`}
			typ, err := New(cfg, Options{Executable: RunnerExecutable(self), RunnerOutput: devnull})
			if err != nil {
				t.Fatal(err)
			}
			dir, e := f.start(typ, nil, nil)
			testkit.Eventually(t, waitBound, "Running status", func() error {
				if st := status(t, dir); st.State != unit.Running {
					return fmt.Errorf("state %v (%s)", st.State, st.Detail)
				}
				return nil
			})
			if got := argv0(t, e.id.Pid); got != want {
				t.Fatalf("runner argv[0] = %q, want %q", got, want)
			}
			// A restarted worker re-adopts the runner whichever binary it is.
			e.Detach()
			e2, err := typ.Restart(dir, status(t, dir))
			if err != nil || e2 == nil {
				t.Fatalf("Restart = %v, %v; want the runner adopted", e2, err)
			}
			if err := os.WriteFile(gate, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			waitDone(t, e2)
			st := status(t, dir)
			if st.State != unit.Succeeded || st.Detail != "exit status 0" || st.ExtraData != nil {
				t.Fatalf("status = %+v", st)
			}
			if out, _ := os.ReadFile(dir.Path(unit.StdoutFile)); string(out) != "finished\n" {
				t.Fatalf("stdout = %q", out)
			}
		})
	}
}
