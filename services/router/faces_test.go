package router

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/testkit"
	"github.com/receptor-mesh/receptor/services/work/signing"
)

// writeKeyPair writes an RSA key pair as PEM files into dir.
func writeKeyPair(t *testing.T, dir string) (private, public string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	private, public = filepath.Join(dir, "signing.pem"), filepath.Join(dir, "verify.pem")
	writeFile(t, private, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})))
	writeFile(t, public, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})))
	return private, public
}

// facesNode is a router with a work agent that verifies signatures, and
// all three user faces: control socket, gRPC socket and REST gateway.
type facesNode struct {
	*node
	base   string // REST base URL
	ctlTCP string // control service on TCP, receptorctl address
	signer *signing.Signer
}

func startFacesNode(t *testing.T) *facesNode {
	t.Helper()
	priv, pub := writeKeyPair(t, t.TempDir())
	signer, err := signing.NewSigner(priv, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wa := startWorkAgent(t, "a", pub)
	port, ctlPort := freePort(t), freePort(t)
	n := startNode(t, nodeSpec{
		id: "a", listen: true, opts: Options{Work: wa.client},
		extra: []string{
			"--http-gateway", "tcplisten=127.0.0.1:" + strconv.Itoa(port),
			"--control-service", "service=", "tcplisten=127.0.0.1:" + strconv.Itoa(ctlPort),
			// These tests are about the REST and TCP mappings, not about
			// authentication: callers without identity are made admin
			// (security_authz_test in integration/ covers the refusals).
			"--access", "role=admin", "principals=anonymous",
		},
	})
	f := &facesNode{node: n, base: "http://127.0.0.1:" + strconv.Itoa(port), signer: signer, ctlTCP: "tcp:127.0.0.1:" + strconv.Itoa(ctlPort)}
	testkit.Eventually(t, bound, "REST gateway up", func() error {
		resp, err := http.Get(f.base + "/v1/version")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v1/version: %s", resp.Status)
		}
		return nil
	})
	return f
}

