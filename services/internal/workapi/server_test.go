package workapi

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/work"
	"github.com/receptor-mesh/receptor/services/work/command"
)

func TestMain(m *testing.M) {
	if command.IsRunnerInvocation(os.Args[1:]) {
		os.Exit(command.RunnerMain(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

func newClient(t *testing.T) workv1.WorkServiceClient {
	t.Helper()
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	t.Cleanup(func() { devnull.Close() })
	var types []work.WorkType
	for _, cfg := range []command.Config{
		{WorkType: "echo", Command: "echo", AllowRuntimeParams: true},
		{WorkType: "cat", Command: "cat"},
		{WorkType: "secure", Command: "cat", VerifySignature: true},
		{WorkType: "sleep", Command: "sleep", AllowRuntimeParams: true},
	} {
		ct, err := command.New(cfg, command.Options{RunnerOutput: devnull, CancelGrace: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, work.CommandType(ct))
	}
	agent, err := work.New(work.Options{NodeID: "nodea", DataDir: t.TempDir(), WorkTypes: types})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	workv1.RegisterWorkServiceServer(srv, New(agent, "1.2.3", nil))
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		agent.Close()
	})
	return workv1.NewWorkServiceClient(conn)
}

func submit(t *testing.T, c workv1.WorkServiceClient, p *workv1.SubmitParams, origin workv1.RequestOrigin, stdin []byte) (*workv1.SubmitResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := c.Submit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&workv1.SubmitRequest{Msg: &workv1.SubmitRequest_Params{Params: p}, Origin: origin}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Recv()
	if err != nil {
		return nil, err
	}
	created := resp.GetCreated()
	if created == nil {
		t.Fatalf("first response = %v, want created", resp)
	}
	if len(stdin) > 0 {
		if err := s.Send(&workv1.SubmitRequest{Msg: &workv1.SubmitRequest_Stdin{Stdin: stdin}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	resp, err = s.Recv()
	if err != nil {
		return nil, err
	}
	if resp.GetResult().GetUnitId() != created.GetUnitId() {
		t.Fatalf("result %v for created %v", resp, created)
	}
	return resp.GetResult(), nil
}

func readResults(t *testing.T, c workv1.WorkServiceClient, id string, off int64) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := c.GetResults(ctx, &workv1.GetResultsRequest{UnitId: id, Offset: off, Origin: workv1.RequestOrigin_REQUEST_ORIGIN_LOCAL})
	if err != nil {
		t.Fatal(err)
	}
	first, err := s.Recv()
	if err != nil {
		return "", err
	}
	if len(first.GetData()) != 0 {
		t.Fatalf("first results chunk carries %d bytes", len(first.GetData()))
	}
	var out []byte
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return string(out), nil
		}
		if err != nil {
			return "", err
		}
		if len(r.GetData()) > maxResultChunk {
			t.Fatalf("results chunk of %d bytes exceeds %d", len(r.GetData()), maxResultChunk)
		}
		if r.GetOffset() != off+int64(len(out)) {
			t.Fatalf("chunk offset %d, want %d", r.GetOffset(), off+int64(len(out)))
		}
		out = append(out, r.GetData()...)
	}
}

func TestLargeResultsChunked(t *testing.T) {
	c := newClient(t)
	big := make([]byte, 3*resultRead+12345)
	_, _ = rand.Read(big)
	res, err := submit(t, c, &workv1.SubmitParams{WorkType: "cat"}, workv1.RequestOrigin_REQUEST_ORIGIN_LOCAL, big)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 1, maxResultChunk + 7, resultRead} {
		got, err := readResults(t, c, res.GetUnitId(), off)
		if err != nil || got != string(big[off:]) {
			t.Fatalf("results from %d: %d bytes, %v; want %d bytes", off, len(got), err, len(big)-int(off))
		}
	}
}

func TestSubmitResultsStatusRelease(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	res, err := submit(t, c, &workv1.SubmitParams{WorkType: "cat"}, workv1.RequestOrigin_REQUEST_ORIGIN_LOCAL, []byte("hello grpc\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !res.GetStarted() || res.GetStatus().GetNode() != "nodea" {
		t.Fatalf("result = %v", res)
	}
	if got, err := readResults(t, c, res.GetUnitId(), 6); err != nil || got != "grpc\n" {
		t.Fatalf("results = %q, %v", got, err)
	}
	w, err := c.WatchUnitStatus(ctx, &workv1.WatchUnitStatusRequest{UnitId: res.GetUnitId()})
	if err != nil {
		t.Fatal(err)
	}
	var last *workv1.UnitStatus
	for {
		r, err := w.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = r.GetStatus()
	}
	if last.GetState() != workv1.UnitState_UNIT_STATE_SUCCEEDED || last.GetStateCode() != 2 || last.GetStateName() != "Succeeded" ||
		last.GetDetail() != "exit status 0" || last.GetStdoutSize() != 11 || !last.GetComplete() {
		t.Fatalf("final watched status = %v", last)
	}
	l, err := c.ListUnits(ctx, &workv1.ListUnitsRequest{})
	if err != nil || len(l.GetUnits()) != 1 {
		t.Fatalf("ListUnits = %v, %v", l, err)
	}
	if _, err := c.ReleaseUnit(ctx, &workv1.ReleaseUnitRequest{UnitId: res.GetUnitId()}); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetUnitStatus(ctx, &workv1.GetUnitStatusRequest{UnitId: res.GetUnitId()})
	if s, _ := status.FromError(err); s.Code() != codes.NotFound || s.Message() != "unknown work unit "+res.GetUnitId() {
		t.Fatalf("status after release = %v", err)
	}
}

func TestErrorCodes(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		p      *workv1.SubmitParams
		origin workv1.RequestOrigin
		code   codes.Code
		msg    string
	}{
		{"unknown type", &workv1.SubmitParams{WorkType: "nosuch"}, 0, codes.NotFound, "unknown work type nosuch"},
		{"extra params", &workv1.SubmitParams{WorkType: "cat", Params: map[string]string{"params": "x"}}, 0,
			codes.InvalidArgument, "extra params provided but not allowed"},
		{"unsigned secure from remote", &workv1.SubmitParams{WorkType: "secure"}, workv1.RequestOrigin_REQUEST_ORIGIN_REMOTE,
			codes.PermissionDenied, "could not verify signature: signature is empty"},
		{"unsigned secure, origin unset", &workv1.SubmitParams{WorkType: "secure"}, 0,
			codes.PermissionDenied, "could not verify signature: signature is empty"},
		{"ttl local", &workv1.SubmitParams{WorkType: "cat", Ttl: "1s"}, 0, codes.InvalidArgument, "ttl option is intended for remote work only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := submit(t, c, tt.p, tt.origin, nil)
			if s, _ := status.FromError(err); s.Code() != tt.code || s.Message() != tt.msg {
				t.Fatalf("Submit error = %v, want %v %q", err, tt.code, tt.msg)
			}
		})
	}
	_, err := c.CancelUnit(ctx, &workv1.CancelUnitRequest{UnitId: "nosuch"})
	if s, _ := status.FromError(err); s.Code() != codes.NotFound || s.Message() != "unknown work unit nosuch" {
		t.Fatalf("CancelUnit(nosuch) = %v", err)
	}
	if _, err := readResults(t, c, "nosuch", 0); status.Code(err) != codes.NotFound {
		t.Fatalf("GetResults(nosuch) = %v", err)
	}
}

func TestCancelAndWorkerInfo(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	res, err := submit(t, c, &workv1.SubmitParams{WorkType: "sleep", Params: map[string]string{"params": "1000"}}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.CancelUnit(ctx, &workv1.CancelUnitRequest{UnitId: res.GetUnitId()}); err != nil || r.GetPending() {
		t.Fatalf("CancelUnit = %v, %v", r, err)
	}
	st, err := c.GetUnitStatus(ctx, &workv1.GetUnitStatusRequest{UnitId: res.GetUnitId()})
	if err != nil || st.GetStatus().GetState() != workv1.UnitState_UNIT_STATE_CANCELED || st.GetStatus().GetDetail() != "Canceled" {
		t.Fatalf("status after cancel = %v, %v", st, err)
	}
	if lu := st.GetStatus().GetLastUpdated(); lu == nil || time.Since(lu.AsTime()) > time.Minute {
		t.Errorf("last_updated after cancel = %v, want about now", lu)
	}
	info, err := c.GetWorkerInfo(ctx, &workv1.GetWorkerInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetNodeId() != "nodea" || info.GetVersion() != "1.2.3" || len(info.GetWorkCommands()) != 4 ||
		!info.GetWorkCommands()[2].GetSecure() || info.GetCapacity().GetCpuCount() < 1 {
		t.Fatalf("GetWorkerInfo = %v", info)
	}
}
