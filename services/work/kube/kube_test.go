package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// client-go's fake watch machinery and klog keep package-level goroutines.
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
	)
}

func TestConfigErrors(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{WorkType: "k", AuthMethod: "magic", Namespace: "n", Image: "i"}, "invalid AuthMethod: magic"},
		{Config{WorkType: "k", Image: "i"}, "must provide namespace when AuthMethod is not kubeconfig"},
		{Config{WorkType: "k", Image: "i", Namespace: "n", KubeConfig: kc}, "can only provide KubeConfig when AuthMethod=kubeconfig"},
		{Config{WorkType: "k", Image: "i", AuthMethod: "kubeconfig", KubeConfig: kc + ".missing"}, "error accessing kubeconfig file: "},
		{Config{WorkType: "k", Namespace: "n", Pod: "p.yaml", Image: "i"}, "can only provide Pod when Image, Command, and Params are empty"},
		{Config{WorkType: "k", Namespace: "n"}, "must specify a container image to run"},
		{Config{WorkType: "k", Namespace: "n", Image: "i", StreamMethod: "udp"}, "stream mode must be logger or tcp"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	for _, ok := range []Config{
		{WorkType: "k", AuthMethod: "KubeConfig", KubeConfig: kc, Image: "i"},
		{WorkType: "k", AllowRuntimeAuth: true, AllowRuntimePod: true},
		{WorkType: "k", AuthMethod: "runtime", Namespace: "n", AllowRuntimeCommand: true},
	} {
		if _, err := New(ok, Options{}); err != nil {
			t.Errorf("New(%+v): %v", ok, err)
		}
	}
}

const podSpec = `apiVersion: v1
kind: Pod
metadata:
  name: custom
  namespace: other
spec:
  containers:
  - name: sidecar
    image: s
  - name: worker
    image: w
    command: ["run"]
`

