package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
)

// listingAgent is a WorkService client holding many units: ListUnits
// answers them all after a delay (the real agent reads every status
// file), counting calls.
type listingAgent struct {
	workv1.WorkServiceClient // nil: other methods are not called
	units                    []*workv1.UnitStatus
	calls                    atomic.Int64
}

func newListingAgent(t testing.TB, n int) *listingAgent {
	a := &listingAgent{}
	for i := range n {
		extra, err := structpb.NewValue(map[string]any{"Pid": float64(100000 + i), "Params": "--playbook site.yml --inventory hosts --limit web"})
		if err != nil {
			t.Fatal(err)
		}
		a.units = append(a.units, &workv1.UnitStatus{
			UnitId: fmt.Sprintf("u%07d", i), State: workv1.UnitState_UNIT_STATE_SUCCEEDED, StateCode: 2,
			StateName: "Succeeded", Detail: "exit status 0", StdoutSize: 123456, WorkType: "ansible-runner",
			ExtraData: extra, Node: "a", Complete: true,
		})
	}
	return a
}

func (a *listingAgent) GetWorkerInfo(context.Context, *workv1.GetWorkerInfoRequest, ...grpc.CallOption) (*workv1.GetWorkerInfoResponse, error) {
	return &workv1.GetWorkerInfoResponse{NodeId: "a", Version: "test"}, nil
}

func (a *listingAgent) ListUnits(ctx context.Context, _ *workv1.ListUnitsRequest, _ ...grpc.CallOption) (*workv1.ListUnitsResponse, error) {
	a.calls.Add(1)
	select {
	case <-time.After(30 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// A fresh message per call, as a gRPC client decodes one.
	out := &workv1.ListUnitsResponse{Units: make([]*workv1.UnitStatus, len(a.units))}
	for i, u := range a.units {
		out.Units[i] = proto.Clone(u).(*workv1.UnitStatus)
	}
	return out, nil
}

// workListOnce opens a control session and sends "work list" when start
// is closed; it returns the reply line.
func workListSession(sock string, greeted func(), start <-chan struct{}) ([]byte, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		greeted()
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReaderSize(c, 1<<20)
	_, err = r.ReadBytes('\n')
	greeted()
	if err != nil {
		return nil, fmt.Errorf("greeting: %w", err)
	}
	<-start
	if _, err := c.Write([]byte("work list\n")); err != nil {
		return nil, err
	}
	return r.ReadBytes('\n')
}

// TestConcurrentWorkListShared: many simultaneous `work list` requests
// share the building of the reply: the work agent is asked a few times,
// not once per request, the memory allocated does not grow with the
// number of callers, and every caller gets the same bytes as a lone one.
func TestConcurrentWorkListShared(t *testing.T) {
	const units, callers = 1200, 100
	agent := newListingAgent(t, units)
	n := startNode(t, nodeSpec{id: "a", opts: Options{Work: agent}})
	waitControlSocket(t, n)

	single := func() []byte {
		start := make(chan struct{})
		close(start)
		b, err := workListSession(n.ctlSock, func() {}, start)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	want := single()
	if len(want) < 200<<10 || !bytes.HasPrefix(want, []byte(`{"u0000000":{"Detail":"exit status 0","ExtraData":{"Pid":100000,"Params":`)) {
		t.Fatalf("lone work list reply: %d bytes, %.100q", len(want), want)
	}

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	single()
	runtime.ReadMemStats(&ms)
	perList := ms.TotalAlloc - before

	agent.calls.Store(0)
	start := make(chan struct{})
	var wg sync.WaitGroup
	replies := make([][]byte, callers)
	errs := make([]error, callers)
	var greeted sync.WaitGroup
	greeted.Add(callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i], errs[i] = workListSession(n.ctlSock, greeted.Done, start)
		}()
	}
	greeted.Wait() // every session connected, greeted and waiting
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before = ms.TotalAlloc
	close(start)
	wg.Wait()
	runtime.ReadMemStats(&ms)
	concurrent := ms.TotalAlloc - before
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !bytes.Equal(replies[i], want) {
			t.Fatalf("caller %d got %d bytes, want the lone reply's %d", i, len(replies[i]), len(want))
		}
	}
	calls := agent.calls.Load()
	t.Logf("%d units, reply %d bytes: one list allocates %d KiB; %d concurrent lists %d KiB with %d ListUnits calls",
		units, len(want), perList>>10, callers, concurrent>>10, calls)
	if calls > callers/10 {
		t.Errorf("%d concurrent work lists made %d ListUnits calls, want at most %d", callers, calls, callers/10)
	}
	if concurrent > 15*perList {
		t.Errorf("%d concurrent work lists allocated %d KiB, over 15 times one list's %d KiB", callers, concurrent>>10, perList>>10)
	}

	// The gRPC ListWork (REST's GET /v1/work) shares the agent's answer too.
	connect(t, n)
	agent.calls.Store(0)
	// 100 replies of 1,200 units each are seconds of marshalling under
	// -race on a loaded machine: this part is about sharing, not speed.
	slow, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := n.control.ListWork(slow, &controlv1.ListWorkRequest{})
			if err == nil && len(resp.GetUnits()) != units {
				err = fmt.Errorf("%d units", len(resp.GetUnits()))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range callers {
		if errs[i] != nil {
			t.Fatalf("ListWork caller %d: %v", i, errs[i])
		}
	}
	if calls := agent.calls.Load(); calls > callers/4 {
		t.Errorf("%d concurrent ListWork calls made %d ListUnits calls, want at most %d", callers, calls, callers/4)
	}
}
