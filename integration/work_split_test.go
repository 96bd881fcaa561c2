package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// The split deployment: receptor-router and receptor-worker started from
// the example configurations in deploy/, with paths and ports rewritten
// into the test's directories.

// workSplit is one node run as two processes.
type workSplit struct {
	id      string
	router  *Node // runs receptor-router; its Dir holds both processes' sockets and the datadir
	worker  *Node // runs receptor-worker
	datadir string
	ca      *testCA // issued the router's mesh certificate (deploy/ uses TLS)
}

// tlsPeer is the configuration a node named id needs to peer with the
// split router, whose listener requires a certificate from the same CA.
func (s *workSplit) tlsPeer(t *testing.T, id string) func(*Node) string {
	nc := s.ca.issue(t, id)
	return func(*Node) string {
		return entity("tls-client", "name", "splitpeer", "cert", nc.Cert, "key", nc.Key, "rootcas", s.ca.Cert) +
			entity("tcp-peer", "address", s.router.Addr("mesh"), "tls", "splitpeer")
	}
}

// workDeployConfig reads deploy/<file> and applies the replacements in
// order; each old text must occur, so that a change of the example files
// fails here instead of silently testing something else.
func workDeployConfig(t *testing.T, file string, repl ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "deploy", file))
	if err != nil {
		t.Fatalf("example configuration: %v", err)
	}
	s := string(b)
	for i := 0; i+1 < len(repl); i += 2 {
		if !strings.Contains(s, repl[i]) {
			t.Fatalf("deploy/%s no longer contains %q; update the test", file, repl[i])
		}
		s = strings.ReplaceAll(s, repl[i], repl[i+1])
	}
	return s
}

// workStartSplit starts the router and then the worker of node id from
// deploy/router.yaml and deploy/worker.yaml; workerItems (work types) are
// appended to the worker's configuration.
func workStartSplit(t *testing.T, id string, workerItems ...string) *workSplit {
	t.Helper()
	s := &workSplit{id: id, router: NewNode(t, id), worker: NewNode(t, id)}
	s.datadir = filepath.Join(s.router.Dir, "data")
	ca := newCA(t)
	s.ca = ca
	nc := ca.issue(t, id)
	common := func() []string {
		return []string{
			"id: node-a", "id: " + id,
			"datadir: /var/lib/receptor", "datadir: " + s.datadir,
			"- log-level: info", "- log-level: debug",
		}
	}
	s.router.Start(Spec{Bin: routerBin, Config: func(n *Node) string {
		return workDeployConfig(t, "router.yaml", append(common(),
			"port: 2222", fmt.Sprintf("port: %d", n.Port("mesh")),
			"/etc/receptor/tls/node-a.crt", nc.Cert, "/etc/receptor/tls/node-a.key", nc.Key,
			"/etc/receptor/tls/ca.crt", ca.Cert,
			"filename: /run/receptor/receptor.sock", "filename: "+n.Socket,
			"/run/receptor/", n.Dir+"/",
			"127.0.0.1:8080", n.Addr("http"),
		)...)
	}})
	s.waitRouterInit(0)
	s.worker.Start(Spec{Bin: "receptor-worker", NoReadyCheck: true, Config: func(*Node) string {
		return workDeployConfig(t, "worker.yaml", append(common(),
			"/run/receptor/", s.router.Dir+"/",
		)...) + strings.Join(workerItems, "")
	}})
	s.waitWorker()
	return s
}

// workInitLog is what the router logs once every listener is up; its
// control socket answers earlier, before the gRPC socket the worker needs.
const workInitLog = "Initialization complete"

// waitRouterInit waits until the router's log has more than before
// start-up completions (the log is appended to across restarts).
func (s *workSplit) waitRouterInit(before int) {
	s.router.t.Helper()
	testkit.Eventually(s.router.t, startTimeout, "router start-up complete", func() error {
		if workLogCount(s.router.t, s.router, workInitLog) > before {
			return nil
		}
		return errors.New("want workLogCount(s.router.t, s.router, workInitLog) > before")
	})
}