func TestPrepare(t *testing.T) {
	base := Config{WorkType: "K8s", Namespace: "ns", Image: "img", Params: "--base", AuthMethod: "runtime"}
	allowAll := base
	allowAll.AllowRuntimeAuth, allowAll.AllowRuntimeCommand, allowAll.AllowRuntimeParams, allowAll.AllowRuntimePod = true, true, true, true
	tests := []struct {
		name   string
		cfg    Config
		params map[string]string
		want   string // error text, or "" for success
	}{
		{"command not allowed", base, map[string]string{"kube_command": "x", "secret_kube_config": "c"}, "kube_command provided but not allowed"},
		{"image not allowed", base, map[string]string{"kube_image": "x"}, "kube_image provided but not allowed"},
		{"params not allowed", base, map[string]string{"kube_params": "x"}, "kube_params provided but not allowed"},
		{"namespace not allowed", base, map[string]string{"kube_namespace": "x"}, "kube_namespace provided but not allowed"},
		{"config not allowed", base, map[string]string{"secret_kube_config": "x"}, "secret_kube_config provided but not allowed"},
		{"pod not allowed", base, map[string]string{"secret_kube_pod": "x"}, "secret_kube_pod provided but not allowed"},
		{"timeout not allowed", base, map[string]string{"pod_pending_timeout": "1m"}, "pod_pending_timeout provided but not allowed"},
		{"empty values ignored", allowAll, map[string]string{"kube_command": "", "secret_kube_config": "c"}, ""},
		{"runtime needs config", allowAll, map[string]string{}, "param secret_kube_config must be provided if AuthMethod=runtime"},
		{"pod excludes command", allowAll, map[string]string{"secret_kube_config": "c", "secret_kube_pod": podSpec, "kube_image": "x"}, "params kube_command, kube_image, kube_params not compatible with secret_kube_pod"},
		{"bad timeout", allowAll, map[string]string{"secret_kube_config": "c", "pod_pending_timeout": "soon"}, `time: invalid duration "soon"`},
		{"pod without worker", allowAll, map[string]string{"secret_kube_config": "c", "secret_kube_pod": strings.ReplaceAll(podSpec, "name: worker", "name: other")}, "at least one container must be named worker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			typ, err := New(tt.cfg, Options{NodeID: "n1"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = typ.Prepare(tt.params)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Prepare: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Prepare = %v, want %q", err, tt.want)
			}
		})
	}

	typ, err := New(allowAll, Options{NodeID: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := typ.Prepare(map[string]string{
		"secret_kube_config": "SECRET-CONFIG", "kube_params": "--more 'a b'", "kube_image": "img2",
		"kube_namespace": "ns2", "pod_pending_timeout": "90s",
	})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := parseExtra(raw)
	if err != nil {
		t.Fatal(err)
	}
	if ex.Params != "--base --more 'a b'" || ex.Image != "img2" || ex.KubeNamespace != "ns2" || ex.KubeConfig != "SECRET-CONFIG" || ex.PodPendingTimeout != 90*time.Second {
		t.Fatalf("ExtraData = %+v", ex)
	}
	red := string(typ.Redact(raw))
	if strings.Contains(red, "SECRET") {
		t.Fatalf("redacted ExtraData shows the secret: %s", red)
	}
	if want := `{"Image":"img2","Command":"","Params":"--base --more 'a b'","KubeNamespace":"ns2","KubeConfig":"","KubePod":"","PodName":""}`; red != want {
		t.Fatalf("redacted = %s\nwant       %s", red, want)
	}
}

func TestBuildPod(t *testing.T) {
	typ, err := New(Config{WorkType: "AWX-Kube", Namespace: "ns", AllowRuntimePod: true}, Options{NodeID: "node/1"})
	if err != nil {
		t.Fatal(err)
	}
	pod, err := typ.buildPod(extraData{upstreamExtra: upstreamExtra{KubeNamespace: "ns", KubePod: podSpec}}, "ABCD1234", nil)
	if err != nil {
		t.Fatal(err)
	}
	if pod.GenerateName != "custom-" || pod.Namespace != "other" || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Fatalf("pod meta/spec: %s %s %s", pod.GenerateName, pod.Namespace, pod.Spec.RestartPolicy)
	}
	if w := pod.Spec.Containers[1]; !w.Stdin || !w.StdinOnce || pod.Spec.Containers[0].Stdin {
		t.Fatalf("stdin flags: %+v", pod.Spec.Containers)
	}
	if pod.Labels[LabelUnit] != "ABCD1234" || pod.Labels[LabelNode] != NodeLabel("node/1") || pod.Annotations[AnnotationNode] != "node/1" {
		t.Fatalf("labels %v annotations %v", pod.Labels, pod.Annotations)
	}
	pod, err = typ.buildPod(extraData{upstreamExtra: upstreamExtra{KubeNamespace: "ns", Image: "i", Command: "sh -c", Params: `"echo hi"`}}, "ABCD1234", map[string]string{"B": "2", "A": "1"})
	if err != nil {
		t.Fatal(err)
	}
	c := pod.Spec.Containers[0]
	if pod.GenerateName != "awx-kube-" || c.Name != "worker" || strings.Join(c.Command, "|") != "sh|-c" || strings.Join(c.Args, "|") != "echo hi" || c.Env[0].Name != "A" {
		t.Fatalf("pod: %s %+v", pod.GenerateName, c)
	}
	bare := strings.Replace(strings.Replace(podSpec, "apiVersion: v1\n", "", 1), "kind: Pod\n", "", 1)
	if pod, err = typ.buildPod(extraData{upstreamExtra: upstreamExtra{KubeNamespace: "ns", KubePod: bare}}, "ABCD1234", nil); err != nil || !pod.Spec.Containers[1].Stdin {
		t.Fatalf("manifest without apiVersion and kind: %v", err)
	}
	// Only a v1 Pod (or a manifest without apiVersion and kind) is a pod
	// manifest: other kinds and broken manifests are refused with a reason.
	for _, bad := range []struct{ name, manifest, want string }{
		{"other group", strings.Replace(podSpec, "apiVersion: v1", "apiVersion: apps/v1", 1), `no kind "Pod" is registered for version "apps/v1"`},
		{"other kind", strings.Replace(podSpec, "kind: Pod", "kind: Service", 1), "the pod manifest is a Service, not a v1 Pod"},
		{"not a manifest", "{", "json parse error"},
	} {
		_, err := typ.buildPod(extraData{upstreamExtra: upstreamExtra{KubeNamespace: "ns", KubePod: bad.manifest}}, "ABCD1234", nil)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error with %q", bad.name, err, bad.want)
		}
	}
}

