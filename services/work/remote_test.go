package work

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/work/signing"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// fakeMesh connects node A's agent to other agents through a minimal
// control-protocol server (the subset remote work uses), over Unix
// socketpairs so half-close works as on mesh streams.
type fakeMesh struct {
	self  string
	peers map[string]*Agent
	down  atomic.Bool
	// stallStatus, when set, holds every `work status` request until it
	// is closed (a status connection stuck on a broken path).
	stallStatus chan struct{}
	// resultsAsked counts `work results` requests; statusSessions counts
	// sessions whose first request is `work status`.
	resultsAsked, statusSessions atomic.Int64
	// statusErrors answers that many `work status` requests with an error
	// that does not say the unit is gone (a remote node stopping).
	statusErrors atomic.Int32
	// dropSubmitReply makes the remote close a submit session without
	// its final reply, after the unit was started; releaseDropped also
	// deletes that unit first.
	dropSubmitReply, releaseDropped atomic.Bool
	// dialGate, when set, holds every Dial until it is closed; inDial
	// and maxInDial count the Dial calls waiting at once.
	dialGate          chan struct{}
	inDial, maxInDial atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func (m *fakeMesh) NodeID() string { return m.self }

func (m *fakeMesh) Dial(ctx context.Context, node, service, tls string) (net.Conn, error) {
	if m.dialGate != nil {
		n := m.inDial.Add(1)
		for cur := m.maxInDial.Load(); n > cur && !m.maxInDial.CompareAndSwap(cur, n); cur = m.maxInDial.Load() {
		}
		<-m.dialGate
		m.inDial.Add(-1)
	}
	peer := m.peers[node]
	if peer == nil || m.down.Load() || service != "control" {
		return nil, errors.New("INTERNAL_ERROR (local): no route to node")
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	pair := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		pair[i] = c
	}
	m.mu.Lock()
	m.conns = append(m.conns, pair...)
	m.mu.Unlock()
	m.wg.Go(func() { m.serveControl(peer, node, pair[1]) })
	return pair[0], nil
}

// goDown takes the peers off the mesh: no dial reaches them, and every
// open session ends, as when a node stops or its routes are lost.
func (m *fakeMesh) goDown() {
	m.down.Store(true)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range m.conns {
		c.Close()
	}
}

func (m *fakeMesh) Close() {
	m.mu.Lock()
	for _, c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// serveControl answers the work commands of one control session.
func (m *fakeMesh) serveControl(a *Agent, node string, c net.Conn) {
	defer c.Close()
	fmt.Fprintf(c, "Receptor Control, node %s\n", node)
	r := bufio.NewReader(c)
	ctx := context.Background()
	for first := true; ; first = false {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if first && strings.HasPrefix(line, "work status ") {
			m.statusSessions.Add(1)
		}
		reply := func(v any, err error) {
			if err != nil {
				fmt.Fprintf(c, "ERROR: %s\n", err)
				return
			}
			b, _ := json.Marshal(v)
			c.Write(append(b, '\n'))
		}
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "work status "); ok {
			if m.stallStatus != nil {
				<-m.stallStatus
			}
			if m.statusErrors.Add(-1) >= 0 {
				fmt.Fprintf(c, "ERROR: connection error: desc = \"transport: Error while dialing: closed\"\n")
				continue
			}
			reply(a.Status(id))
			continue
		}
		var req map[string]any
		if err := json.Unmarshal([]byte(line), &req); err != nil {
			fmt.Fprintf(c, "ERROR: %s\n", err)
			continue
		}
		str := func(k string) string { s, _ := req[k].(string); return s }
		id, auth := str("unitid"), Auth{Signature: str("signature")}
		switch str("subcommand") {
		case "submit":
			params := map[string]string{}
			for k, v := range req {
				switch k {
				case "command", "subcommand", "node", "worktype", "tlsclient", "signature":
				default:
					params[k], _ = v.(string)
				}
			}
			res, err := a.Submit(ctx, SubmitRequest{Node: str("node"), WorkType: str("worktype"), Params: params, Auth: auth,
				Created: func(id string) error {
					_, err := fmt.Fprintf(c, "Work unit created with ID %s. Send stdin data and EOF.\n", id)
					return err
				}}, r)
			if err == nil && m.dropSubmitReply.Load() {
				if m.releaseDropped.Load() {
					_, _ = a.Release(ctx, res.UnitID, true, Auth{})
				}
				return
			}
			reply(res, err)
		case "results":
			m.resultsAsked.Add(1)
			pos, _ := req["startpos"].(float64)
			rc, err := a.Results(ctx, id, int64(pos), auth)
			if err != nil {
				reply(nil, err)
				continue
			}
			fmt.Fprintf(c, "Streaming results for work unit %s\n", id)
			io.Copy(c, rc)
			rc.Close()
			return
		case "cancel":
			_, err := a.Cancel(ctx, id, auth)
			reply(map[string]string{"cancelled": id}, err)
		case "release":
			_, err := a.Release(ctx, id, false, auth)
			reply(map[string]string{"released": id}, err)
		default:
			fmt.Fprintf(c, "ERROR: bad command\n")
		}
	}
}

type meshEnv struct {
	a, b *Agent
	mesh *fakeMesh
	bEnv env
}

func newMeshEnv(t *testing.T, aOpts, bOpts func(*Options)) meshEnv {
	t.Helper()
	bEnv := newEnv(t)
	b := bEnv.agent(t, func(o *Options) {
		o.NodeID = "nodeb"
		if bOpts != nil {
			bOpts(o)
		}
	})
	mesh := &fakeMesh{self: "nodea", peers: map[string]*Agent{"nodeb": b}}
	a := newEnv(t).agent(t, func(o *Options) {
		// A runs nothing itself; its local types would also decide the
		// signature rule of its submits.
		o.WorkTypes = nil
		o.Mesh = mesh
		o.KnownTLSClient = func(n string) bool { return n == "tlsclient" }
		if aOpts != nil {
			aOpts(o)
		}
	})
	// Registered after the agents' cleanups, so it runs first: A stops its
	// monitors before the fake connections go away.
	t.Cleanup(func() { a.Close(); mesh.Close() })
	return meshEnv{a: a, b: b, mesh: mesh, bEnv: bEnv}
}

func remoteExtraOf(t *testing.T, r unit.Report) remoteExtra {
	t.Helper()
	ex, err := parseRemoteExtra(r.ExtraData)
	if err != nil {
		t.Fatal(err)
	}
	return ex
}

func TestRemoteSubmitResultsRelease(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	ctx := context.Background()
	res, err := m.a.Submit(ctx, SubmitRequest{Node: "nodeb", WorkType: "cat",
		Params: map[string]string{"secret_x": "s", "other": "o"}, TLSClient: "tlsclient"},
		strings.NewReader("line1\nline2\n"))
	if err != nil || res.Result != ResultStarted {
		t.Fatalf("remote Submit = %+v, %v", res, err)
	}
	if got := string(results(t, m.a, res.UnitID, 0)); got != "line1\nline2\n" {
		t.Fatalf("remote results = %q", got)
	}
	r := waitState(t, m.a, res.UnitID, func(r unit.Report) bool { return r.State == unit.Succeeded })
	ex := remoteExtraOf(t, r)
	if r.WorkType != "remote" || r.Detail != "exit status 0" || r.StdoutSize != 12 || ex.RemoteNode != "nodeb" ||
		ex.RemoteWorkType != "cat" || !ex.RemoteStarted || ex.TLSClient != "tlsclient" || !ex.Expiration.IsZero() {
		t.Fatalf("remote unit status = %+v %+v", r, ex)
	}
	// Replies drop secret_ params; the status file keeps them.
	if _, ok := ex.RemoteParams["secret_x"]; ok || ex.RemoteParams["other"] != "o" {
		t.Fatalf("RemoteParams in reply = %v", ex.RemoteParams)
	}
	if b, _ := os.ReadFile(filepath.Join(m.a.store.Root(), res.UnitID, "status")); !strings.Contains(string(b), "secret_x") {
		t.Fatalf("status file lost the secret param: %s", b)
	}
	if _, err := m.b.Status(ex.RemoteUnitID); err != nil {
		t.Fatalf("remote unit on B: %v", err)
	}
	if _, err := m.a.Release(ctx, res.UnitID, false, Auth{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.a.Status(res.UnitID); !errors.Is(err, ErrUnknownUnit) {
		t.Fatalf("A's unit after release: %v", err)
	}
	if _, err := m.b.Status(ex.RemoteUnitID); !errors.Is(err, ErrUnknownUnit) {
		t.Fatalf("B's unit after release: %v", err)
	}
}

func TestRemoteSubmitErrors(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	ctx := context.Background()
	tests := []struct {
		name string
		req  SubmitRequest
		want string
	}{
		{"unknown tls", SubmitRequest{Node: "nodeb", WorkType: "cat", TLSClient: "nosuch"}, "unknown TLS config nosuch"},
		{"secret without tls", SubmitRequest{Node: "nodeb", WorkType: "cat", Params: map[string]string{"Secret_k": "v"}},
			"cannot send secrets over a non-TLS connection"},
		{"bad ttl", SubmitRequest{Node: "nodeb", WorkType: "cat", TTL: "xyz"}, `time: invalid duration "xyz"`},
		{"remote rejects", SubmitRequest{Node: "nodeb", WorkType: "nosuch"}, "could not parse response: ERROR: unknown work type nosuch"},
		{"remote rejects params", SubmitRequest{Node: "nodeb", WorkType: "cat", Params: map[string]string{"params": "x"}},
			"could not parse response: ERROR: extra params provided but not allowed"},
		{"unsigned to secure", SubmitRequest{Node: "nodeb", WorkType: "secure"},
			"could not parse response: ERROR: could not verify signature: signature is empty"},
		{"signwork without signer", SubmitRequest{Node: "nodeb", WorkType: "cat", SignWork: true},
			"cannot sign work: signing key is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.a.Submit(ctx, tt.req, strings.NewReader(""))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Submit error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRemoteUnreachable(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	m.mesh.goDown()
	ctx := context.Background()
	res, err := m.a.Submit(ctx, SubmitRequest{Node: "nodeb", WorkType: "cat", TTL: "300ms"}, strings.NewReader("x"))
	if err != nil || res.Result != ResultSubmitted {
		t.Fatalf("Submit to a down node = %+v, %v", res, err)
	}
	// The gRPC and REST replies say why the unit is pending.
	if !strings.HasPrefix(res.Reason, "node nodeb cannot be reached now (") || !strings.Contains(res.Reason, "retried in the background") {
		t.Errorf("Reason = %q", res.Reason)
	}
	r := waitState(t, m.a, res.UnitID, func(r unit.Report) bool { return r.State == unit.Failed })
	if !strings.HasPrefix(r.Detail, "Work unit expired on ") || remoteExtraOf(t, r).Expiration.IsZero() {
		t.Fatalf("expired unit = %+v", r)
	}
	if _, err := m.a.Release(ctx, res.UnitID, false, Auth{}); err != nil {
		t.Fatal(err)
	}

	res, err = m.a.Submit(ctx, SubmitRequest{Node: "nodeb", WorkType: "cat"}, strings.NewReader("x"))
	if err != nil || res.Result != ResultSubmitted {
		t.Fatalf("Submit to a down node = %+v, %v", res, err)
	}
	if c, err := m.a.Cancel(ctx, res.UnitID, Auth{}); err != nil || c.Pending {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	r, _ = m.a.Status(res.UnitID)
	if r.State != unit.Failed || r.Detail != "Locally Cancelled" || !remoteExtraOf(t, r).LocalCancelled {
		t.Fatalf("locally cancelled unit = %+v", r)
	}
}

func TestRemoteCancelRunningAndDownNode(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	ctx := context.Background()
	res, err := m.a.Submit(ctx, SubmitRequest{Node: "nodeb", WorkType: "sleep", Params: map[string]string{"params": "1000"}}, strings.NewReader(""))
	if err != nil || res.Result != ResultStarted {
		t.Fatalf("Submit = %+v, %v", res, err)
	}
	waitState(t, m.a, res.UnitID, func(r unit.Report) bool { return r.State == unit.Running })
	if c, err := m.a.Cancel(ctx, res.UnitID, Auth{}); err != nil || c.Pending {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	r := waitState(t, m.a, res.UnitID, func(r unit.Report) bool { return r.State == unit.Canceled })
	if !remoteExtraOf(t, r).LocalCancelled {
		t.Fatalf("canceled remote unit = %+v", r)
	}
	// B loses the unit behind A's back: cancel reports upstream's text.
	rid := remoteExtraOf(t, r).RemoteUnitID
	if _, err := m.b.Release(ctx, rid, true, Auth{}); err != nil {
		t.Fatal(err)
	}
	_, err = m.a.Cancel(ctx, res.UnitID, Auth{})
	want := "error cancelling remote unit:  unknown work unit " + rid + "\n"
	if err == nil || err.Error() != want {
		t.Fatalf("Cancel of a vanished remote unit = %q, want %q", err, want)
	}
	// Node down: release is pending, force-release always works.
	m.mesh.goDown()
	if c, err := m.a.Release(ctx, res.UnitID, false, Auth{}); err != nil || !c.Pending {
		t.Fatalf("Release with node down = %+v, %v", c, err)
	}
	r, _ = m.a.Status(res.UnitID)
	if !remoteExtraOf(t, r).LocalReleased {
		t.Fatalf("pending release not recorded: %+v", r)
	}
	if _, err := m.a.Release(ctx, res.UnitID, true, Auth{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.a.Status(res.UnitID); !errors.Is(err, ErrUnknownUnit) {
		t.Fatalf("after force-release: %v", err)
	}
}

func TestRemoteSignedWork(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	priv, pub := filepath.Join(dir, "priv.pem"), filepath.Join(dir, "pub.pem")
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	os.WriteFile(priv, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	os.WriteFile(pub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)
	signer, err := signing.NewSigner(priv, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := signing.NewVerifier(pub, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := newMeshEnv(t, func(o *Options) { o.Signer = signer }, func(o *Options) { o.Verifier = verifier })
	ctx := context.Background()
	res, err := m.a.Submit(ctx, SubmitRequest{Node: "nodeb", WorkType: "secure", SignWork: true}, strings.NewReader("signed\n"))
	if err != nil || res.Result != ResultStarted {
		t.Fatalf("signed Submit = %+v, %v", res, err)
	}
	// A signed remote unit needs signed requests on A too, except from
	// the trusted local socket (docs/protocol.md §14.3).
	if _, err := m.a.Results(ctx, res.UnitID, 0, Auth{}); err == nil ||
		err.Error() != "could not verify signature: signature is empty" {
		t.Fatalf("untrusted results of a signed remote unit: %v", err)
	}
	rc, err := m.a.Results(ctx, res.UnitID, 0, Auth{Trusted: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != "signed\n" {
		t.Fatalf("signed results = %q, %v", got, err)
	}
	_, err = m.a.Submit(ctx, SubmitRequest{Node: "nodeb", WorkType: "cat", SignWork: true}, strings.NewReader(""))
	if err == nil || err.Error() != "could not parse response: ERROR: work type did not expect a signature" {
		t.Fatalf("signed submit of a non-secure type: %v", err)
	}
	if _, err := m.a.Release(ctx, res.UnitID, false, Auth{Trusted: true}); err != nil {
		t.Fatal(err)
	}
}

func TestRemoteRestartAndAdopt(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	ctx := context.Background()
	res, err := m.a.Submit(ctx, SubmitRequest{Node: "nodeb", WorkType: "gated"}, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, m.a, res.UnitID, func(r unit.Report) bool { return r.State == unit.Running })
	r, _ := m.a.Status(res.UnitID)
	rid := remoteExtraOf(t, r).RemoteUnitID
	m.a.Close()
	if err := os.WriteFile(m.bEnv.gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	a2, err := New(Options{NodeID: "nodea", DataDir: filepath.Dir(m.a.store.Root()), Mesh: m.mesh})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if got := string(results(t, a2, res.UnitID, 0)); got != "started\nfinished\n" {
		t.Fatalf("results after restart = %q", got)
	}
	id, err := a2.AdoptRemote("nodeb", rid, "gated", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(results(t, a2, id, 0)); got != "started\nfinished\n" {
		t.Fatalf("results of adopted unit = %q", got)
	}
	if _, err := a2.AdoptRemote("nodeb", "../x", "gated", "", false); err == nil {
		t.Fatal("AdoptRemote accepted an invalid unit ID")
	}
}

// TestRemoteResultsWaitForStatus: when the remote's stream has ended (its
// unit is complete) but the local copy of its status is behind, results
// are asked again at most once per safety interval, not in a loop woken by
// our own writes to stdout.
func TestRemoteResultsWaitForStatus(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	m.mesh.stallStatus = make(chan struct{})
	t.Cleanup(func() { close(m.mesh.stallStatus) }) // runs before the env's cleanup
	res, err := m.a.Submit(context.Background(), SubmitRequest{Node: "nodeb", WorkType: "cat"}, strings.NewReader("all of it\n"))
	if err != nil || res.Result != ResultStarted {
		t.Fatalf("remote Submit = %+v, %v", res, err)
	}
	stdout := filepath.Join(m.a.store.Root(), res.UnitID, "stdout")
	testkit.Eventually(t, waitBound, "results arrived", func() error {
		if b, _ := os.ReadFile(stdout); string(b) != "all of it\n" {
			return fmt.Errorf("stdout %q", b)
		}
		return nil
	})
	// Everything is here, but A's status still says the unit runs. Watch
	// how often A asks again over a few safety intervals.
	start, asked := time.Now(), m.mesh.resultsAsked.Load()
	time.Sleep(3 * safetyInterval)
	again := m.mesh.resultsAsked.Load() - asked
	if limit := int64(time.Since(start)/safetyInterval) + 2; again > limit {
		t.Fatalf("asked for results %d more times in %v; at most %d expected (once per safety interval)",
			again, time.Since(start).Round(time.Millisecond), limit)
	}
	r, _ := m.a.Status(res.UnitID)
	if r.State.Complete() {
		t.Fatalf("A's status moved although status requests were stalled: %+v", r)
	}
}

func TestRemoteSubmitReplyLost(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	m.mesh.dropSubmitReply.Store(true)
	res, err := m.a.Submit(context.Background(), SubmitRequest{Node: "nodeb", WorkType: "cat"}, strings.NewReader("payload\n"))
	if err != nil || res.Result != ResultStarted {
		t.Fatalf("Submit with the final reply lost = %+v, %v", res, err)
	}
	if got := string(results(t, m.a, res.UnitID, 0)); got != "payload\n" {
		t.Fatalf("results = %q", got)
	}
	r := waitState(t, m.a, res.UnitID, func(r unit.Report) bool { return r.State == unit.Succeeded })
	if ex := remoteExtraOf(t, r); !ex.RemoteStarted || ex.RemoteUnitID == "" {
		t.Fatalf("remote unit = %+v", ex)
	}
	// Exactly one unit ran on B: the lost reply was not answered by a
	// second submission.
	if l, err := m.b.List(""); err != nil || len(l) != 1 {
		t.Fatalf("units on B = %v, %v", l, err)
	}
}

func TestRemoteSubmitReplyLostUnitUnknown(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	m.mesh.dropSubmitReply.Store(true)
	m.mesh.releaseDropped.Store(true)
	res, err := m.a.Submit(context.Background(), SubmitRequest{Node: "nodeb", WorkType: "cat"}, strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "read error reading from nodeb") {
		t.Fatalf("Submit = %+v, %v; want the read error", res, err)
	}
}

func TestRemoteDialsPerNodeBounded(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	m.mesh.dialGate = make(chan struct{})
	const n = 3 * maxDialsPerNode
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			res, err := m.a.Submit(context.Background(), SubmitRequest{Node: "nodeb", WorkType: "cat"}, strings.NewReader("x"))
			if err != nil || res.Result != ResultStarted {
				t.Errorf("Submit = %+v, %v", res, err)
			}
		})
	}
	testkit.Poll(waitBound, func() bool { return m.mesh.inDial.Load() >= maxDialsPerNode })
	close(m.mesh.dialGate)
	wg.Wait()
	if got := m.mesh.maxInDial.Load(); got != maxDialsPerNode {
		t.Fatalf("at most %d dials were in flight at once, want exactly the limit %d", got, maxDialsPerNode)
	}
}

func TestRemoteStatusSessionsShared(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	const n = 4 * maxStatusConns
	var wg sync.WaitGroup
	ids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			payload := fmt.Sprintf("unit %d\n", i)
			res, err := m.a.Submit(context.Background(), SubmitRequest{Node: "nodeb", WorkType: "cat"}, strings.NewReader(payload))
			if err != nil || res.Result != ResultStarted {
				t.Errorf("Submit = %+v, %v", res, err)
				return
			}
			ids[i] = res.UnitID
			if got := string(results(t, m.a, res.UnitID, 0)); got != payload {
				t.Errorf("results = %q, want %q", got, payload)
			}
			waitState(t, m.a, res.UnitID, func(r unit.Report) bool { return r.State == unit.Succeeded })
		})
	}
	wg.Wait()
	if got := m.mesh.statusSessions.Load(); got < 1 || got > maxStatusConns {
		t.Fatalf("%d status sessions for %d remote units, want 1..%d shared ones", got, n, maxStatusConns)
	}
	// Releases go over the same shared sessions: no new connection.
	dials := func() int {
		m.mesh.mu.Lock()
		defer m.mesh.mu.Unlock()
		return len(m.mesh.conns) / 2
	}
	before := dials()
	for _, id := range ids {
		r, err := m.a.Status(id)
		if err != nil {
			t.Fatal(err)
		}
		rid := remoteExtraOf(t, r).RemoteUnitID
		if c, err := m.a.Release(context.Background(), id, false, Auth{}); err != nil || c.Pending {
			t.Fatalf("Release %s = %+v, %v", id, c, err)
		}
		if _, err := m.b.Status(rid); err == nil {
			t.Fatalf("remote unit %s of %s still exists after its release", rid, id)
		}
	}
	if got := dials() - before; got != 0 {
		t.Fatalf("%d releases opened %d new connections, want 0", n, got)
	}
}

// TestRemoteStatusErrorRetried: a status reply that is an error but does
// not say the unit is gone (here what a node of ours answers while it
// stops) is retried; the unit still completes. The monitor used to stop at
// the first one and leave the unit Running.
func TestRemoteStatusErrorRetried(t *testing.T) {
	m := newMeshEnv(t, nil, nil)
	m.mesh.statusErrors.Store(2)
	res, err := m.a.Submit(context.Background(), SubmitRequest{Node: "nodeb", WorkType: "cat"}, strings.NewReader("payload\n"))
	if err != nil || res.Result != ResultStarted {
		t.Fatalf("Submit = %+v, %v", res, err)
	}
	r := waitState(t, m.a, res.UnitID, func(r unit.Report) bool { return r.State == unit.Succeeded || r.State == unit.Failed })
	if r.State != unit.Succeeded {
		t.Fatalf("unit = %+v", r)
	}
	if got := string(results(t, m.a, res.UnitID, 0)); got != "payload\n" {
		t.Fatalf("results = %q", got)
	}
	if n := m.mesh.statusErrors.Load(); n >= 0 {
		t.Fatalf("%d status errors left unsent: the monitor did not ask again", n)
	}
}
