package command

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

func TestMain(m *testing.M) {
	// The runner re-executes this test binary; serve those invocations.
	if IsRunnerInvocation(os.Args[1:]) {
		os.Exit(RunnerMain(os.Args[1:]))
	}
	if dir := os.Getenv(launchAndExitEnv); dir != "" {
		os.Exit(launchAndExit(unit.Dir(dir)))
	}
	goleak.VerifyTestMain(m)
}

func TestSplitParams(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", []string{}, false},
		{"a b  c", []string{"a", "b", "c"}, false},
		{`"a b" 'c d' e\ f`, []string{"a b", "c d", "e f"}, false},
		{`-c "echo \"hi\""`, []string{"-c", `echo "hi"`}, false},
		{`'it''s'`, []string{"its"}, false},
		{`""`, []string{""}, false},
		{"a # comment", []string{"a"}, false},
		{"a#b", []string{"a#b"}, false},
		{`$HOME *`, []string{"$HOME", "*"}, false},
		{`"open`, nil, true},
		{`'open`, nil, true},
		{`trailing\`, nil, true},
	}
	for _, tt := range tests {
		got, err := SplitParams(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("SplitParams(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && strings.Join(got, "\x00") != strings.Join(tt.want, "\x00") || len(got) != len(tt.want) {
			t.Errorf("SplitParams(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCombineParams(t *testing.T) {
	tests := []struct {
		cfg, rt string
		allow   bool
		want    string
		err     string
	}{
		{"", "", false, "", ""},
		{"-x", "", false, "-x", ""},
		{"", "30", true, "30", ""},
		{"-c", "echo hi", true, "-c echo hi", ""},
		{"-c", "extra", false, "", "extra params provided but not allowed"},
	}
	for _, tt := range tests {
		got, err := CombineParams(tt.cfg, tt.rt, tt.allow)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("CombineParams(%q,%q,%v) error = %v, want %q", tt.cfg, tt.rt, tt.allow, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CombineParams(%q,%q,%v) = %q, %v; want %q", tt.cfg, tt.rt, tt.allow, got, err, tt.want)
		}
	}
}

func TestParseRunnerArgs(t *testing.T) {
	ra, err := parseRunnerArgs([]string{"--node", "id=worker", "--command-runner", "command=cat", "params=a=b c", "unitdir=/x", "stage=2"})
	if err != nil {
		t.Fatal(err)
	}
	if ra.command != "cat" || ra.params != "a=b c" || ra.unitDir != "/x" {
		t.Fatalf("parsed %+v", ra)
	}
	for _, bad := range [][]string{
		{"--command-runner", "command=cat"},
		{"--command-runner", "unitdir=/x"},
		{"--command-runner", "command=cat", "unitdir=/x", "bogus=1"},
		{"--command-runner", "command=cat", "unitdir=/x", "bare"},
	} {
		if _, err := parseRunnerArgs(bad); err == nil {
			t.Errorf("parseRunnerArgs(%q) succeeded", bad)
		}
	}
	if RunnerMain([]string{"--command-runner"}) == 0 {
		t.Error("RunnerMain without parameters succeeded")
	}
}

type fixture struct {
	t     *testing.T
	store *unit.Store
}

func newFixture(t *testing.T) *fixture {
	s, err := unit.NewStore(t.TempDir(), "node")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, store: s}
}

func (f *fixture) typ(cfg Config) *Type {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { devnull.Close() })
	typ, err := New(cfg, Options{CancelGrace: 5 * time.Second, RunnerOutput: devnull})
	if err != nil {
		f.t.Fatal(err)
	}
	return typ
}

// start allocates a unit with stdin and starts it.
func (f *fixture) start(typ *Type, params map[string]string, stdin []byte) (unit.Dir, *Execution) {
	f.t.Helper()
	extra, err := typ.Prepare(params)
	if err != nil {
		f.t.Fatal(err)
	}
	_, dir, err := f.store.Create(typ.Name(), extra)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(dir.Path(unit.StdinFile), stdin, 0o600); err != nil {
		f.t.Fatal(err)
	}
	e, err := typ.Start(context.Background(), dir)
	if err != nil {
		f.t.Fatal(err)
	}
	return dir, e
}

// waitBound is the failure bound of waits in these tests (never a timing
// assertion).
const waitBound = 20 * time.Second

func waitDone(t *testing.T, e *Execution) {
	t.Helper()
	select {
	case <-e.Done():
	case <-time.After(waitBound):
		t.Fatal("unit did not finish")
	}
}

func status(t *testing.T, dir unit.Dir) unit.Status {
	t.Helper()
	st, err := dir.ReadStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCommandUnits(t *testing.T) {
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	tests := []struct {
		name       string
		cfg        Config
		params     map[string]string
		stdin      []byte
		wantState  unit.State
		wantDetail string
		wantOut    []byte
	}{
		{"echo", Config{WorkType: "echo", Command: "echo", Params: "hello"}, nil, nil,
			unit.Succeeded, "exit status 0", []byte("hello\n")},
		{"runtime params", Config{WorkType: "echo", Command: "echo", AllowRuntimeParams: true}, map[string]string{"params": `"a  b" c`}, nil,
			unit.Succeeded, "exit status 0", []byte("a  b c\n")},
		{"cat empty", Config{WorkType: "cat", Command: "cat"}, nil, []byte{},
			unit.Succeeded, "exit status 0", []byte{}},
		{"cat 1MiB", Config{WorkType: "cat", Command: "cat"}, nil, big,
			unit.Succeeded, "exit status 0", big},
		{"stderr merged, exit 3", Config{WorkType: "sh", Command: "sh", Params: `-c "printf 01234; printf 56789 >&2; exit 3"`}, nil, nil,
			unit.Failed, "exit status 3", []byte("0123456789")},
		{"no such command", Config{WorkType: "x", Command: "nosuchcmd-receptor"}, nil, nil,
			unit.Failed, `exec: "nosuchcmd-receptor": executable file not found in $PATH`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			dir, e := f.start(f.typ(tt.cfg), tt.params, tt.stdin)
			waitDone(t, e)
			st := status(t, dir)
			if st.State != tt.wantState || st.Detail != tt.wantDetail {
				t.Fatalf("status = %d %q, want %d %q", st.State, st.Detail, tt.wantState, tt.wantDetail)
			}
			if st.ExtraData != nil {
				t.Fatalf("ExtraData = %s after the runner exited, want null", st.ExtraData)
			}
			// The runner was our child: reaped, not left as a zombie.
			if _, err := os.Stat("/proc/" + strconv.Itoa(e.id.Pid)); !os.IsNotExist(err) {
				t.Fatalf("runner %d still has a process entry after it exited: %v", e.id.Pid, err)
			}
			if tt.wantOut != nil {
				out, err := os.ReadFile(dir.Path(unit.StdoutFile))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out, tt.wantOut) {
					t.Fatalf("stdout = %d bytes %.40q, want %d bytes %.40q", len(out), out, len(tt.wantOut), tt.wantOut)
				}
				if st.StdoutSize != int64(len(tt.wantOut)) {
					t.Fatalf("StdoutSize = %d, want %d", st.StdoutSize, len(tt.wantOut))
				}
			}
		})
	}
}

func TestPrepareRejectsExtraParams(t *testing.T) {
	f := newFixture(t)
	typ := f.typ(Config{WorkType: "echo", Command: "echo"})
	if _, err := typ.Prepare(map[string]string{"params": "x"}); err == nil || err.Error() != "extra params provided but not allowed" {
		t.Fatalf("Prepare = %v", err)
	}
	raw, err := f.typ(Config{WorkType: "e", Command: "echo", Params: "a", AllowRuntimeParams: true}).Prepare(map[string]string{"params": "b"})
	if err != nil || string(raw) != `{"Pid":0,"Params":"a b"}` {
		t.Fatalf("Prepare = %s, %v", raw, err)
	}
}

func TestRunningStatusAndCancelKillsChildren(t *testing.T) {
	f := newFixture(t)
	typ := f.typ(Config{WorkType: "sh", Command: "sh", Params: `-c "sleep 1000 & echo \$!; wait"`})
	dir, e := f.start(typ, nil, nil)
	var child int
	testkit.Eventually(t, waitBound, "child pid on stdout", func() error {
		b, _ := os.ReadFile(dir.Path(unit.StdoutFile))
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		child = n
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return nil
		}
		return errors.New("want err == nil && bytes.HasSuffix(b, []byte(\"\\n\"))")
	})
	testkit.Eventually(t, waitBound, "Running status", func() error {
		if st := status(t, dir); st.State != unit.Running {
			return fmt.Errorf("state %v (%s)", st.State, st.Detail)
		}
		return nil
	})
	st := status(t, dir)
	var ex extraData
	if err := json.Unmarshal(st.ExtraData, &ex); err != nil || ex.Pid <= 0 {
		t.Fatalf("ExtraData = %s (%v), want the runner pid", st.ExtraData, err)
	}
	if !strings.HasPrefix(st.Detail, "Running: PID ") {
		t.Fatalf("Detail = %q", st.Detail)
	}
	if _, running, err := processStart(child); err != nil || !running {
		t.Fatalf("child %d not running before cancel: %v", child, err)
	}
	if err := e.Cancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = status(t, dir)
	if st.State != unit.Canceled || st.Detail != "Canceled" || st.ExtraData != nil {
		t.Fatalf("status after cancel = %+v", st)
	}
	testkit.Eventually(t, waitBound, "child to die", func() error {
		_, running, err := processStart(child)
		if err != nil || !running {
			return nil
		}
		return errors.New("want err != nil || !running")
	})
	// Cancel of a finished unit is a no-op.
	if err := e.Cancel(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDetachAndRestartAdoptsRunner(t *testing.T) {
	f := newFixture(t)
	gate := filepath.Join(t.TempDir(), "go")
	typ := f.typ(Config{WorkType: "sh", Command: "sh", Params: `-c "while [ ! -e ` + gate + ` ]; do sleep 0.02; done; echo finished"`})
	dir, e := f.start(typ, nil, nil)
	testkit.Eventually(t, waitBound, "Running status", func() error {
		if st := status(t, dir); st.State != unit.Running {
			return fmt.Errorf("state %v (%s)", st.State, st.Detail)
		}
		return nil
	})
	if !isRunnerOf(e.id.Pid, dir) || isRunnerOf(e.id.Pid, unit.Dir(string(dir)+"x")) || isRunnerOf(os.Getpid(), dir) || isRunnerOf(0, dir) {
		t.Fatal("isRunnerOf does not single out the unit's runner")
	}
	var ex extraData
	if err := json.Unmarshal(status(t, dir).ExtraData, &ex); err != nil || ex.Pid != e.id.Pid || ex.Params == "" {
		t.Fatalf("ExtraData = %+v, %v; want the runner's PID %d and the params", ex, err, e.id.Pid)
	}
	e.Detach() // the worker goes away; the runner must not

	typ2 := f.typ(Config{WorkType: "sh", Command: "sh"})
	e2, err := typ2.Restart(dir, status(t, dir))
	if err != nil || e2 == nil {
		t.Fatalf("Restart = %v, %v; want an adopted execution", e2, err)
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
}

func TestRestartWithoutLiveRunner(t *testing.T) {
	tests := []struct {
		name       string
		state      unit.State
		pid        int // ExtraData Pid
		wantState  unit.State
		wantDetail string
	}{
		{"pending", unit.Pending, 0, unit.Failed, "Pending at restart"},
		// A live process that is not this unit's runner: a reused PID
		// must not count.
		{"running, pid reused", unit.Running, os.Getpid(), unit.Failed,
			"Failed to restart: command runner (PID " + strconv.Itoa(os.Getpid()) + ") is no longer running"},
		{"succeeded", unit.Succeeded, 0, unit.Succeeded, "exit status 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			typ := f.typ(Config{WorkType: "sh", Command: "sh"})
			_, dir, err := f.store.Create("sh", nil)
			if err != nil {
				t.Fatal(err)
			}
			detail := "exit status 0"
			st, _ := dir.Update(func(st *unit.Status) {
				st.State, st.Detail = tt.state, detail
				st.ExtraData = json.RawMessage(`{"Pid":` + strconv.Itoa(tt.pid) + `,"Params":""}`)
			})
			e, err := typ.Restart(dir, st)
			if err != nil || e != nil {
				t.Fatalf("Restart = %v, %v", e, err)
			}
			got := status(t, dir)
			if got.State != tt.wantState || got.Detail != tt.wantDetail {
				t.Fatalf("status = %d %q, want %d %q", got.State, got.Detail, tt.wantState, tt.wantDetail)
			}
		})
	}
}

// launchAndExitEnv makes the test binary act as a worker that starts the
// unit in the named directory and exits at once.
const launchAndExitEnv = "RECEPTOR_TEST_LAUNCH_AND_EXIT"

func launchAndExit(dir unit.Dir) int {
	typ, err := New(Config{WorkType: "sh", Command: "sh", Params: os.Getenv("RECEPTOR_TEST_PARAMS")}, Options{})
	if err == nil {
		_, err = typ.Start(context.Background(), dir)
	}
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 1
	}
	return 0
}

func TestRunnerOutlivesWorker(t *testing.T) {
	f := newFixture(t)
	gate := filepath.Join(t.TempDir(), "go")
	params := `-c "while [ ! -e ` + gate + ` ]; do sleep 0.02; done; echo finished"`
	// Whatever happens, the orphaned runner must end with the test.
	t.Cleanup(func() { _ = os.WriteFile(gate, nil, 0o600) })
	typ := f.typ(Config{WorkType: "sh", Command: "sh", Params: params})
	extra, err := typ.Prepare(nil)
	if err != nil {
		t.Fatal(err)
	}
	_, dir, err := f.store.Create("sh", extra)
	if err != nil {
		t.Fatal(err)
	}
	// A worker process starts the unit and exits while the unit runs.
	worker := exec.Command(os.Args[0], "-test.run=^$")
	worker.Env = append(os.Environ(), launchAndExitEnv+"="+string(dir), "RECEPTOR_TEST_PARAMS="+params)
	// A file, not a pipe: the runner inherits the worker's output and
	// would keep a pipe open until it ends.
	logPath := filepath.Join(t.TempDir(), "worker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	worker.Stdout, worker.Stderr = logFile, logFile
	if err := worker.Run(); err != nil {
		out, _ := os.ReadFile(logPath)
		t.Fatalf("worker: %v: %s", err, out)
	}
	testkit.Eventually(t, waitBound, "Running status", func() error {
		if st := status(t, dir); st.State != unit.Running {
			return fmt.Errorf("state %v (%s)", st.State, st.Detail)
		}
		return nil
	})
	e, err := typ.Restart(dir, status(t, dir))
	if err != nil || e == nil {
		t.Fatalf("Restart = %v, %v; want the orphaned runner adopted", e, err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitDone(t, e)
	st := status(t, dir)
	if st.State != unit.Succeeded || st.Detail != "exit status 0" || st.ExtraData != nil {
		t.Fatalf("status = %+v", st)
	}
	if out, _ := os.ReadFile(dir.Path(unit.StdoutFile)); string(out) != "finished\n" {
		t.Fatalf("stdout = %q", out)
	}
}
