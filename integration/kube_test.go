package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
)

// The kubernetes work type against a real kube-apiserver and etcd, with
// pods run by tools/kubenode (make test-k8s; docs/kubernetes.md). Skipped
// unless RECEPTOR_KUBE_APISERVER, RECEPTOR_KUBENODE and RECEPTOR_KUBE_ETCD
// name the programs (scripts/kube-test-bins.sh builds and prints them).

// kubeCluster is one API server with its etcd and test node.
type kubeCluster struct {
	t          *testing.T
	dir        string
	url        string
	token      string
	kubeconfig string // path
	http       *http.Client
}

func kubeBins(t *testing.T) (apiserver, node, etcd string) {
	apiserver, node, etcd = os.Getenv("RECEPTOR_KUBE_APISERVER"), os.Getenv("RECEPTOR_KUBENODE"), os.Getenv("RECEPTOR_KUBE_ETCD")
	if apiserver == "" || node == "" || etcd == "" {
		t.Skip("RECEPTOR_KUBE_APISERVER, RECEPTOR_KUBENODE and RECEPTOR_KUBE_ETCD are not set (make test-k8s)")
	}
	return apiserver, node, etcd
}

func startKubeCluster(t *testing.T) *kubeCluster {
	t.Helper()
	apiserver, nodeBin, etcdBin := kubeBins(t)
	dir := shortTempDir(t)
	c := &kubeCluster{t: t, dir: dir, token: hex.EncodeToString([]byte(t.Name()))[:16] + "0123456789abcdef"}
	c.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the test API server's own certificate
	}}
	t.Cleanup(c.http.CloseIdleConnections)

	etcdPort, peerPort := freePort(t), freePort(t)
	etcd := c.start("etcd", etcdBin, "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort))
	_ = etcd

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	saKey := filepath.Join(dir, "sa.key")
	writeFile(t, saKey, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	tokens := filepath.Join(dir, "tokens.csv")
	writeFile(t, tokens, c.token+",admin,admin-uid,system:masters\n")
	port := freePort(t)
	c.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	c.start("kube-apiserver", apiserver,
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdPort),
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(port), "--cert-dir", filepath.Join(dir, "certs"),
		"--service-cluster-ip-range", "10.96.0.0/16",
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--token-auth-file", tokens, "--authorization-mode", "RBAC",
		// The kubernetes Service's endpoint may not be a loopback address;
		// no pod of the tests talks to the API server through it.
		"--endpoint-reconciler-type", "none")
	if !testkit.Poll(90*time.Second, func() bool {
		code, _ := c.do("GET", "/readyz", nil)
		return code == 200
	}) {
		t.Fatalf("kube-apiserver not ready\n%s", testkit.LogTail(filepath.Join(dir, "kube-apiserver.log"), 8<<10))
	}
	c.kubeconfig = filepath.Join(dir, "kubeconfig")
	writeFile(t, c.kubeconfig, c.kubeconfigYAML("default"))
	c.start("kubenode", nodeBin, "--kubeconfig", c.kubeconfig, "--node", "kubenode",
		"--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--dir", dir)
	if !testkit.Poll(60*time.Second, func() bool {
		var n struct {
			Status struct {
				Conditions []struct{ Type, Status string }
			}
		}
		if code, _ := c.getJSON("/api/v1/nodes/kubenode", &n); code != 200 {
			return false
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == "Ready" && cond.Status == "True" {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("test node not ready\n%s", testkit.LogTail(filepath.Join(dir, "kubenode.log"), 8<<10))
	}
	return c
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func (c *kubeCluster) start(name, bin string, args ...string) *testkit.Process {
	c.t.Helper()
	p, err := testkit.StartProcess(c.dir, filepath.Join(c.dir, name+".log"), bin, args...)
	if err != nil {
		c.t.Fatalf("starting %s: %v", name, err)
	}
	c.t.Cleanup(func() {
		_ = p.Stop(15 * time.Second)
		if c.t.Failed() {
			c.t.Logf("---- %s log ----\n%s", name, testkit.LogTail(filepath.Join(c.dir, name+".log"), 6<<10))
		}
	})
	return p
}

// kubeconfigYAML is a kubeconfig for the test API server with namespace ns.
func (c *kubeCluster) kubeconfigYAML(ns string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: %q}
current-context: test
`, c.url, c.token, ns)
}

func (c *kubeCluster) do(method, path string, body any) (int, []byte) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (c *kubeCluster) getJSON(path string, out any) (int, error) {
	code, b := c.do("GET", path, nil)
	if code != 200 {
		return code, fmt.Errorf("GET %s: %d %s", path, code, b)
	}
	return code, json.Unmarshal(b, out)
}

// namespace creates ns with its default service account (no controller
// manager runs to create it).
func (c *kubeCluster) namespace(ns string) {
	c.t.Helper()
	if code, b := c.do("POST", "/api/v1/namespaces", map[string]any{"metadata": map[string]string{"name": ns}}); code != 201 {
		c.t.Fatalf("creating namespace %s: %d %s", ns, code, b)
	}
	if code, b := c.do("POST", "/api/v1/namespaces/"+ns+"/serviceaccounts", map[string]any{"metadata": map[string]string{"name": "default"}}); code != 201 {
		c.t.Fatalf("creating service account in %s: %d %s", ns, code, b)
	}
}

// pods lists the names of the pods in ns that are not being deleted.
func (c *kubeCluster) pods(ns string) []string {
	var l struct {
		Items []struct {
			Metadata struct {
				Name              string
				DeletionTimestamp *string
			}
		}
	}
	if _, err := c.getJSON("/api/v1/namespaces/"+ns+"/pods", &l); err != nil {
		c.t.Fatal(err)
	}
	var names []string
	for _, it := range l.Items {
		if it.Metadata.DeletionTimestamp == nil {
			names = append(names, it.Metadata.Name)
		}
	}
	return names
}

func (c *kubeCluster) waitNoPods(ns string) {
	c.t.Helper()
	if !testkit.Poll(60*time.Second, func() bool { return len(c.pods(ns)) == 0 }) {
		c.t.Fatalf("pods left in %s: %v", ns, c.pods(ns))
	}
}

// kubeEntities is an AWX-style control plane's pair of kubernetes work
// types (docs/kubernetes.md) plus a kubeconfig-authenticated one for tests.
func (c *kubeCluster) kubeEntities(ns string) []string {
	fast := []string{"retryinitial", "50ms", "retrymax", "1s", "retrytimeout", "60s"}
	return []string{
		entity("work-kubernetes", append([]string{"worktype", "kubernetes-runtime-auth", "authmethod", "runtime",
			"allowruntimeauth", "true", "allowruntimepod", "true", "allowruntimeparams", "true"}, fast...)...),
		entity("work-kubernetes", "worktype", "kubernetes-incluster-auth", "authmethod", "incluster",
			"allowruntimeauth", "true", "allowruntimepod", "true", "allowruntimeparams", "true"),
		entity("work-kubernetes", append([]string{"worktype", "kube", "authmethod", "kubeconfig", "kubeconfig", c.kubeconfig,
			"namespace", ns, "image", "none", "allowruntimecommand", "true", "allowruntimeparams", "true"}, fast...)...),
	}
}

func kubeNode(t *testing.T, c *kubeCluster, id, ns string) *Node {
	n := NewNode(t, id)
	n.Start(Spec{Bin: "receptor", Config: func(n *Node) string {
		return nodeYAML(n, nil, append([]string{"- local-only\n"}, c.kubeEntities(ns)...)...)
	}})
	return n
}

// podYAML is a pod spec for secret_kube_pod.
func podYAML(ns, script string, annotations, nodeSelector map[string]string) string {
	pod := map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"namespace": ns, "annotations": annotations},
		"spec": map[string]any{
			"nodeSelector": nodeSelector,
			"containers": []map[string]any{{
				"name": "worker", "image": "none", "command": []string{"sh", "-c", script},
			}},
		},
	}
	b, _ := json.Marshal(pod) // JSON is YAML
	return string(b)
}

func TestKubernetesWork(t *testing.T) {
	c := startKubeCluster(t)

	// deploy/kubernetes (kubectl apply -k) accepted by the real API server:
	// schemas, field validation and admission, not only kustomize's
	// rendering (integration/deploy). Nothing is created (server dry run).
	t.Run("DeployManifestsServerDryRun", func(t *testing.T) {
		kubectl, err := exec.LookPath("kubectl")
		if err != nil {
			t.Skip("kubectl is not installed")
		}
		dir, err := filepath.Abs(filepath.Join("..", "deploy", "kubernetes"))
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(kubectl, "--kubeconfig", c.kubeconfig, "apply", "--dry-run=server",
			"--validate=strict", "-k", dir).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl apply --dry-run=server: %v\n%s", err, out)
		}
		for _, obj := range []string{"configmap/receptor-config", "service/receptor-mesh", "deployment.apps/receptor"} {
			if !strings.Contains(string(out), obj+" created (server dry run)") {
				t.Fatalf("%s not accepted:\n%s", obj, out)
			}
		}
		if pods := c.pods("default"); len(pods) != 0 {
			t.Fatalf("a dry run created pods: %v", pods)
		}
	})

	t.Run("StdinAndLargeOutput", func(t *testing.T) {
		c.namespace("big")
		n := kubeNode(t, c, "kbig", "big")
		const size = 8 << 20
		want, _ := workDigest(t, workPayload(7, size))
		id, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": n.ID, "worktype": "kube", "kube_command": "cat"}, workPayload(7, size))
		st := workWaitState(t, n.Socket, n.ID, id, workSucceeded)
		if st.Detail != "Finished" || st.StdoutSize != size {
			t.Fatalf("status %+v", st)
		}
		got, gotN := workResults(t, n.Socket, n.ID, id)
		if got != want || gotN != size {
			t.Fatalf("results %d bytes %s, want %d bytes %s", gotN, got, size, want)
		}
		var ex struct{ PodName, KubeNamespace string }
		if err := json.Unmarshal(st.ExtraData, &ex); err != nil || !strings.HasPrefix(ex.PodName, "kube-") || ex.KubeNamespace != "big" {
			t.Fatalf("ExtraData %s", st.ExtraData)
		}
		if reply := workCommand(t, n.Socket, n.ID, "work release "+id); !strings.Contains(reply, "released") {
			t.Fatalf("release: %s", reply)
		}
		c.waitNoPods("big")
	})

	t.Run("FailingContainer", func(t *testing.T) {
		c.namespace("fail")
		n := kubeNode(t, c, "kfail", "fail")
		id, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": n.ID, "worktype": "kube", "kube_command": "sh",
			"kube_params": "-c 'echo oops; exit 3'"}, nil)
		st := workWaitState(t, n.Socket, n.ID, id, workFailed)
		if st.Detail != "container failed with exit code 3" {
			t.Fatalf("Detail %q", st.Detail)
		}
		if _, size := workResults(t, n.Socket, n.ID, id); size != int64(len("oops\n")) {
			t.Fatalf("results %d bytes", size)
		}
	})

	t.Run("CancelAndRelease", func(t *testing.T) {
		c.namespace("cancel")
		n := kubeNode(t, c, "kcancel", "cancel")
		id, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": n.ID, "worktype": "kube", "kube_command": "sleep", "kube_params": "600"}, nil)
		workWaitState(t, n.Socket, n.ID, id, workRunning)
		if len(c.pods("cancel")) != 1 {
			t.Fatalf("pods %v", c.pods("cancel"))
		}
		if reply := workCommand(t, n.Socket, n.ID, "work cancel "+id); !strings.Contains(reply, "cancelled") {
			t.Fatalf("cancel: %s", reply)
		}
		st := workWaitState(t, n.Socket, n.ID, id, workCanceled)
		if st.Detail != "Canceled" {
			t.Fatalf("Detail %q", st.Detail)
		}
		c.waitNoPods("cancel")
		id2, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": n.ID, "worktype": "kube", "kube_command": "sleep", "kube_params": "600"}, nil)
		workWaitState(t, n.Socket, n.ID, id2, workRunning)
		if reply := workCommand(t, n.Socket, n.ID, "work release "+id2); !strings.Contains(reply, "released") {
			t.Fatalf("release: %s", reply)
		}
		c.waitNoPods("cancel")
		if _, errLine := workStatus(t, n.Socket, n.ID, id2); !strings.HasPrefix(errLine, "ERROR: unknown work unit") {
			t.Fatalf("status after release: %q", errLine)
		}
	})

	t.Run("RuntimeAuthAndPod", func(t *testing.T) {
		c.namespace("rt")
		n := kubeNode(t, c, "krt", "rt")
		kc := c.kubeconfigYAML("rt")
		pod := podYAML("rt", "cat; echo done", map[string]string{"x": "y"}, nil)
		id, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": n.ID, "worktype": "kubernetes-runtime-auth",
			"secret_kube_config": kc, "secret_kube_pod": pod}, strings.NewReader("from stdin\n"))
		st := workWaitState(t, n.Socket, n.ID, id, workSucceeded)
		sum, size := workResults(t, n.Socket, n.ID, id)
		want, wantN := workDigest(t, strings.NewReader("from stdin\ndone\n"))
		if sum != want || size != wantN {
			t.Fatalf("results %d bytes, want %d", size, wantN)
		}
		for what, text := range map[string]string{
			"status": string(st.ExtraData), "list": workCommand(t, n.Socket, n.ID, "work list"),
			"log": testkit.LogTail(n.Log, 1<<20),
		} {
			if strings.Contains(text, c.token) || strings.Contains(text, "worker") && what != "log" {
				t.Fatalf("%s shows the runtime secrets: %s", what, truncate(text))
			}
		}
	})

	t.Run("UnschedulablePendingTimeout", func(t *testing.T) {
		c.namespace("pend")
		n := kubeNode(t, c, "kpend", "pend")
		id, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": n.ID, "worktype": "kubernetes-runtime-auth",
			"secret_kube_config": c.kubeconfigYAML("pend"), "pod_pending_timeout": "4s",
			"secret_kube_pod": podYAML("pend", "true", nil, map[string]string{"disk": "ssd"})}, nil)
		st := workWaitState(t, n.Socket, n.ID, id, workFailed)
		if !strings.HasPrefix(st.Detail, "Error creating pod: pod did not start within 4s: FailedScheduling: 0/1 nodes are available") {
			t.Fatalf("Detail %q", st.Detail)
		}
		c.waitNoPods("pend")
	})

	// seq's output, the log of the next two scenarios.
	seqOut := func(n int) string {
		out, err := exec.Command("seq", "1", strconv.Itoa(n)).Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}

	t.Run("LogStreamCutResumes", func(t *testing.T) {
		c.namespace("cut")
		n := kubeNode(t, c, "kcut", "cut")
		// The node cuts this pod's log streams at every 50,000 bytes of
		// output, mid-line, each point once (a rotation, a dropped
		// connection); most of seq's output is written within one
		// second, so every reopened stream (sinceTime has one-second
		// resolution) replays lines already written. The unit's stdout
		// must still be the whole log, once.
		pod := podYAML("cut", "seq 1 200000", map[string]string{"kubenode.receptor.mesh/cut-log-after": "50000"}, nil)
		id, _ := workSubmit(t, n.Socket, n.ID, map[string]string{"node": n.ID, "worktype": "kubernetes-runtime-auth",
			"secret_kube_config": c.kubeconfigYAML("cut"), "secret_kube_pod": pod}, nil)
		workWaitState(t, n.Socket, n.ID, id, workSucceeded)
		sum, size := workResults(t, n.Socket, n.ID, id)
		want, wantN := workDigest(t, strings.NewReader(seqOut(200000)))
		if sum != want || size != wantN {
			t.Fatalf("results %d bytes, want %d (lost or doubled lines)", size, wantN)
		}
		nodeLog, _ := os.ReadFile(filepath.Join(c.dir, "kubenode.log"))
		cuts := strings.Count(string(nodeLog), "cut log stream of "+filepath.Join(c.dir, "cut_"))
		if cuts < int(wantN/50000) {
			t.Fatalf("the node cut the log %d times, want %d", cuts, wantN/50000)
		}
		t.Logf("%d bytes byte-identical through %d cut log streams", size, cuts)
		// The node's kubeconfig work type (kube) reaped with its
		// kubeconfig file: no connection error at start. (The
		// incluster type's reaper cannot connect outside a cluster.)
		if n.LogContains("work-kubernetes kube: connecting to reap pods") {
			t.Fatalf("the reaper could not connect:\n%s", n.logTail())
		}
	})

	t.Run("WorkerRestartReattaches", func(t *testing.T) {
		c.namespace("split")
		s := workStartSplit(t, "ksplit", c.kubeEntities("split")...)
		script := "for i in $(seq 1 60); do echo $i; sleep 0.1; done"
		id, _ := workSubmit(t, s.router.Socket, s.id, map[string]string{"node": s.id, "worktype": "kube",
			"kube_command": "sh", "kube_params": "-c '" + script + "'"}, nil)
		workWaitState(t, s.router.Socket, s.id, id, workRunning)
		if !testkit.Poll(30*time.Second, func() bool {
			st, _ := workStatus(t, s.router.Socket, s.id, id)
			return st.StdoutSize > 0
		}) {
			t.Fatal("no output before the worker is killed")
		}
		s.worker.Kill()
		time.Sleep(time.Second) // the pod keeps writing meanwhile
		s.worker.Restart()
		s.waitWorker()
		st := workWaitState(t, s.router.Socket, s.id, id, workSucceeded)
		sum, size := workResults(t, s.router.Socket, s.id, id)
		want, wantN := workDigest(t, strings.NewReader(seqOut(60)))
		if sum != want || size != wantN || st.StdoutSize != wantN {
			t.Fatalf("results %d bytes (StdoutSize %d), want %d", size, st.StdoutSize, wantN)
		}
	})
}

// TestKubernetesWorkTypesAdvertised starts an AWX-style control plane (both
// kubernetes work types) without a cluster: the node starts, advertises
// the types, and a unit that cannot reach Kubernetes fails with the
// connection error (as upstream: ERROR to the submitter, the unit Failed)
// instead of `unknown work type`. Runs in `make test`.
func TestKubernetesWorkTypesAdvertised(t *testing.T) {
	for _, bin := range []string{"receptor"} {
		n := NewNode(t, "kawx")
		n.Start(Spec{Bin: bin, Config: func(n *Node) string {
			return nodeYAML(n, nil, "- local-only\n",
				entity("work-kubernetes", "worktype", "kubernetes-runtime-auth", "authmethod", "runtime",
					"allowruntimeauth", "true", "allowruntimepod", "true", "allowruntimeparams", "true"),
				entity("work-kubernetes", "worktype", "kubernetes-incluster-auth", "authmethod", "incluster",
					"allowruntimeauth", "true", "allowruntimepod", "true", "allowruntimeparams", "true"))
		}})
		var types []string
		if !testkit.Poll(convergeTimeout, func() bool {
			types, _ = controlWorkTypes(t, n, n.ID)
			return strings.Join(types, ",") == "kubernetes-runtime-auth,kubernetes-incluster-auth"
		}) {
			t.Fatalf("advertised work types %v", types)
		}
		// Outside a cluster the in-cluster type cannot connect.
		id, final, err := workTrySubmit(n.Socket, n.ID, map[string]string{"node": n.ID, "worktype": "kubernetes-incluster-auth", "kube_namespace": "x"}, nil)
		if err == nil || !strings.HasPrefix(final, "ERROR: unable to load in-cluster configuration") {
			t.Fatalf("in-cluster submit outside a cluster: %q, %v", final, err)
		}
		st := workWaitState(t, n.Socket, n.ID, id, workFailed)
		if !strings.HasPrefix(st.Detail, "Error starting worker: ") {
			t.Fatalf("Detail %q", st.Detail)
		}
		// Runtime auth without secret_kube_config is refused before allocation.
		_, final, err = workTrySubmit(n.Socket, n.ID, map[string]string{"node": n.ID, "worktype": "kubernetes-runtime-auth"}, nil)
		if err == nil || final != "ERROR: param secret_kube_config must be provided if AuthMethod=runtime" {
			t.Fatalf("runtime submit without kubeconfig: %q, %v", final, err)
		}
	}
}