// restartRouter restarts a stopped or killed router and waits until its
// gRPC API is up again.
func (s *workSplit) restartRouter() {
	s.router.t.Helper()
	before := workLogCount(s.router.t, s.router, workInitLog)
	s.router.Restart()
	s.waitRouterInit(before)
}

// waitWorker waits until the router reaches the worker: `work list`
// answers with JSON instead of an ERROR.
func (s *workSplit) waitWorker() {
	s.router.t.Helper()
	var last string
	ok := testkit.Poll(startTimeout, func() bool {
		if exited, err := s.worker.Exited(); exited {
			s.router.t.Fatalf("receptor-worker exited: %v", err)
		}
		last = workCommand(s.router.t, s.router.Socket, s.id, "work list")
		return strings.HasPrefix(last, "{")
	})
	if !ok {
		s.router.t.Fatalf("work agent of %s not reachable within %v; last reply %q", s.id, startTimeout, last)
	}
}

// TestWorkSplitDeploy runs work on a split node through its three faces:
// the control socket, gRPC and REST; and checks that the router answers
// without its worker, and recovers when the worker comes back.
func TestWorkSplitDeploy(t *testing.T) {
	t.Parallel()
	s := workStartSplit(t, "sa")
	sock := s.router.Socket
	const size = 1 << 20
	want, _ := workDigest(t, workPayload(7, size))

	t.Run("control socket", func(t *testing.T) {
		id, final := workSubmit(t, sock, s.id, map[string]string{"node": s.id, "worktype": "cat"}, workPayload(7, size))
		if want := fmt.Sprintf(`{"result":"Job Started","unitid":%q}`, id); final != want {
			t.Errorf("submit reply %q, want %q", final, want)
		}
		st := workWaitState(t, sock, s.id, id, workSucceeded)
		if st.StdoutSize != size || st.WorkType != "cat" {
			t.Errorf("status %+v", st)
		}
		if got, n := workResults(t, sock, s.id, id); got != want || n != size {
			t.Errorf("results: %d bytes %s, want %d bytes %s", n, got, size, want)
		}
		// The worker owns the files, in the datadir both configurations name.
		if got := workFileSize(filepath.Join(workUnitDir(s.datadir, s.id, id), "stdout")); got != size {
			t.Errorf("stdout file in the shared datadir: %d bytes, want %d", got, size)
		}
	})

	t.Run("grpc", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), workTransferTimeout)
		defer cancel()
		conn, err := grpc.NewClient("unix://"+filepath.Join(s.router.Dir, "router.sock"),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("grpc client: %v", err)
		}
		defer conn.Close()
		cc := controlv1.NewControlServiceClient(conn)
		id := workGRPCSubmit(ctx, t, cc, &workv1.SubmitParams{WorkType: "cat", Node: s.id}, workPayload(7, size))
		st := workWaitState(t, sock, s.id, id, workSucceeded)
		if st.StdoutSize != size {
			t.Errorf("StdoutSize %d, want %d", st.StdoutSize, size)
		}
		got, n := workGRPCResults(ctx, t, cc, id)
		if got != want || n != size {
			t.Errorf("gRPC results: %d bytes %s, want %d bytes %s", n, got, size, want)
		}
	})

	t.Run("rest", func(t *testing.T) {
		base := "http://" + s.router.Addr("http")
		input := []byte("hello over REST\n")
		body, _ := json.Marshal(map[string]any{
			"params": map[string]string{"workType": "cat", "node": s.id},
			"stdin":  input, // base64, as protojson expects for bytes
		})
		var created struct {
			Result struct {
				UnitID  string `json:"unitId"`
				Started bool   `json:"started"`
			} `json:"result"`
		}
		token := gatewayToken(t, s.router)
		workHTTP(t, token, http.MethodPost, base+"/v1/work", body, &created)
		id := created.Result.UnitID
		if id == "" || !created.Result.Started {
			t.Fatalf("CreateWork reply %+v", created)
		}
		workWaitState(t, sock, s.id, id, workSucceeded)
		var unit struct {
			StateName  string `json:"stateName"`
			StdoutSize string `json:"stdoutSize"` // int64 is a JSON string in protojson
		}
		workHTTP(t, token, http.MethodGet, base+"/v1/work/"+id, nil, &unit)
		if unit.StateName != "Succeeded" || unit.StdoutSize != fmt.Sprint(len(input)) {
			t.Errorf("GET /v1/work/%s: %+v", id, unit)
		}
		if got := workHTTPResults(t, token, base+"/v1/work/"+id+"/results"); !bytes.Equal(got, input) {
			t.Errorf("REST results %q, want %q", got, input)
		}
	})

	t.Run("receptorctl", func(t *testing.T) {
		bin, err := exec.LookPath("receptorctl")
		if err != nil {
			t.Skip("receptorctl is not installed")
		}
		var input strings.Builder
		for i := range 5000 {
			fmt.Fprintf(&input, "line %d of the receptorctl payload\n", i)
		}
		payload := filepath.Join(s.router.Dir, "payload.txt")
		if err := os.WriteFile(payload, []byte(input.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), workUnitTimeout)
		defer cancel()
		// --follow prints the results; --rm releases the unit afterwards.
		cmd := exec.CommandContext(ctx, bin, "--socket", sock, "work", "submit", "--node", s.id,
			"--payload", payload, "--follow", "--rm", "cat")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("receptorctl work submit: %v\n%s", err, stderr.String())
		}
		// The results, then receptorctl's own "(<unit id>, released)" line.
		out := stdout.String()
		rest, ok := strings.CutPrefix(out, input.String())
		m := regexp.MustCompile(`^\(([a-zA-Z0-9]{8}), released\)\n$`).FindStringSubmatch(rest)
		if !ok || m == nil {
			t.Fatalf("receptorctl output (%d bytes) is not the payload (%d bytes) and the release line; tail %q",
				len(out), input.Len(), out[max(0, len(out)-120):])
		}
		if got, want := workCommand(t, sock, s.id, "work status "+m[1]), "ERROR: unknown work unit "+m[1]; got != want {
			t.Errorf("status after --rm: %q, want %q", got, want)
		}
	})

	t.Run("worker down and back", func(t *testing.T) {
		s.worker.Stop()
		if got := workCommand(t, sock, s.id, "work list"); !strings.HasPrefix(got, "ERROR: ") {
			t.Errorf("work list without a worker: %q, want an ERROR line", got)
		}
		if st := s.router.Status(); st.NodeID != s.id {
			t.Errorf("status without a worker: NodeID %q", st.NodeID)
		}
		s.worker.Restart()
		s.waitWorker()
		id, _ := workSubmit(t, sock, s.id, map[string]string{"node": s.id, "worktype": "cat"}, strings.NewReader("again"))
		workWaitState(t, sock, s.id, id, workSucceeded)
		if got, n := workResults(t, sock, s.id, id); n != 5 || got != workHex("again") {
			t.Errorf("results after the worker restart: %d bytes", n)
		}
	})
}

func workHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// workGRPCSubmit submits through ControlService.SubmitWork: parameters,
// stdin in 1 MiB chunks, half-close, result.
func workGRPCSubmit(ctx context.Context, t *testing.T, cc controlv1.ControlServiceClient, p *workv1.SubmitParams, stdin io.Reader) string {
	t.Helper()
	stream, err := cc.SubmitWork(ctx)
	if err != nil {
		t.Fatalf("SubmitWork: %v", err)
	}
	if err := stream.Send(&controlv1.SubmitWorkRequest{Msg: &controlv1.SubmitWorkRequest_Params{Params: p}}); err != nil {
		t.Fatalf("SubmitWork params: %v", err)
	}
	first, err := stream.Recv()
	if err != nil || first.GetCreated().GetUnitId() == "" {
		t.Fatalf("SubmitWork first response %v: %v", first, err)
	}
	id := first.GetCreated().GetUnitId()
	buf := make([]byte, 1<<20)
	for {
		n, rerr := io.ReadFull(stdin, buf)
		if n > 0 {
			if err := stream.Send(&controlv1.SubmitWorkRequest{Msg: &controlv1.SubmitWorkRequest_Stdin{Stdin: bytes.Clone(buf[:n])}}); err != nil {
				t.Fatalf("SubmitWork stdin: %v", err)
			}
		}
		if rerr != nil {
			break
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("SubmitWork close: %v", err)
	}
	last, err := stream.Recv()
	if err != nil || last.GetResult().GetUnitId() != id || !last.GetResult().GetStarted() {
		t.Fatalf("SubmitWork result %v: %v", last, err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("SubmitWork after the result: %v, want EOF", err)
	}
	return id
}

// workGRPCResults reads GetWorkResults to its end, checking that chunks
// are contiguous.
func workGRPCResults(ctx context.Context, t *testing.T, cc controlv1.ControlServiceClient, id string) (string, int64) {
	t.Helper()
	stream, err := cc.GetWorkResults(ctx, &controlv1.GetWorkResultsRequest{UnitId: id})
	if err != nil {
		t.Fatalf("GetWorkResults: %v", err)
	}
	h := sha256.New()
	var n int64
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("GetWorkResults after %d bytes: %v", n, err)
		}
		if len(r.GetData()) > 0 && r.GetOffset() != n {
			t.Fatalf("GetWorkResults chunk at offset %d, want %d", r.GetOffset(), n)
		}
		h.Write(r.GetData())
		n += int64(len(r.GetData()))
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

// workHTTPClient keeps no idle connections, so no client goroutine
// outlives a test.
var workHTTPClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// workHTTP does one REST call and decodes its JSON reply into out.
func workHTTP(t *testing.T, token, method, url string, body []byte, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := workHTTPClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %s %v", method, url, resp.Status, b, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: decoding %s: %v", method, url, b, err)
	}
}