// logOf renders lines the way the kubelet does with timestamps; several
// lines share a timestamp, one line is long, the last has no newline.
func logOf(n int) ([]byte, []byte) {
	var ts, plain bytes.Buffer
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range n {
		line := fmt.Sprintf("line %d %s", i, strings.Repeat("x", i%7))
		if i == 5 {
			line = strings.Repeat("L", 100<<10)
		}
		if i < n-1 {
			line += "\n"
		}
		stamp := base.Add(time.Duration(i/3) * 1500 * time.Millisecond) // 3 lines per stamp
		fmt.Fprintf(&ts, "%s %s", stamp.Format(time.RFC3339Nano), line)
		plain.WriteString(line)
	}
	return ts.Bytes(), plain.Bytes()
}

// replay is what the kubelet sends for sinceTime: every line whose
// timestamp is not before the second of since.
func replay(log []byte, since time.Time) []byte {
	if since.IsZero() {
		return log
	}
	since = since.Truncate(time.Second)
	var out []byte
	for _, l := range bytes.SplitAfter(log, []byte("\n")) {
		sp := bytes.IndexByte(l, ' ')
		if sp < 0 {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, string(l[:sp]))
		if err == nil && !ts.Before(since) {
			out = append(out, l...)
		}
	}
	return out
}

// cutReader delivers at most limit bytes, then fails like a broken stream.
type cutReader struct {
	r     io.Reader
	limit int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.limit <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if len(p) > c.limit {
		p = p[:c.limit]
	}
	n, err := c.r.Read(p)
	c.limit -= n
	return n, err
}

// TestCopierResumesExactly cuts the log stream at random points, reopens
// it from the cursor as the kubelet would, and checks the result is the
// log, byte for byte.
func TestCopierResumesExactly(t *testing.T) {
	log, want := logOf(40)
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		var out bytes.Buffer
		c := &copier{w: &out}
		for attempt := 0; ; attempt++ {
			stream := replay(log, c.cur.Time)
			limit := len(stream)
			if attempt < 8 {
				limit = rng.IntN(len(stream) + 1)
			}
			err := c.copyStream(&cutReader{r: bytes.NewReader(stream), limit: limit})
			if err == nil || limit >= len(stream) && attempt >= 8 {
				break
			}
			// A restarted agent continues from a copier rebuilt from the
			// recorded cursor and size.
			c = &copier{w: &out, cur: roundTrip(t, c.cur)}
		}
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("trial %d: output differs from the log (%d vs %d bytes)", trial, out.Len(), len(want))
		}
	}
}

func roundTrip(t *testing.T, c cursor) cursor {
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var out cursor
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// fakeKube is a fake API server (client-go's fake clientset) plus a fake
// kubelet: tests move pods through phases; attach and logs are in memory.
type fakeKube struct {
	cs *fake.Clientset

	mu      sync.Mutex
	stdin   map[string][]byte
	logs    map[string][]byte
	attachN int
	logsN   int
}

func newFakeKube() *fakeKube {
	f := &fakeKube{cs: fake.NewClientset(), stdin: map[string][]byte{}, logs: map[string][]byte{}}
	n := 0
	f.cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		pod := a.(k8stesting.CreateAction).GetObject().(*corev1.Pod)
		if pod.Name == "" && pod.GenerateName != "" {
			f.mu.Lock()
			n++
			pod.Name = fmt.Sprintf("%sx%04d", pod.GenerateName, n)
			f.mu.Unlock()
		}
		return false, nil, nil
	})
	return f
}

func (f *fakeKube) factory(method, kubeconfig string) (*Clients, error) {
	if method == AuthRuntime && kubeconfig != "RUNTIME-SECRET" {
		return nil, fmt.Errorf("bad kubeconfig")
	}
	return &Clients{
		Kube: fakeCore{f.cs}, Namespace: "default",
		Attach: func(ctx context.Context, ns, pod string, stdin io.Reader) error {
			b, err := io.ReadAll(stdin)
			f.mu.Lock()
			f.stdin[pod] = b
			f.attachN++
			f.mu.Unlock()
			return err
		},
		Logs: func(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.logsN++
			var since time.Time
			if opts.SinceTime != nil {
				since = opts.SinceTime.Time
			}
			return io.NopCloser(bytes.NewReader(replay(f.logs[pod], since))), nil
		},
	}, nil
}