// TestReceptorctlSocket speaks the receptorctl protocol to the router's
// control-service unix socket: status, ping, and a work submit that the
// router forwards to its work agent.
func TestReceptorctlSocket(t *testing.T) {
	wa := startWorkAgent(t, "a", "")
	a := startNode(t, nodeSpec{id: "a", listen: true, opts: Options{Work: wa.client}})
	startNode(t, nodeSpec{id: "b", peers: []int{a.port}})
	waitRoutes(t, a, "b")
	ctx := testCtx(t)
	dial := func() *client.Conn {
		t.Helper()
		c, err := client.Dial(ctx, a.ctlSock, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if c.NodeID() != "a" {
			t.Fatalf("greeting names node %q", c.NodeID())
		}
		return c
	}
	c := dial()

	var st struct {
		NodeID          string
		Connections     []struct{ NodeID string }
		SystemCPUCount  int
		SystemMemoryMiB int
		Advertisements  []struct {
			NodeID, Service string
			WorkCommands    []struct {
				WorkType string
				Secure   bool
			}
		}
	}
	testkit.Eventually(t, bound, "control ad with work commands", func() error {
		if err := c.CommandJSON(ctx, map[string]string{"command": "status"}, &st); err != nil {
			return err
		}
		for _, ad := range st.Advertisements {
			if ad.NodeID == "a" && ad.Service == "control" && len(ad.WorkCommands) == len(testWorkTypes) {
				return nil
			}
		}
		return fmt.Errorf("advertisements %+v", st.Advertisements)
	})
	if st.NodeID != "a" || len(st.Connections) != 1 || st.Connections[0].NodeID != "b" || st.SystemCPUCount < 1 {
		t.Errorf("status = %+v", st)
	}

	var ping struct {
		From    string
		Success bool
		Time    int64
		TimeStr string
		Error   string
	}
	raw, err := c.Command(ctx, "ping b")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ping); err != nil || !ping.Success || ping.From != "b" || ping.Time <= 0 ||
		ping.TimeStr != time.Duration(ping.Time).String() {
		t.Errorf("ping b = %s (%v)", raw, err)
	}

	res, err := c.SubmitWork(ctx, map[string]string{"node": "localhost", "worktype": "cat"}, strings.NewReader("hello world\n"))
	if err != nil {
		t.Fatalf("work submit: %v", err)
	}
	if res.Result != "Job Started" || len(res.UnitID) != 8 {
		t.Errorf("work submit = %+v", res)
	}
	c = dial()
	testkit.Eventually(t, bound, "unit succeeds", func() error {
		var ws struct{ StateName string }
		if err := c.CommandJSON(ctx, map[string]string{"command": "work", "subcommand": "status", "unitid": res.UnitID}, &ws); err != nil {
			return err
		}
		if ws.StateName != "Succeeded" {
			return fmt.Errorf("state %s", ws.StateName)
		}
		return nil
	})
	r, err := c.Results(ctx, res.UnitID, 6)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := io.ReadAll(r); err != nil || string(out) != "world\n" {
		t.Errorf("work results from 6 = %q, %v", out, err)
	}
	c = dial()
	_, err = c.Command(ctx, "work status nosuch")
	if err == nil || err.Error() != "unknown work unit nosuch" {
		t.Errorf("work status of unknown unit: %v", err)
	}

	// A payload larger than the router's stdin chunks arrives whole.
	big := bytes.Repeat([]byte("receptorctl payload\n"), 100000)
	res, err = dial().SubmitWork(ctx, map[string]string{"node": "a", "worktype": "cat"}, bytes.NewReader(big))
	if err != nil {
		t.Fatalf("big work submit: %v", err)
	}
	r, err = dial().Results(ctx, res.UnitID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := io.ReadAll(r); err != nil || !bytes.Equal(out, big) {
		t.Errorf("big work results: %d bytes (want %d), %v", len(out), len(big), err)
	}

	// Cancel and release through the control protocol.
	res, err = dial().SubmitWork(ctx, map[string]string{"node": "a", "worktype": "sleep", "params": "60"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c = dial()
	raw, err = c.Command(ctx, "work cancel "+res.UnitID)
	if err != nil || string(raw) != `{"cancelled":"`+res.UnitID+`"}` {
		t.Errorf("work cancel = %s, %v", raw, err)
	}
	raw, err = c.Command(ctx, "work release "+res.UnitID)
	if err != nil || string(raw) != `{"released":"`+res.UnitID+`"}` {
		t.Errorf("work release = %s, %v", raw, err)
	}
	var list map[string]json.RawMessage
	if err := c.CommandJSON(ctx, map[string]string{"command": "work", "subcommand": "list"}, &list); err != nil {
		t.Fatal(err)
	}
	if _, ok := list[res.UnitID]; ok || len(list) != 2 {
		t.Errorf("work list after release has %d units: %v", len(list), list)
	}

	// connect: to b's control service, and with an unknown TLS name.
	bridged, err := dial().Connect(ctx, "b", "control", "")
	if err != nil {
		t.Fatal(err)
	}
	if bc, err := client.NewConn(ctx, bridged); err != nil || bc.NodeID() != "b" {
		t.Errorf("connect b control: %v", err)
	}
	if _, err := dial().Connect(ctx, "b", "control", "nosuch"); err == nil || err.Error() != "unknown TLS config nosuch" {
		t.Errorf("connect with an unknown TLS config: %v", err)
	}
}

// TestReceptorctlWithoutWorkAgent checks the error line of a work command
// on a router without a work agent.
func TestReceptorctlWithoutWorkAgent(t *testing.T) {
	a := startNode(t, nodeSpec{id: "a"})
	ctx := testCtx(t)
	c, err := client.Dial(ctx, a.ctlSock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Command(ctx, "work list"); err == nil || err.Error() != noAgentText {
		t.Errorf("work list = %v, want %q", err, noAgentText)
	}
	if _, err := c.Command(ctx, "status"); err != nil {
		t.Errorf("status without a work agent: %v", err)
	}
}

// restResults reads a REST results stream: one JSON object per line, each
// {"result": {...}} or {"error": {...}}.
func restResults(t *testing.T, body io.Reader) ([]byte, error) {
	t.Helper()
	var out bytes.Buffer
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Result *struct {
				Data   string `json:"data"`
				Offset string `json:"offset"`
			} `json:"result"`
			Error *struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("results line %q: %w", sc.Text(), err)
		}
		if line.Error != nil {
			return out.Bytes(), fmt.Errorf("code %d: %s", line.Error.Code, line.Error.Message)
		}
		data, err := base64.StdEncoding.DecodeString(line.Result.Data)
		if err != nil {
			return nil, err
		}
		out.Write(data)
	}
	return out.Bytes(), sc.Err()
}

// restCreate posts a CreateWork request and decodes the reply.
func restCreate(t *testing.T, base string, params map[string]any, stdin []byte) (int, map[string]any) {
	t.Helper()
	body, err := json.Marshal(map[string]any{"params": params, "stdin": stdin})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(base+"/v1/work", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("POST /v1/work: %s: %v", resp.Status, err)
	}
	return resp.StatusCode, out
}

// TestREST uses the router's REST gateway with a plain http.Client.
func TestREST(t *testing.T) {
	f := startFacesNode(t)

	resp, err := http.Get(f.base + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		NodeID string `json:"nodeId"`
		Work   struct {
			Attached bool `json:"attached"`
		} `json:"work"`
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || st.NodeID != "a" || !st.Work.Attached {
		t.Errorf("GET /v1/status = %s %+v, %v", resp.Status, st, err)
	}

	input := bytes.Repeat([]byte("rest input\n"), 10000)
	code, out := restCreate(t, f.base, map[string]any{"workType": "cat", "node": "a"}, input)
	result, _ := out["result"].(map[string]any)
	id, _ := result["unitId"].(string)
	if code != http.StatusOK || id == "" || result["started"] != true {
		t.Fatalf("POST /v1/work = %d %v", code, out)
	}
	waitState(t, f.control, id, "Succeeded")
	resp, err = http.Get(f.base + "/v1/work/" + id + "/results?offset=11")
	if err != nil {
		t.Fatal(err)
	}
	data, err := restResults(t, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(data, input[11:]) {
		t.Errorf("GET results = %s, %d bytes (want %d), %v", resp.Status, len(data), len(input)-11, err)
	}

	resp, err = http.Get(f.base + "/v1/work/nosuch")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET unknown unit = %s, want 404", resp.Status)
	}

	// List, then release with DELETE: the unit is gone.
	resp, err = http.Get(f.base + "/v1/work")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Units []struct {
			UnitID string `json:"unitId"`
		} `json:"units"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || len(list.Units) != 1 || list.Units[0].UnitID != id {
		t.Errorf("GET /v1/work = %+v, %v", list, err)
	}
	req, err := http.NewRequest(http.MethodDelete, f.base+"/v1/work/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("DELETE /v1/work/%s = %s", id, resp.Status)
	}
	resp, err = http.Get(f.base + "/v1/work/" + id)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET released unit = %s, want 404", resp.Status)
	}
	// Reload without a configuration file is FailedPrecondition: 400.
	resp, err = http.Post(f.base+"/v1/reload", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /v1/reload without a file = %s, want 400 (FailedPrecondition)", resp.Status)
	}
}

// TestOrigin checks who must sign work of a verifysignature type: a client
// of the unix gRPC socket is trusted, a REST client is not.
func TestOrigin(t *testing.T) {
	f := startFacesNode(t)
	ctx := testCtx(t)
	b := startNode(t, nodeSpec{id: "b", peers: []int{f.port}})
	waitRoutes(t, b, "a")

	// receptorctl protocol: the unix socket is trusted, a's control
	// service reached over the mesh (connect a control, from b) is not.
	local, err := client.Dial(ctx, f.ctlSock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if res, err := local.SubmitWork(ctx, map[string]string{"node": "a", "worktype": "secure"}, strings.NewReader("x")); err != nil {
		t.Errorf("unsigned secure submit on the unix control socket: %+v, %v", res, err)
	}
	viaB, err := client.Dial(ctx, b.ctlSock, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer viaB.Close()
	bridged, err := viaB.Connect(ctx, "a", "control", "")
	if err != nil {
		t.Fatalf("connect a control from b: %v", err)
	}
	remote, err := client.NewConn(ctx, bridged)
	if err != nil {
		t.Fatal(err)
	}
	if remote.NodeID() != "a" {
		t.Errorf("greeting over the mesh names %q", remote.NodeID())
	}
	_, err = remote.SubmitWork(ctx, map[string]string{"node": "a", "worktype": "secure"}, strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("unsigned secure submit over the mesh control service: %v, want a signature error", err)
	}

	// The TCP control service is not trusted either.
	tcpConn, err := client.Dial(ctx, f.ctlTCP, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tcpConn.Close()
	_, err = tcpConn.SubmitWork(ctx, map[string]string{"node": "a", "worktype": "secure"}, strings.NewReader("x"))
	if err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("unsigned secure submit over the TCP control service: %v, want a signature error", err)
	}

	// Unix socket: no signature needed.
	id, res, err := submitWork(ctx, f.control, &workv1.SubmitParams{WorkType: "secure", Node: "a"}, []byte("trusted\n"))
	if err != nil || !res.GetStarted() {
		t.Fatalf("unsigned secure submit over the unix socket: %v, %v", res, err)
	}
	waitState(t, f.control, id, "Succeeded")
	if out, err := workResults(ctx, f.control, id, 0, ""); err != nil || string(out) != "trusted\n" {
		t.Errorf("results over the unix socket = %q, %v", out, err)
	}

	// REST: refused without a signature, for submit and for results.
	code, out := restCreate(t, f.base, map[string]any{"workType": "secure", "node": "a"}, []byte("x"))
	if code != http.StatusForbidden || !strings.Contains(fmt.Sprint(out["message"]), "signature") {
		t.Errorf("unsigned secure submit over REST = %d %v, want 403 about the signature", code, out)
	}
	resp, err := http.Get(f.base + "/v1/work/" + id + "/results")
	if err != nil {
		t.Fatal(err)
	}
	// Refused before any output: the unary error envelope, not a stream.
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned results of secure unit over REST = %s, want 403", resp.Status)
	}

	// REST with a valid signature for node a.
	sig, err := f.signer.Sign("a")
	if err != nil {
		t.Fatal(err)
	}
	code, out = restCreate(t, f.base, map[string]any{"workType": "secure", "node": "a", "signature": sig}, []byte("signed\n"))
	result, _ := out["result"].(map[string]any)
	sid, _ := result["unitId"].(string)
	if code != http.StatusOK || sid == "" {
		t.Fatalf("signed secure submit over REST = %d %v", code, out)
	}
	waitState(t, f.control, sid, "Succeeded")
	resp, err = http.Get(f.base + "/v1/work/" + sid + "/results?signature=" + sig)
	if err != nil {
		t.Fatal(err)
	}
	data, err := restResults(t, resp.Body)
	resp.Body.Close()
	if err != nil || string(data) != "signed\n" {
		t.Errorf("signed results over REST = %q, %v", data, err)
	}

	// A signature for another node is refused.
	other, err := f.signer.Sign("b")
	if err != nil {
		t.Fatal(err)
	}
	code, out = restCreate(t, f.base, map[string]any{"workType": "secure", "node": "a", "signature": other}, nil)
	if code != http.StatusForbidden {
		t.Errorf("secure submit signed for b over REST = %d %v, want 403", code, out)
	}
	// And over gRPC the unix client is trusted for cancel too.
	if _, err := f.control.CancelWork(ctx, &controlv1.CancelWorkRequest{UnitId: sid}); err != nil {
		t.Errorf("unsigned cancel over the unix socket: %v", err)
	}
	if _, err := f.control.CancelWork(ctx, &controlv1.CancelWorkRequest{UnitId: "nosuch"}); status.Code(err) != codes.NotFound {
		t.Errorf("cancel unknown: %v", err)
	}
}