// gatewayToken reads the REST gateway's admin token, which the router
// created beside its control socket.
func gatewayToken(t *testing.T, n *Node) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(n.Socket), "http-gateway.token"))
	if err != nil {
		t.Fatalf("reading the gateway token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// workHTTPResults reads a streamed REST results reply: one JSON object
// per chunk, {"result":{"data":<base64>,"offset":<int64 string>}}.
func workHTTPResults(t *testing.T, token, url string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), workTransferTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := workHTTPClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	var out []byte
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Result *struct {
				Data []byte `json:"data"`
			} `json:"result"`
			Error json.RawMessage `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("GET %s: decoding after %d bytes: %v", url, len(out), err)
		}
		if msg.Error != nil || msg.Result == nil {
			t.Fatalf("GET %s: stream error %s", url, msg.Error)
		}
		out = append(out, msg.Result.Data...)
	}
}

// workSlowcat is a work type that copies stdin to stdout in 64 KiB pieces
// with a pause after each, so that tests can act while output flows.
func workSlowcat(t *testing.T, pause string) string {
	return workCommandEntity("slowcat", "bash", workTestdata(t, "slowcat.sh")+" 65536 "+pause, false)
}

// TestWorkSplitWorkerKilled kills the worker with SIGKILL while a unit
// runs: the unit keeps running without it, and once the worker is back it
// finishes with byte-identical results.
func TestWorkSplitWorkerKilled(t *testing.T) {
	t.Parallel()
	s := workStartSplit(t, "sk", workSlowcat(t, "0.1"))
	sock := s.router.Socket
	const size = 48 << 16 // 48 pieces: about 5 s of output
	want, _ := workDigest(t, workPayload(11, size))
	id, _ := workSubmit(t, sock, s.id, map[string]string{"node": s.id, "worktype": "slowcat"}, workPayload(11, size))
	stdout := filepath.Join(workUnitDir(s.datadir, s.id, id), "stdout")
	testkit.Eventually(t, workUnitTimeout, "first output", func() error {
		if workFileSize(stdout) > 0 {
			return nil
		}
		return errors.New("want workFileSize(stdout) > 0")
	})

	s.worker.Kill()
	before := workFileSize(stdout)
	if before >= size {
		t.Fatalf("the unit finished (%d bytes) before the worker was killed; the test needs a slower unit", before)
	}
	// The command runner is detached: output keeps growing with no worker.
	testkit.Eventually(t, workUnitTimeout, "output growing while the worker is down", func() error {
		if workFileSize(stdout) > before {
			return nil
		}
		return errors.New("want workFileSize(stdout) > before")
	})
	if got := workCommand(t, sock, s.id, "work status "+id); !strings.HasPrefix(got, "ERROR: ") {
		t.Errorf("work status with the worker down: %q, want an ERROR line", got)
	}
	s.worker.Restart()
	s.waitWorker()
	st := workWaitState(t, sock, s.id, id, workSucceeded)
	if st.StdoutSize != size {
		t.Errorf("StdoutSize %d, want %d", st.StdoutSize, size)
	}
	if got, n := workResults(t, sock, s.id, id); got != want || n != size {
		t.Errorf("results: %d bytes %s, want %d bytes %s", n, got, size, want)
	}
}

// TestWorkSplitRouterKilledDuringRemoteResults submits from split node sr to
// all-in-one node rb; while sr's worker is pulling the results through
// its router, the router is killed with SIGKILL and restarted. The
// results complete, byte-identical.
func TestWorkSplitRouterKilledDuringRemoteResults(t *testing.T) {
	t.Parallel()
	s := workStartSplit(t, "sr")
	b := NewNode(t, "rb")
	b.Start(workAllInOneSpec(s.tlsPeer(t, "rb"), workStatic(workSlowcat(t, "0.1"))))
	s.router.WaitRoutes(map[string]string{"rb": "rb"})
	workWaitControl(t, s.router, "rb")
	sock := s.router.Socket

	const size = 64 << 16 // 64 pieces: about 7 s of output
	want, _ := workDigest(t, workPayload(13, size))
	id, final := workSubmit(t, sock, s.id, map[string]string{"node": "rb", "worktype": "slowcat"}, workPayload(13, size))
	// "Job Submitted" (the first attempt found no route; retried in the
	// background) is fine too: a mesh session may still flap at start-up.
	t.Logf("remote submit: %s", final)
	local := filepath.Join(workUnitDir(s.datadir, s.id, id), "stdout")
	testkit.Eventually(t, workUnitTimeout, "first remote output on sr", func() error {
		if workFileSize(local) > 0 {
			return nil
		}
		return errors.New("want workFileSize(local) > 0")
	})

	s.router.Kill()
	// The mesh connection carrying the stream died with the router, so
	// the rest can only come from a new request from the worker's offset.
	if got := workFileSize(local); got >= size {
		t.Fatalf("all %d bytes arrived before the router was killed; the test needs a slower unit", got)
	}
	s.restartRouter()
	s.router.WaitRoutes(map[string]string{"rb": "rb"})
	s.waitWorker()

	st := workWaitState(t, sock, s.id, id, workSucceeded)
	if st.StdoutSize != size {
		t.Errorf("StdoutSize %d, want %d", st.StdoutSize, size)
	}
	if got, n := workResults(t, sock, s.id, id); got != want || n != size {
		t.Errorf("results on sr: %d bytes %s, want %d bytes %s", n, got, size, want)
	}
}