// fakeCore is the fake clientset's core/v1 client as the work type's
// CoreAPI.
type fakeCore struct{ cs *fake.Clientset }

func (c fakeCore) Pods(ns string) PodAPI     { return c.cs.CoreV1().Pods(ns) }
func (c fakeCore) Events(ns string) EventAPI { return c.cs.CoreV1().Events(ns) }

func (f *fakeKube) onlyPod(t *testing.T, ns string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, 10*time.Second, func() string { return fmt.Sprintf("one pod in %s", ns) }, func() bool {
		l, err := f.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err == nil && len(l.Items) == 1 {
			pod = &l.Items[0]
			return true
		}
		return false
	})
	return pod
}

func (f *fakeKube) setStatus(t *testing.T, pod *corev1.Pod, st corev1.PodStatus) {
	t.Helper()
	p, err := f.cs.CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status = st
	if _, err := f.cs.CoreV1().Pods(pod.Namespace).UpdateStatus(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func running() corev1.PodStatus {
	return corev1.PodStatus{
		Phase:             corev1.PodRunning,
		Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: WorkerContainer, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
	}
}

func terminated(code int32) corev1.PodStatus {
	phase := corev1.PodSucceeded
	if code != 0 {
		phase = corev1.PodFailed
	}
	return corev1.PodStatus{
		Phase:             phase,
		ContainerStatuses: []corev1.ContainerStatus{{Name: WorkerContainer, State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code}}}},
	}
}

// newUnit makes a unit directory as the agent does: status with the
// ExtraData from Prepare, and stdin.
func newUnit(t *testing.T, typ *Type, params map[string]string, stdin string) unit.Dir {
	t.Helper()
	extra, err := typ.Prepare(params)
	if err != nil {
		t.Fatal(err)
	}
	store, err := unit.NewStore(t.TempDir(), "node1")
	if err != nil {
		t.Fatal(err)
	}
	_, dir, err := store.Create(typ.Name(), extra)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir.Path(unit.StdinFile), []byte(stdin), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startUnit creates a unit of typ (newUnit) and starts it; the execution
// is detached when the test ends (Detach is safe after a Cancel or an
// earlier Detach).
func startUnit(t *testing.T, typ *Type, params map[string]string, stdin string) (unit.Dir, *Execution) {
	t.Helper()
	dir := newUnit(t, typ, params, stdin)
	e, err := typ.Start(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Detach)
	return dir, e
}

func waitState(t *testing.T, dir unit.Dir, state unit.State) unit.Status {
	t.Helper()
	var st unit.Status
	eventually(t, 10*time.Second, func() string { return fmt.Sprintf("unit state %s", state.Name()) }, func() bool {
		var err error
		st, err = dir.ReadStatus()
		return err == nil && st.State == state
	})
	return st
}

func fastRetry() Retry {
	return Retry{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond, Timeout: 2 * time.Second}
}

// The "before running" cases: a pod that ends before the agent sees it
// running (created, then straight to terminated: a command that exits at
// once) is followed like any other, its log copied and its exit code
// deciding, with the same Detail; it is sent no stdin.
func TestUnitLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name          string
		code          int32
		state         unit.State
		detail        string
		beforeRunning bool
	}{
		{"succeeds", 0, unit.Succeeded, "Finished", false},
		{"fails", 3, unit.Failed, "container failed with exit code 3", false},
		{"succeeds before running", 0, unit.Succeeded, "Finished", true},
		{"fails before running", 3, unit.Failed, "container failed with exit code 3", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fk := newFakeKube()
			typ, err := New(Config{WorkType: "kube", Namespace: "ns", Image: "img", Command: "cat", Retry: fastRetry()},
				Options{NodeID: "node1", Clients: fk.factory})
			if err != nil {
				t.Fatal(err)
			}
			dir, e := startUnit(t, typ, nil, "hello stdin")
			pod := fk.onlyPod(t, "ns")
			if !strings.HasPrefix(pod.Name, "kube-") || pod.Labels[LabelUnit] != filepath.Base(string(dir)) {
				t.Fatalf("pod %s labels %v", pod.Name, pod.Labels)
			}
			st := waitState(t, dir, unit.Pending)
			eventually(t, 10*time.Second, func() string { return fmt.Sprintf("Detail Pod created") }, func() bool {
				st, _ = dir.ReadStatus()
				return st.Detail == "Pod created"
			})
			ex, _ := parseExtra(st.ExtraData)
			if ex.PodName != pod.Name || ex.PodUID != string(pod.UID) {
				t.Fatalf("pod identity not recorded: %+v", ex)
			}
			log, want := logOf(12)
			fk.mu.Lock()
			fk.logs[pod.Name] = log
			fk.mu.Unlock()
			if !tc.beforeRunning {
				fk.setStatus(t, pod, running())
				waitState(t, dir, unit.Running)
			}
			fk.setStatus(t, pod, terminated(tc.code))
			st = waitState(t, dir, tc.state)
			if st.Detail != tc.detail {
				t.Fatalf("Detail = %q, want %q", st.Detail, tc.detail)
			}
			<-e.Done()
			got, _ := os.ReadFile(dir.Path(unit.StdoutFile))
			if !bytes.Equal(got, want) || st.StdoutSize != int64(len(want)) {
				t.Fatalf("stdout %d bytes (StdoutSize %d), want %d", len(got), st.StdoutSize, len(want))
			}
			fk.mu.Lock()
			defer fk.mu.Unlock()
			wantStdin := "hello stdin"
			if tc.beforeRunning {
				wantStdin = ""
			}
			if string(fk.stdin[pod.Name]) != wantStdin {
				t.Fatalf("stdin sent = %q, want %q", fk.stdin[pod.Name], wantStdin)
			}
		})
	}
}

