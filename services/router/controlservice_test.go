package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/testkit"
)

// TestControlServiceNodeCalls checks the node half of ControlService over
// the unix socket of a two-node mesh.
func TestControlServiceNodeCalls(t *testing.T) {
	a := startNode(t, nodeSpec{id: "a", listen: true})
	b := startNode(t, nodeSpec{id: "b", peers: []int{a.port}})
	waitRoutes(t, a, "b")
	ctx := testCtx(t)

	st, err := a.control.GetStatus(ctx, &controlv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetStatus().GetNodeId() != "a" || len(st.GetStatus().GetConnections()) != 1 ||
		st.GetStatus().GetConnections()[0].GetNodeId() != "b" {
		t.Errorf("status = %v", st.GetStatus())
	}
	acc, err := a.control.GetAccess(ctx, &controlv1.GetAccessRequest{})
	if err != nil || !strings.HasPrefix(acc.GetPrincipal(), "uid:") || acc.GetRole() != "admin" ||
		!slices.Contains(acc.GetAllowedActions(), "work cancel") || !slices.Contains(acc.GetAllowedActions(), "reload") {
		t.Errorf("GetAccess over the unix socket = %v, %v; want uid:N, admin, every action", acc, err)
	}
	v, err := a.control.GetVersion(ctx, &controlv1.GetVersionRequest{})
	if err != nil || v.GetVersion().GetGoVersion() == "" {
		t.Errorf("GetVersion = %v, %v", v, err)
	}
	p, err := a.control.Ping(ctx, &controlv1.PingRequest{Node: "b"})
	if err != nil || p.GetResult().GetFromNode() != "b" {
		t.Errorf("Ping b = %v, %v", p, err)
	}
	tr, err := b.control.Traceroute(ctx, &controlv1.TracerouteRequest{Node: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var hops []string
	for {
		h, err := tr.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		hops = append(hops, h.GetHop().GetFromNode())
	}
	if !slices.Equal(hops, []string{"b", "a"}) {
		t.Errorf("traceroute b→a = %v, want [b a]", hops)
	}
}

// noAgentText is the catalogue's message for work without a work agent.
var noAgentText = status.Convert(apierr.NoWorkAgent()).Message()

// TestControlServiceWithoutWorkAgent checks that every work call of a
// router without a work agent fails with the catalogue's error.
func TestControlServiceWithoutWorkAgent(t *testing.T) {
	a := startNode(t, nodeSpec{id: "a"})
	ctx := testCtx(t)
	calls := map[string]func() error{
		"SubmitWork": func() error {
			s, err := a.control.SubmitWork(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(&controlv1.SubmitWorkRequest{Msg: &controlv1.SubmitWorkRequest_Params{
				Params: &workv1.SubmitParams{WorkType: "cat", Node: "a"},
			}}); err != nil && err != io.EOF {
				return err
			}
			_, err = s.Recv()
			return err
		},
		"CreateWork": func() error {
			_, err := a.control.CreateWork(ctx, &controlv1.CreateWorkRequest{Params: &workv1.SubmitParams{WorkType: "cat", Node: "a"}})
			return err
		},
		"ListWork": func() error {
			_, err := a.control.ListWork(ctx, &controlv1.ListWorkRequest{})
			return err
		},
		"GetWork": func() error {
			_, err := a.control.GetWork(ctx, &controlv1.GetWorkRequest{UnitId: "x"})
			return err
		},
		"GetWorkResults": func() error {
			s, err := a.control.GetWorkResults(ctx, &controlv1.GetWorkResultsRequest{UnitId: "x"})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		},
		"CancelWork": func() error {
			_, err := a.control.CancelWork(ctx, &controlv1.CancelWorkRequest{UnitId: "x"})
			return err
		},
		"ReleaseWork": func() error {
			_, err := a.control.ReleaseWork(ctx, &controlv1.ReleaseWorkRequest{UnitId: "x"})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != noAgentText {
			t.Errorf("%s: %v, want Unavailable %q", name, err, noAgentText)
		}
	}
	st, err := a.control.GetStatus(ctx, &controlv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if st.GetStatus().GetWork().GetAttached() {
		t.Error("status reports a work agent")
	}
}

// submitWork runs a SubmitWork call: params, then stdin in chunks of at
// most 1 MiB, then half-close. It returns the created unit ID and result.
func submitWork(ctx context.Context, c controlv1.ControlServiceClient, p *workv1.SubmitParams, stdin []byte) (string, *workv1.SubmitResult, error) {
	s, err := c.SubmitWork(ctx)
	if err != nil {
		return "", nil, err
	}
	if err := s.Send(&controlv1.SubmitWorkRequest{Msg: &controlv1.SubmitWorkRequest_Params{Params: p}}); err != nil && err != io.EOF {
		return "", nil, err
	}
	first, err := s.Recv()
	if err != nil {
		return "", nil, err
	}
	id := first.GetCreated().GetUnitId()
	if id == "" {
		return "", nil, fmt.Errorf("first response %v, want created", first)
	}
	for len(stdin) > 0 {
		n := min(len(stdin), 1<<20)
		if err := s.Send(&controlv1.SubmitWorkRequest{Msg: &controlv1.SubmitWorkRequest_Stdin{Stdin: stdin[:n]}}); err != nil {
			return id, nil, fmt.Errorf("send stdin: %w", err)
		}
		stdin = stdin[n:]
	}
	if err := s.CloseSend(); err != nil {
		return id, nil, err
	}
	last, err := s.Recv()
	if err != nil {
		return id, nil, err
	}
	if _, err := s.Recv(); err != io.EOF {
		return id, nil, fmt.Errorf("after result: %v, want EOF", err)
	}
	return id, last.GetResult(), nil
}

// workResults reads a GetWorkResults stream to its end.
func workResults(ctx context.Context, c controlv1.ControlServiceClient, id string, offset int64, sig string) ([]byte, error) {
	s, err := c.GetWorkResults(ctx, &controlv1.GetWorkResultsRequest{UnitId: id, Offset: offset, Signature: sig})
	if err != nil {
		return nil, err
	}
	first, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if len(first.GetData()) != 0 {
		return nil, fmt.Errorf("first results response carries %d bytes", len(first.GetData()))
	}
	var out bytes.Buffer
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return out.Bytes(), nil
		}
		if err != nil {
			return out.Bytes(), err
		}
		if m.GetOffset() != offset+int64(out.Len()) {
			return nil, fmt.Errorf("chunk at offset %d after %d bytes from %d", m.GetOffset(), out.Len(), offset)
		}
		out.Write(m.GetData())
	}
}

// waitState waits until unit id reaches state name.
func waitState(t *testing.T, c controlv1.ControlServiceClient, id, name string) *workv1.UnitStatus {
	t.Helper()
	ctx := testCtx(t)
	var last *workv1.UnitStatus
	testkit.Eventually(t, bound, "unit "+id+" "+name, func() error {
		resp, err := c.GetWork(ctx, &controlv1.GetWorkRequest{UnitId: id})
		if err != nil {
			return err
		}
		last = resp.GetStatus()
		if last.GetStateName() != name {
			return fmt.Errorf("state %s (%s)", last.GetStateName(), last.GetDetail())
		}
		return nil
	})
	return last
}

// TestControlServiceWork runs every work call of ControlService through a
// router to a real work agent.
func TestControlServiceWork(t *testing.T) {
	wa := startWorkAgent(t, "a", "")
	a := startNode(t, nodeSpec{id: "a", opts: Options{Work: wa.client}})
	ctx := testCtx(t)

	// The agent's work types reach the control advertisement and status.
	testkit.Eventually(t, bound, "work commands in the control ad", func() error {
		var want []*meshv1.WorkCommand
		for _, c := range testWorkTypes {
			want = append(want, &meshv1.WorkCommand{WorkType: c.WorkType, Secure: c.VerifySignature})
		}
		return checkControlAd(ctx, a, "a", want)
	})
	st, err := a.control.GetStatus(ctx, &controlv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if w := st.GetStatus().GetWork(); !w.GetAttached() || w.GetVersion() != "9.9.9" || len(w.GetWorkCommands()) != len(testWorkTypes) {
		t.Errorf("work agent status = %v", w)
	}

	// SubmitWork with 3 MiB of streamed input; the results come back
	// whole, and from an offset.
	input := bytes.Repeat([]byte("0123456789abcdef"), 3<<16)
	id, res, err := submitWork(ctx, a.control, &workv1.SubmitParams{WorkType: "cat", Node: "localhost"}, input)
	if err != nil {
		t.Fatalf("SubmitWork: %v", err)
	}
	if res.GetUnitId() != id || !res.GetStarted() {
		t.Errorf("submit result = %v for unit %s", res, id)
	}
	waitState(t, a.control, id, "Succeeded")
	out, err := workResults(ctx, a.control, id, 0, "")
	if err != nil || !bytes.Equal(out, input) {
		t.Fatalf("results: %d bytes (want %d), %v", len(out), len(input), err)
	}
	out, err = workResults(ctx, a.control, id, 1000, "")
	if err != nil || !bytes.Equal(out, input[1000:]) {
		t.Fatalf("results from 1000: %d bytes, %v", len(out), err)
	}

	// CreateWork with inline input and runtime params.
	cw, err := a.control.CreateWork(ctx, &controlv1.CreateWorkRequest{
		Params: &workv1.SubmitParams{WorkType: "echo", Node: "a", Params: map[string]string{"params": "hello world"}},
	})
	if err != nil {
		t.Fatalf("CreateWork: %v", err)
	}
	echoID := cw.GetResult().GetUnitId()
	waitState(t, a.control, echoID, "Succeeded")
	if out, err := workResults(ctx, a.control, echoID, 0, ""); err != nil || string(out) != "hello world\n" {
		t.Errorf("echo results = %q, %v", out, err)
	}
	_, err = a.control.CreateWork(ctx, &controlv1.CreateWorkRequest{
		Params: &workv1.SubmitParams{WorkType: "nosuch", Node: "a"},
	})
	if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "unknown work type nosuch" {
		t.Errorf("CreateWork of unknown type: %v", err)
	}
	_, err = a.control.CreateWork(ctx, &controlv1.CreateWorkRequest{
		Params: &workv1.SubmitParams{WorkType: "cat", Node: "a"}, Stdin: make([]byte, 4<<20+1),
	})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("CreateWork with stdin over 4 MiB: %v, want InvalidArgument", err)
	}

	// ListWork and GetWork.
	lw, err := a.control.ListWork(ctx, &controlv1.ListWorkRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range lw.GetUnits() {
		ids = append(ids, u.GetUnitId())
	}
	want := []string{id, echoID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("ListWork = %v, want %v", ids, want)
	}
	lw, err = a.control.ListWork(ctx, &controlv1.ListWorkRequest{UnitId: echoID})
	if err != nil || len(lw.GetUnits()) != 1 || lw.GetUnits()[0].GetWorkType() != "echo" {
		t.Errorf("ListWork(%s) = %v, %v", echoID, lw, err)
	}
	gw, err := a.control.GetWork(ctx, &controlv1.GetWorkRequest{UnitId: id})
	if err != nil || gw.GetStatus().GetStdoutSize() != int64(len(input)) || gw.GetStatus().GetWorkType() != "cat" {
		t.Errorf("GetWork(%s) = %v, %v", id, gw, err)
	}
	for name, err := range map[string]error{
		"GetWork": func() error {
			_, err := a.control.GetWork(ctx, &controlv1.GetWorkRequest{UnitId: "nosuch"})
			return err
		}(),
		"ListWork": func() error {
			_, err := a.control.ListWork(ctx, &controlv1.ListWorkRequest{UnitId: "nosuch"})
			return err
		}(),
		"CancelWork": func() error {
			_, err := a.control.CancelWork(ctx, &controlv1.CancelWorkRequest{UnitId: "nosuch"})
			return err
		}(),
		"GetWorkResults": func() error {
			_, err := workResults(ctx, a.control, "nosuch", 0, "")
			return err
		}(),
	} {
		if status.Code(err) != codes.NotFound || status.Convert(err).Message() != "unknown work unit nosuch" {
			t.Errorf("%s of unknown unit: %v", name, err)
		}
	}

	// CancelWork stops a running unit and keeps it; ReleaseWork deletes it.
	cw, err = a.control.CreateWork(ctx, &controlv1.CreateWorkRequest{
		Params: &workv1.SubmitParams{WorkType: "sleep", Node: "a", Params: map[string]string{"params": "60"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sleepID := cw.GetResult().GetUnitId()
	waitState(t, a.control, sleepID, "Running")
	cr, err := a.control.CancelWork(ctx, &controlv1.CancelWorkRequest{UnitId: sleepID})
	if err != nil || cr.GetUnitId() != sleepID || cr.GetPending() {
		t.Fatalf("CancelWork = %v, %v", cr, err)
	}
	waitState(t, a.control, sleepID, "Canceled")
	rr, err := a.control.ReleaseWork(ctx, &controlv1.ReleaseWorkRequest{UnitId: sleepID})
	if err != nil || rr.GetUnitId() != sleepID || rr.GetPending() {
		t.Fatalf("ReleaseWork = %v, %v", rr, err)
	}
	if _, err := a.control.GetWork(ctx, &controlv1.GetWorkRequest{UnitId: sleepID}); status.Code(err) != codes.NotFound {
		t.Errorf("GetWork after release: %v, want NotFound", err)
	}
	if _, err := a.control.ReleaseWork(ctx, &controlv1.ReleaseWorkRequest{UnitId: id, Force: true}); err != nil {
		t.Errorf("force release: %v", err)
	}
	lw, err = a.control.ListWork(ctx, &controlv1.ListWorkRequest{})
	if err != nil || len(lw.GetUnits()) != 1 || lw.GetUnits()[0].GetUnitId() != echoID {
		t.Errorf("ListWork after releases = %v, %v", lw, err)
	}

	// A submit rejected by the agent ends the SubmitWork call with its status.
	_, _, err = submitWork(ctx, a.control, &workv1.SubmitParams{WorkType: "cat", Node: "a", Ttl: "1m"}, nil)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "ttl") {
		t.Errorf("submit with ttl to the local node: %v", err)
	}
	var se interface{ GRPCStatus() *status.Status }
	if err != nil && !errors.As(err, &se) {
		t.Errorf("submit error %T is not a status", err)
	}
}
