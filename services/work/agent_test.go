package work

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/work/command"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// waitBound is the failure bound of the waits in these tests (never a timing
// assertion).
const waitBound = 20 * time.Second

func TestMain(m *testing.M) {
	// Command units re-execute this test binary as their runner.
	if command.IsRunnerInvocation(os.Args[1:]) {
		os.Exit(command.RunnerMain(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

var devNull = func() *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		panic(err)
	}
	return f
}()

func cmdType(t testing.TB, cfg command.Config) WorkType {
	t.Helper()
	ct, err := command.New(cfg, command.Options{CancelGrace: 5 * time.Second, RunnerOutput: devNull})
	if err != nil {
		t.Fatal(err)
	}
	return CommandType(ct)
}

func standardTypes(t testing.TB, gate string) []WorkType {
	return []WorkType{
		cmdType(t, command.Config{WorkType: "echo", Command: "echo", AllowRuntimeParams: true}),
		cmdType(t, command.Config{WorkType: "cat", Command: "cat"}),
		cmdType(t, command.Config{WorkType: "fail3", Command: "sh", Params: `-c "printf 0123456789; exit 3"`}),
		cmdType(t, command.Config{WorkType: "secure", Command: "cat", VerifySignature: true}),
		cmdType(t, command.Config{WorkType: "gated", Command: "sh",
			Params: `-c "echo started; while [ ! -e ` + gate + ` ]; do sleep 0.02; done; echo finished"`}),
		cmdType(t, command.Config{WorkType: "sleep", Command: "sleep", AllowRuntimeParams: true}),
	}
}

type env struct {
	dataDir, gate string
}

func newEnv(t testing.TB) env {
	return env{dataDir: t.TempDir(), gate: filepath.Join(t.TempDir(), "gate")}
}

func (v env) agent(t testing.TB, mutate ...func(*Options)) *Agent {
	t.Helper()
	opts := Options{NodeID: "nodea", DataDir: v.dataDir, WorkTypes: standardTypes(t, v.gate)}
	for _, m := range mutate {
		m(&opts)
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func submit(t testing.TB, a *Agent, workType string, params map[string]string, stdin string) string {
	t.Helper()
	res, err := a.Submit(context.Background(), SubmitRequest{Node: "localhost", WorkType: workType, Params: params}, strings.NewReader(stdin))
	if err != nil {
		t.Fatalf("Submit %s: %v", workType, err)
	}
	if res.Result != ResultStarted || !unit.ValidID(res.UnitID) {
		t.Fatalf("Submit = %+v", res)
	}
	return res.UnitID
}

func results(t testing.TB, a *Agent, id string, off int64) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rc, err := a.Results(ctx, id, off, Auth{})
	if err != nil {
		t.Fatalf("Results(%s): %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading results of %s: %v", id, err)
	}
	return b
}

func TestSubmitLocalUnits(t *testing.T) {
	v := newEnv(t)
	a := v.agent(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	tests := []struct {
		name, workType string
		params         map[string]string
		stdin          string
		want           string
		state          unit.State
		detail         string
	}{
		{"echo", "echo", map[string]string{"params": "hello world"}, "", "hello world\n", unit.Succeeded, "exit status 0"},
		{"cat empty", "cat", nil, "", "", unit.Succeeded, "exit status 0"},
		{"cat 1MiB", "cat", nil, string(big), string(big), unit.Succeeded, "exit status 0"},
		{"failing", "fail3", nil, "", "0123456789", unit.Failed, "exit status 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var created string
			res, err := a.Submit(context.Background(), SubmitRequest{
				Node: "nodea", WorkType: tt.workType, Params: tt.params,
				Created: func(id string) error { created = id; return nil },
			}, strings.NewReader(tt.stdin))
			if err != nil {
				t.Fatal(err)
			}
			if created != res.UnitID {
				t.Fatalf("Created hook got %q, result %q", created, res.UnitID)
			}
			out := results(t, a, res.UnitID, 0)
			if !bytes.Equal(out, []byte(tt.want)) {
				t.Fatalf("results = %d bytes %.40q, want %d bytes %.40q", len(out), out, len(tt.want), tt.want)
			}
			r, err := a.Status(res.UnitID)
			if err != nil {
				t.Fatal(err)
			}
			if r.State != tt.state || r.Detail != tt.detail || r.StdoutSize != int64(len(tt.want)) || r.WorkType != tt.workType {
				t.Fatalf("status = %+v", r)
			}
			stdin, _ := os.ReadFile(filepath.Join(v.dataDir, "nodea", res.UnitID, "stdin"))
			if string(stdin) != tt.stdin {
				t.Fatalf("stdin file has %d bytes, want %d", len(stdin), len(tt.stdin))
			}
		})
	}
}

func TestStatusReportBytes(t *testing.T) {
	a := newEnv(t).agent(t)
	id := submit(t, a, "echo", map[string]string{"params": "hello world"}, "")
	results(t, a, id, 0)
	// The runner's exit is observed asynchronously; ExtraData turns null then.
	testkit.Eventually(t, waitBound, "final status", func() error {
		r, err := a.Status(id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(r)
		want := `{"Detail":"exit status 0","ExtraData":null,"State":2,"StateName":"Succeeded","StdoutSize":12,"WorkType":"echo"}`
		if string(b) != want {
			return fmt.Errorf("status = %s, want %s", b, want)
		}
		return nil
	})
}

func TestResultsOffsets(t *testing.T) {
	a := newEnv(t).agent(t)
	id := submit(t, a, "echo", map[string]string{"params": "hello world"}, "")
	tests := []struct {
		off  int64
		want string
	}{
		{0, "hello world\n"},
		{3, "lo world\n"},
		{6, "world\n"},
		{12, ""},
		{100, ""},
		{-1, ""},
	}
	for _, tt := range tests {
		if got := results(t, a, id, tt.off); string(got) != tt.want {
			t.Errorf("results from %d = %q, want %q", tt.off, got, tt.want)
		}
	}
}

func TestSubmitErrors(t *testing.T) {
	v := newEnv(t)
	a := v.agent(t)
	tests := []struct {
		name string
		req  SubmitRequest
		want string
		kind error
	}{
		{"unknown type", SubmitRequest{Node: "localhost", WorkType: "nosuch"}, "unknown work type nosuch", ErrUnknownWorkType},
		{"extra params", SubmitRequest{Node: "localhost", WorkType: "cat", Params: map[string]string{"params": "x"}},
			"extra params provided but not allowed", ErrInvalidRequest},
		{"ttl local", SubmitRequest{Node: "LOCALHOST", WorkType: "cat", TTL: "5s"}, "ttl option is intended for remote work only", ErrInvalidRequest},
		{"unexpected signature", SubmitRequest{Node: "nodea", WorkType: "cat", Auth: Auth{Signature: "x"}},
			"work type did not expect a signature", ErrSignature},
		{"unexpected signature unknown type", SubmitRequest{Node: "nodea", WorkType: "nosuch", Auth: Auth{Signature: "x"}},
			"work type did not expect a signature", ErrSignature},
		{"secure unsigned", SubmitRequest{Node: "nodea", WorkType: "secure"},
			"could not verify signature: signature is empty", ErrSignature},
		{"secure without verifier", SubmitRequest{Node: "nodea", WorkType: "secure", Auth: Auth{Signature: "x.y.z"}},
			"could not verify signature: verifying key not specified", ErrSignature},
		{"remote without mesh", SubmitRequest{Node: "nodeb", WorkType: "cat"},
			"remote work is not available: no mesh connection", ErrRemote},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Submit(context.Background(), tt.req, strings.NewReader(""))
			if err == nil || err.Error() != tt.want || !errors.Is(err, tt.kind) {
				t.Fatalf("Submit error = %v, want %q (%v)", err, tt.want, tt.kind)
			}
		})
	}
	// Rejected submissions leave nothing behind (quirk Q6 fixed, docs/protocol.md §15.1).
	if ids, _ := filepath.Glob(filepath.Join(v.dataDir, "nodea", "*")); len(ids) != 0 {
		t.Fatalf("rejected submits left %v", ids)
	}
	// A trusted (Unix socket) connection needs no signature.
	res, err := a.Submit(context.Background(), SubmitRequest{Node: "nodea", WorkType: "secure", Auth: Auth{Trusted: true}}, strings.NewReader("x"))
	if err != nil || res.Result != ResultStarted {
		t.Fatalf("trusted secure submit = %+v, %v", res, err)
	}
	if _, err := a.Results(context.Background(), res.UnitID, 0, Auth{}); err == nil ||
		err.Error() != "could not verify signature: signature is empty" {
		t.Fatalf("untrusted results of secure unit: %v", err)
	}
}

func TestUnknownUnitErrors(t *testing.T) {
	a := newEnv(t).agent(t)
	ctx := context.Background()
	for _, id := range []string{"nosuch", "../../etc", "a/b", ""} {
		want := "unknown work unit " + id
		check := func(op string, err error) {
			if err == nil || err.Error() != want || !errors.Is(err, ErrUnknownUnit) {
				t.Errorf("%s(%q) error = %v, want %q", op, id, err, want)
			}
		}
		_, err := a.Status(id)
		check("Status", err)
		_, err = a.List(id)
		if id != "" {
			check("List", err)
		}
		_, err = a.Cancel(ctx, id, Auth{})
		check("Cancel", err)
		_, err = a.Release(ctx, id, false, Auth{})
		check("Release", err)
		_, err = a.Release(ctx, id, true, Auth{})
		check("ForceRelease", err)
		_, err = a.Results(ctx, id, 0, Auth{})
		check("Results", err)
		_, err = a.Watch(ctx, id)
		check("Watch", err)
	}
}

func waitState(t testing.TB, a *Agent, id string, ok func(unit.Report) bool) unit.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := a.Watch(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var last unit.Report
	for r := range ch {
		last = r
		if ok(r) {
			cancel()
			for range ch {
			}
			return r
		}
	}
	t.Fatalf("unit %s never reached the wanted state; last %+v", id, last)
	return last
}

func TestResultsFollowRunningUnit(t *testing.T) {
	v := newEnv(t)
	a := v.agent(t)
	id := submit(t, a, "gated", nil, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rc, err := a.Results(ctx, id, 0, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 64)
	n, err := io.ReadAtLeast(rc, buf, len("started\n"))
	if err != nil || string(buf[:n]) != "started\n" {
		t.Fatalf("first output = %q, %v", buf[:n], err)
	}
	waitState(t, a, id, func(r unit.Report) bool { return r.State == unit.Running })
	if err := os.WriteFile(v.gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rc)
	if err != nil || string(rest) != "finished\n" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
}

func TestCancelReleaseForceRelease(t *testing.T) {
	v := newEnv(t)
	a := v.agent(t)
	ctx := context.Background()

	id := submit(t, a, "sleep", map[string]string{"params": "1000"}, "")
	waitState(t, a, id, func(r unit.Report) bool { return r.State == unit.Running })
	r, _ := a.Status(id)
	if !strings.HasPrefix(r.Detail, "Running: PID ") || !bytes.Contains(r.ExtraData, []byte(`"Params":"1000"`)) {
		t.Fatalf("running status = %+v (%s)", r, r.ExtraData)
	}
	if res, err := a.Cancel(ctx, id, Auth{}); err != nil || res.Pending {
		t.Fatalf("Cancel = %+v, %v", res, err)
	}
	r, _ = a.Status(id)
	if r.State != unit.Canceled || r.Detail != "Canceled" || r.ExtraData != nil {
		t.Fatalf("canceled status = %+v", r)
	}
	// A canceled unit's results end (quirk Q4 fixed, docs/protocol.md §15.1).
	results(t, a, id, 0)
	if _, err := a.Release(ctx, id, false, Auth{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(v.dataDir, "nodea", id)); !os.IsNotExist(err) {
		t.Fatalf("unit directory still there after release: %v", err)
	}
	if _, err := a.Status(id); !errors.Is(err, ErrUnknownUnit) {
		t.Fatalf("Status after release = %v", err)
	}

	// Release of a running unit cancels it; force-release of a finished one.
	id2 := submit(t, a, "sleep", map[string]string{"params": "1000"}, "")
	if _, err := a.Release(ctx, id2, false, Auth{}); err != nil {
		t.Fatal(err)
	}
	id3 := submit(t, a, "echo", nil, "")
	results(t, a, id3, 0)
	if _, err := a.Cancel(ctx, id3, Auth{}); err != nil { // completed: still "cancelled"
		t.Fatal(err)
	}
	if r, _ := a.Status(id3); r.State != unit.Succeeded {
		t.Fatalf("cancel changed a completed unit: %+v", r)
	}
	if _, err := a.Release(ctx, id3, true, Auth{}); err != nil {
		t.Fatal(err)
	}
	if l, err := a.List(""); err != nil || len(l) != 0 {
		t.Fatalf("List after releases = %v, %v", l, err)
	}
}

func TestAgentRestartWhileUnitRuns(t *testing.T) {
	v := newEnv(t)
	a := v.agent(t)
	id := submit(t, a, "gated", nil, "")
	waitState(t, a, id, func(r unit.Report) bool { return r.State == unit.Running })
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// The runner keeps going while no agent watches.
	if err := os.WriteFile(v.gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b := v.agent(t)
	if got := string(results(t, b, id, 0)); got != "started\nfinished\n" {
		t.Fatalf("results after restart = %q", got)
	}
	r := waitState(t, b, id, func(r unit.Report) bool { return r.State == unit.Succeeded })
	if r.Detail != "exit status 0" {
		t.Fatalf("status after restart = %+v", r)
	}
}

func TestRestartRecoversAndUnknownTypes(t *testing.T) {
	v := newEnv(t)
	a := v.agent(t)
	done := submit(t, a, "echo", map[string]string{"params": "x"}, "")
	results(t, a, done, 0)
	a.Close()

	// A pending unit left by a dead worker, and a type no longer configured.
	s, _ := unit.NewStore(v.dataDir, "nodea")
	pendingID, pdir, _ := s.Create("cat", nil)
	_, _ = pdir.Update(func(st *unit.Status) { st.Detail = "Starting Worker" })
	b := v.agent(t, func(o *Options) {
		o.WorkTypes = []WorkType{cmdType(t, command.Config{WorkType: "cat", Command: "cat"})}
	})
	l, err := b.List("")
	if err != nil || len(l) != 2 {
		t.Fatalf("List = %v, %v", l, err)
	}
	if r := l[pendingID]; r.State != unit.Failed || r.Detail != "Pending at restart" {
		t.Fatalf("pending unit after restart = %+v", r)
	}
	if r := l[done]; string(r.ExtraData) != `"Unknown WorkType"` || r.State != unit.Succeeded {
		t.Fatalf("unknown-type unit = %+v (%s)", r, r.ExtraData)
	}
	if _, err := b.Cancel(context.Background(), done, Auth{}); err != nil {
		t.Fatal(err)
	}
	if got := string(results(t, b, done, 0)); got != "x\n" {
		t.Fatalf("results of unknown-type unit = %q", got)
	}
	// A unit with an unreadable status file fails; one without any is skipped.
	badID, bdir, _ := s.Create("cat", nil)
	if err := os.WriteFile(bdir.Path(unit.StatusFile), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Mkdir(filepath.Join(v.dataDir, "nodea", "nostatus"), 0o700)
	c := v.agent(t)
	r, err := c.Status(badID)
	if err != nil || r.State != unit.Failed || !strings.HasPrefix(r.Detail, "Failed to restart: ") {
		t.Fatalf("unreadable unit after restart = %+v, %v", r, err)
	}
	if _, err := c.Status("nostatus"); !errors.Is(err, ErrUnknownUnit) {
		t.Fatalf("directory without status: %v", err)
	}
	c.Close()

	// A directory created behind the agent's back becomes visible on lookup.
	extID, _, _ := s.Create("cat", nil)
	if _, err := b.Status(extID); err != nil {
		t.Fatalf("Status of externally created unit: %v", err)
	}
}

func TestConcurrentUnits(t *testing.T) {
	a := newEnv(t).agent(t)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			payload := fmt.Sprintf("payload %d\n", i)
			res, err := a.Submit(context.Background(), SubmitRequest{Node: "localhost", WorkType: "cat"}, strings.NewReader(payload))
			if err != nil {
				errs <- err
				return
			}
			rc, err := a.Results(context.Background(), res.UnitID, 0, Auth{})
			if err != nil {
				errs <- err
				return
			}
			defer rc.Close()
			out, err := io.ReadAll(rc)
			if err != nil || string(out) != payload {
				errs <- fmt.Errorf("unit %s: results %q, %v; want %q", res.UnitID, out, err, payload)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c := a.Capacity(); c.CPUCount < 1 || c.MemoryMiB < 1 {
		t.Fatalf("Capacity = %+v", c)
	}
}

func TestWorkTypesAndDuplicates(t *testing.T) {
	v := newEnv(t)
	a := v.agent(t)
	wt := a.WorkTypes()
	if len(wt) != 6 || wt[0] != (WorkCommand{"echo", false}) || wt[3] != (WorkCommand{"secure", true}) {
		t.Fatalf("WorkTypes = %+v", wt)
	}
	dup := cmdType(t, command.Config{WorkType: "cat", Command: "cat"})
	_, err := New(Options{NodeID: "x", DataDir: v.dataDir, WorkTypes: []WorkType{dup, dup}})
	if err == nil || err.Error() != "work type cat already registered" {
		t.Fatalf("duplicate type: %v", err)
	}
}

func BenchmarkSubmitToResultsEnd(b *testing.B) {
	a := newEnv(b).agent(b)
	for b.Loop() {
		id := submit(b, a, "echo", map[string]string{"params": "hi"}, "")
		results(b, a, id, 0)
		if _, err := a.Release(context.Background(), id, true, Auth{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConcurrentUnits(b *testing.B) {
	a := newEnv(b).agent(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := submit(b, a, "cat", nil, "data")
			results(b, a, id, 0)
			if _, err := a.Release(context.Background(), id, true, Auth{}); err != nil {
				b.Error(err)
			}
		}
	})
}

// BenchmarkResultsRead streams a finished unit's 32 MiB stdout through
// Results with reads of several sizes, next to reading the file itself.
func BenchmarkResultsRead(b *testing.B) {
	a := newEnv(b).agent(b)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 2<<20)
	id := submit(b, a, "cat", nil, string(payload))
	if got := results(b, a, id, 0); len(got) != len(payload) {
		b.Fatalf("results = %d bytes, want %d", len(got), len(payload))
	}
	path := filepath.Join(a.store.Root(), id, "stdout")
	for _, size := range []int{64 << 10, 256 << 10, 1 << 20} {
		buf := make([]byte, size)
		b.Run(fmt.Sprintf("file/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, f, buf); err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
		b.Run(fmt.Sprintf("Results/%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				rc, err := a.Results(context.Background(), id, 0, Auth{})
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf)
				if err != nil || n != int64(len(payload)) {
					b.Fatalf("read %d bytes, %v", n, err)
				}
				rc.Close()
			}
		})
	}
}