func TestCancelDeletesPod(t *testing.T) {
	fk := newFakeKube()
	typ, err := New(Config{WorkType: "kube", AuthMethod: "runtime", AllowRuntimeAuth: true, Image: "img", Retry: fastRetry()},
		Options{NodeID: "node1", Clients: fk.factory})
	if err != nil {
		t.Fatal(err)
	}
	dir, e := startUnit(t, typ, map[string]string{"secret_kube_config": "RUNTIME-SECRET", "kube_namespace": "rt"}, "")
	pod := fk.onlyPod(t, "rt")
	fk.setStatus(t, pod, running())
	waitState(t, dir, unit.Running)
	if err := e.Cancel(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, _ := dir.ReadStatus()
	if st.State != unit.Canceled || st.Detail != "Canceled" {
		t.Fatalf("after cancel: %s %q", st.State.Name(), st.Detail)
	}
	if _, err := fk.cs.CoreV1().Pods("rt").Get(context.Background(), pod.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("pod still exists after cancel")
	}
	fk.mu.Lock()
	defer fk.mu.Unlock()
	if fk.attachN != 0 {
		t.Fatal("empty stdin was attached")
	}
}

func TestPendingTimeoutReason(t *testing.T) {
	fk := newFakeKube()
	typ, err := New(Config{WorkType: "kube", Namespace: "ns", Image: "img", AllowRuntimeParams: true, Retry: fastRetry()},
		Options{NodeID: "node1", Clients: fk.factory})
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := startUnit(t, typ, map[string]string{"pod_pending_timeout": "300ms"}, "x")
	pod := fk.onlyPod(t, "ns")
	_, err = fk.cs.CoreV1().Events("ns").Create(context.Background(), &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "ev1", Namespace: "ns"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: pod.Name, Namespace: "ns"},
		Type:           corev1.EventTypeWarning, Reason: "FailedScheduling", Message: "0/1 nodes are available: untolerated taint",
		LastTimestamp: metav1.Now(),
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st := waitState(t, dir, unit.Failed)
	want := "Error creating pod: pod did not start within 300ms: FailedScheduling: 0/1 nodes are available: untolerated taint"
	if st.Detail != want {
		t.Fatalf("Detail = %q\nwant     %q", st.Detail, want)
	}
	eventually(t, 5*time.Second, func() string { return fmt.Sprintf("pending pod deleted") }, func() bool {
		_, err := fk.cs.CoreV1().Pods("ns").Get(context.Background(), pod.Name, metav1.GetOptions{})
		return err != nil
	})
}

func TestRestartReattachesRunningUnit(t *testing.T) {
	fk := newFakeKube()
	typ, err := New(Config{WorkType: "kube", Namespace: "ns", Image: "img", Retry: fastRetry()},
		Options{NodeID: "node1", Clients: fk.factory})
	if err != nil {
		t.Fatal(err)
	}
	dir, e := startUnit(t, typ, nil, "in")
	pod := fk.onlyPod(t, "ns")
	log, want := logOf(30)
	half := bytes.Index(log, []byte("line 20"))
	fk.mu.Lock()
	fk.logs[pod.Name] = log[:half]
	fk.mu.Unlock()
	fk.setStatus(t, pod, running())
	waitState(t, dir, unit.Running)
	eventually(t, 10*time.Second, func() string { return fmt.Sprintf("cursor recorded") }, func() bool {
		st, _ := dir.ReadStatus()
		ex, _ := parseExtra(st.ExtraData)
		return ex.Cursor != nil && ex.Cursor.Lines > 0
	})
	e.Detach() // the agent stops
	// Bytes written past the recorded size by the old agent are dropped
	// and replayed by the new one.
	f, err := os.OpenFile(dir.Path(unit.StdoutFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("GARBAGE")
	f.Close()
	fk.mu.Lock()
	fk.logs[pod.Name] = log
	fk.mu.Unlock()
	st, _ := dir.ReadStatus()
	e2, err := typ.Restart(dir, st)
	if err != nil {
		t.Fatal(err)
	}
	fk.setStatus(t, pod, terminated(0))
	waitState(t, dir, unit.Succeeded)
	<-e2.Done()
	got, _ := os.ReadFile(dir.Path(unit.StdoutFile))
	if !bytes.Equal(got, want) {
		t.Fatalf("stdout after re-attach differs: %d bytes, want %d", len(got), len(want))
	}
	fk.mu.Lock()
	defer fk.mu.Unlock()
	if fk.attachN != 1 {
		t.Fatalf("stdin attached %d times, want once", fk.attachN)
	}
}

func TestRestartPendingDeletesPod(t *testing.T) {
	fk := newFakeKube()
	typ, err := New(Config{WorkType: "kube", Namespace: "ns", Image: "img", DeletePodOnRestart: true, Retry: fastRetry()},
		Options{NodeID: "node1", Clients: fk.factory})
	if err != nil {
		t.Fatal(err)
	}
	dir, e := startUnit(t, typ, nil, "in")
	pod := fk.onlyPod(t, "ns")
	eventually(t, 10*time.Second, func() string { return fmt.Sprintf("pod recorded") }, func() bool {
		st, _ := dir.ReadStatus()
		return st.Detail == "Pod created"
	})
	e.Detach()
	st, _ := dir.ReadStatus()
	x, err := typ.Restart(dir, st)
	if err == nil || err.Error() != "work unit is not in running state, cannot be restarted" {
		t.Fatalf("Restart error = %v", err)
	}
	<-x.Done()
	if _, err := fk.cs.CoreV1().Pods("ns").Get(context.Background(), pod.Name, metav1.GetOptions{}); err == nil {
		t.Fatal("pending pod not deleted on restart")
	}
}

func TestReapDeletesOrphanPods(t *testing.T) {
	fk := newFakeKube()
	typ, err := New(Config{WorkType: "kube", Namespace: "ns", Image: "img"}, Options{NodeID: "node1", Clients: fk.factory})
	if err != nil {
		t.Fatal(err)
	}
	other, err := New(Config{WorkType: "kube", Namespace: "ns", Image: "img"}, Options{NodeID: "node2", Clients: fk.factory})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(typ *Type, id string) string {
		pod, err := typ.buildPod(extraData{upstreamExtra: upstreamExtra{KubeNamespace: "ns", Image: "img"}}, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := fk.cs.CoreV1().Pods("ns").Create(context.Background(), pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p.Name
	}
	live, gone, othersGone := mk(typ, "LIVE0001"), mk(typ, "GONE0001"), mk(other, "GONE0002")
	if err := typ.Reap(context.Background(), func(id string) bool { return id == "LIVE0001" }); err != nil {
		t.Fatal(err)
	}
	exists := func(name string) bool {
		_, err := fk.cs.CoreV1().Pods("ns").Get(context.Background(), name, metav1.GetOptions{})
		return err == nil
	}
	if !exists(live) || exists(gone) || !exists(othersGone) {
		t.Fatalf("after reap: live %v, gone %v, other node's %v", exists(live), exists(gone), exists(othersGone))
	}
}

// eventually polls cond until it holds, failing the test after timeout.
func eventually(t *testing.T, timeout time.Duration, what func() string, cond func() bool) {
	t.Helper()
	if !testkit.Poll(timeout, cond) {
		t.Fatalf("not within %v: %s", timeout, what())
	}
}

// burstLog renders n short lines the way the kubelet does, 1,000 lines
// per second (seq's output is far denser): a stream reopened with
// sinceTime replays up to a second of lines, tens of kilobytes.
func burstLog(n int) ([]byte, []byte) {
	var ts, plain bytes.Buffer
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range n {
		line := fmt.Sprintf("%d\n", i+1)
		stamp := base.Add(time.Duration(i) * time.Millisecond)
		fmt.Fprintf(&ts, "%s %s", stamp.Format(time.RFC3339Nano), line)
		plain.WriteString(line)
	}
	return ts.Bytes(), plain.Bytes()
}

// cleanCut ends a stream after limit bytes with a clean EOF, as a log
// stream cut by log rotation or a proxy that closed it in order does.
func cleanCut(b []byte, limit int) io.ReadCloser {
	if limit < len(b) {
		b = b[:limit]
	}
	return io.NopCloser(bytes.NewReader(b))
}

// TestFinishedPodLogReadToEnd: the pod has finished, and its log streams
// end early with a clean EOF. The unit must not finish before the log
// was read to its end, whatever a stream's end looks like; and when the
// log cannot be read to the end, the unit fails rather than succeeding
// with part of the output.
func TestFinishedPodLogReadToEnd(t *testing.T) {
	const cut = 10_000
	log, want := burstLog(3000) // about 120 kB, 3 seconds
	for _, tc := range []struct {
		name string
		// stream returns the stream for the replay starting at byte
		// start of the log; n counts the streams opened so far.
		stream func(replayed []byte, start, n int) io.ReadCloser
		state  unit.State
	}{
		// A cut happens once at each point of the log (a rotation, a
		// dropped connection), every cut bytes of it.
		{"each cut point once", func() func([]byte, int, int) io.ReadCloser {
			next := cut
			return func(b []byte, start, _ int) io.ReadCloser {
				for next <= start {
					next += cut
				}
				at := next - start
				if at < len(b) {
					next += cut
				}
				return cleanCut(b, at)
			}
		}(), unit.Succeeded},
		// The first stream ends after cut bytes, every later one
		// sooner, inside the second of lines it replays: the log can
		// never be read to its end. (A cut exactly where the output
		// written ends cannot be told from the end of the log by any
		// reader of the stream.)
		{"every stream cut in the replay", func(b []byte, _, n int) io.ReadCloser {
			if n == 1 {
				return cleanCut(b, cut)
			}
			return cleanCut(b, cut/2)
		}, unit.Failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fk := newFakeKube()
			typ, err := New(Config{WorkType: "kube", Namespace: "ns", Image: "img", Command: "seq", Retry: fastRetry()},
				Options{NodeID: "node1", Clients: func(method, kubeconfig string) (*Clients, error) {
					c, err := fk.factory(method, kubeconfig)
					if err != nil {
						return nil, err
					}
					n := 0
					c.Logs = func(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
						var since time.Time
						if opts.SinceTime != nil {
							since = opts.SinceTime.Time
						}
						b := replay(log, since)
						n++
						return tc.stream(b, len(log)-len(b), n), nil
					}
					return c, nil
				}})
			if err != nil {
				t.Fatal(err)
			}
			dir, e := startUnit(t, typ, nil, "")
			pod := fk.onlyPod(t, "ns")
			fk.setStatus(t, pod, terminated(0))
			<-e.Done()
			st, err := dir.ReadStatus()
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(dir.Path(unit.StdoutFile))
			if st.State != tc.state {
				t.Fatalf("state %s (%q) with %d of %d bytes, want %s", st.State.Name(), st.Detail, len(got), len(want), tc.state.Name())
			}
			if tc.state == unit.Succeeded && (!bytes.Equal(got, want) || st.StdoutSize != int64(len(want))) {
				t.Fatalf("stdout %d bytes (StdoutSize %d), want %d", len(got), st.StdoutSize, len(want))
			}
			t.Logf("%s: %q, %d of %d bytes", st.State.Name(), st.Detail, len(got), len(want))
		})
	}
}

// endAfter yields b, then ends cleanly once done is closed (a follow
// stream that ends when the container exits).
type endAfter struct {
	r    io.Reader
	done <-chan struct{}
}

func (e *endAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		<-e.done
	}
	return n, err
}

// TestNoReconnectStreamsOnce: with log reconnect disabled the stream has
// no timestamps and cannot be resumed; its clean end followed by the
// pod's exit (reported a little later) completes the unit with the
// output exactly once.
func TestNoReconnectStreamsOnce(t *testing.T) {
	_, want := logOf(12)
	exited := make(chan struct{})
	fk := newFakeKube()
	var mu sync.Mutex
	streams := 0
	typ, err := New(Config{WorkType: "kube", Namespace: "ns", Image: "img", Command: "cat", Retry: fastRetry()},
		Options{NodeID: "node1", Tuning: Tuning{SupportReconnect: "disabled"}, Clients: func(method, kubeconfig string) (*Clients, error) {
			c, err := fk.factory(method, kubeconfig)
			if err != nil {
				return nil, err
			}
			c.Logs = func(ctx context.Context, ns, pod string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
				mu.Lock()
				streams++
				mu.Unlock()
				if opts.Timestamps || opts.SinceTime != nil {
					return nil, fmt.Errorf("timestamps or sinceTime asked with reconnect disabled")
				}
				return io.NopCloser(&endAfter{r: bytes.NewReader(want), done: exited}), nil
			}
			return c, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	dir, e := startUnit(t, typ, nil, "")
	pod := fk.onlyPod(t, "ns")
	fk.setStatus(t, pod, running())
	waitState(t, dir, unit.Running)
	close(exited)
	time.Sleep(100 * time.Millisecond) // the pod's status arrives after the stream's end
	fk.setStatus(t, pod, terminated(0))
	<-e.Done()
	st, _ := dir.ReadStatus()
	got, _ := os.ReadFile(dir.Path(unit.StdoutFile))
	if st.State != unit.Succeeded || !bytes.Equal(got, want) {
		t.Fatalf("state %s (%q), stdout %d bytes, want Succeeded and %d bytes", st.State.Name(), st.Detail, len(got), len(want))
	}
	mu.Lock()
	defer mu.Unlock()
	if streams != 1 {
		t.Fatalf("%d log streams opened, want 1", streams)
	}
}

// TestReapUsesKubeconfigFile: a kubeconfig work type's reaper connects
// with the configured kubeconfig file, through the real client stack, to
// an HTTP server answering as the API server does. (It used the default
// loading rules instead, and failed with "no configuration has been
// provided" where no default kubeconfig exists.)
func TestReapUsesKubeconfigFile(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "absent"))
	t.Setenv("HOME", t.TempDir())
	orphan := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "kube-orphan", Namespace: "fromfile",
			Labels:            map[string]string{LabelUnit: "GONE0001", LabelNode: NodeLabel("node1")},
			Annotations:       map[string]string{AnnotationNode: "node1"},
			CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour)),
		},
	}
	var (
		mu       sync.Mutex
		requests []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests = append(requests, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/fromfile/pods":
			_ = json.NewEncoder(w).Encode(corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"}, Items: []corev1.Pod{orphan}})
		case r.Method == http.MethodDelete && r.URL.Path == "/api/v1/namespaces/fromfile/pods/kube-orphan":
			_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: t0k}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: fromfile}}]
current-context: x
`, srv.URL)
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	typ, err := New(Config{WorkType: "kube", AuthMethod: AuthKubeconfig, KubeConfig: kc, Image: "img"}, Options{NodeID: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := typ.Reap(context.Background(), func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "DELETE /api/v1/namespaces/fromfile/pods/kube-orphan?"
	if len(requests) != 2 || !strings.HasPrefix(requests[0], "GET /api/v1/namespaces/fromfile/pods?") || requests[1] != want {
		t.Fatalf("requests %q, want the list of namespace fromfile then %q", requests, want)
	}
}
