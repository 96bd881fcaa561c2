package meshapi_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/meshapi"
	"github.com/receptor-mesh/receptor/services/internal/meshapi/apitest"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type env struct {
	mesh  *apitest.Mesh
	srv   *meshapi.Server
	mc    meshv1.MeshServiceClient
	calls *apitest.Calls
}

func newEnv(t testing.TB, opts meshapi.Options) *env {
	m := apitest.NewMesh(t, "a", "b")
	opts.Node = m.Nodes["a"]
	srv, cc, calls := apitest.ServeCalls(t, opts)
	return &env{mesh: m, srv: srv, mc: meshv1.NewMeshServiceClient(cc), calls: calls}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func u32(v uint32) *uint32 { return &v }

func TestPingValidation(t *testing.T) {
	e := newEnv(t, meshapi.Options{})
	ctx := testCtx(t)
	tests := []struct {
		name string
		req  *meshv1.PingRequest
		code codes.Code
	}{
		{"ok", &meshv1.PingRequest{Node: "b"}, codes.OK},
		{"localhost", &meshv1.PingRequest{Node: "LOCALHOST"}, codes.OK},
		{"empty node", &meshv1.PingRequest{}, codes.InvalidArgument},
		{"hops 30", &meshv1.PingRequest{Node: "b", HopsToLive: u32(30)}, codes.OK},
		{"hops 31", &meshv1.PingRequest{Node: "b", HopsToLive: u32(31)}, codes.InvalidArgument},
		{"hops 0 to a neighbour expires", &meshv1.PingRequest{Node: "b", HopsToLive: u32(0)}, codes.Unavailable},
		{"timeout 61s", &meshv1.PingRequest{Node: "b", Timeout: durationpb.New(61 * time.Second)}, codes.InvalidArgument},
		{"timeout negative", &meshv1.PingRequest{Node: "b", Timeout: durationpb.New(-time.Second)}, codes.InvalidArgument},
		{"timeout 60s", &meshv1.PingRequest{Node: "b", Timeout: durationpb.New(60 * time.Second)}, codes.OK},
		{"no route", &meshv1.PingRequest{Node: "zz", Timeout: durationpb.New(100 * time.Millisecond)}, codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.mc.Ping(ctx, tt.req)
			if status.Code(err) != tt.code {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tt.code)
			}
			if err == nil && resp.GetResult().GetFromNode() == "" {
				t.Errorf("reply without responder: %v", resp)
			}
		})
	}
}

func TestGetStatusAndVersion(t *testing.T) {
	work := &meshv1.WorkAgentStatus{Attached: true, Version: "w1"}
	e := newEnv(t, meshapi.Options{
		Version:    &meshv1.VersionInfo{Version: "1.2.3"},
		WorkStatus: func(context.Context) (*meshv1.WorkAgentStatus, error) { return work, nil },
	})
	ctx := testCtx(t)
	l, err := stream.Listen(ctx, e.mesh.Nodes["a"], "ctl", stream.ListenOptions{Advertise: true, Tags: map[string]string{"type": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	resp, err := e.mc.GetStatus(ctx, &meshv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.GetStatus()
	if st.GetNodeId() != "a" || st.GetVersion() != "1.2.3" || st.GetSystemCpuCount() < 1 || !st.GetWork().GetAttached() {
		t.Errorf("status = %v", st)
	}
	if c := st.GetConnections(); len(c) != 1 || c[0].GetNodeId() != "b" || c[0].GetCost() != 1 {
		t.Errorf("connections = %v", c)
	}
	found := false
	for _, ad := range st.GetAdvertisements() {
		if ad.GetNodeId() == "a" && ad.GetService() == "ctl" {
			found = ad.GetConnectionType() == meshv1.ConnectionType_CONNECTION_TYPE_STREAM && ad.GetTags()["type"] == "x"
		}
	}
	if !found {
		t.Errorf("own stream advertisement missing or wrong: %v", st.GetAdvertisements())
	}
	v, err := e.mc.GetVersion(ctx, &meshv1.GetVersionRequest{})
	if err != nil || v.GetVersion().GetVersion() != "1.2.3" {
		t.Errorf("version = %v, %v", v, err)
	}
}

func TestConnTypeProto(t *testing.T) {
	tests := []struct {
		in   mesh.ConnType
		want meshv1.ConnectionType
	}{
		{mesh.ConnTypeDatagram, meshv1.ConnectionType_CONNECTION_TYPE_DATAGRAM},
		{mesh.ConnTypeStream, meshv1.ConnectionType_CONNECTION_TYPE_STREAM},
		{mesh.ConnTypeStreamTLS, meshv1.ConnectionType_CONNECTION_TYPE_STREAM_TLS},
		{7, meshv1.ConnectionType_CONNECTION_TYPE_UNSPECIFIED},
	}
	for _, tt := range tests {
		if got := meshapi.ConnTypeProto(tt.in); got != tt.want {
			t.Errorf("ConnTypeProto(%d) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestSetWorkCommands(t *testing.T) {
	var applied []mesh.WorkCommand
	e := newEnv(t, meshapi.Options{WorkCommands: setterFunc(func(c []mesh.WorkCommand) { applied = c })})
	ctx := testCtx(t)
	if _, err := e.mc.SetWorkCommands(ctx, &meshv1.SetWorkCommandsRequest{WorkCommands: []*meshv1.WorkCommand{
		{WorkType: "echo"}, {WorkType: "sig", Secure: true},
	}}); err != nil {
		t.Fatal(err)
	}
	want := []mesh.WorkCommand{{WorkType: "echo"}, {WorkType: "sig", Secure: true}}
	if len(applied) != 2 || applied[0] != want[0] || applied[1] != want[1] {
		t.Errorf("applied %v, want %v", applied, want)
	}
	_, err := e.mc.SetWorkCommands(ctx, &meshv1.SetWorkCommandsRequest{WorkCommands: []*meshv1.WorkCommand{{}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("empty work type: %v", err)
	}
	big := make([]*meshv1.WorkCommand, meshapi.MaxWorkCommands+1)
	for i := range big {
		big[i] = &meshv1.WorkCommand{WorkType: "x"}
	}
	if _, err := e.mc.SetWorkCommands(ctx, &meshv1.SetWorkCommandsRequest{WorkCommands: big}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("too many: %v", err)
	}
	if _, err := e.mc.SetWorkCommands(ctx, &meshv1.SetWorkCommandsRequest{}); err != nil || len(applied) != 0 || len(e.srv.WorkCommands()) != 0 {
		t.Errorf("clear: %v, applied %v", err, applied)
	}
}

type setterFunc func([]mesh.WorkCommand)

func (f setterFunc) SetWorkCommands(c []mesh.WorkCommand) { f(c) }

func TestDialProtocolErrors(t *testing.T) {
	e := newEnv(t, meshapi.Options{})
	ctx := testCtx(t)
	tests := []struct {
		name string
		reqs []*meshv1.DialRequest
		code codes.Code
	}{
		{"no open", nil, codes.InvalidArgument},
		{"data first", []*meshv1.DialRequest{{Msg: &meshv1.DialRequest_Data{Data: []byte("x")}}}, codes.InvalidArgument},
		{"empty node", []*meshv1.DialRequest{{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Service: "s"}}}}, codes.InvalidArgument},
		{"long service", []*meshv1.DialRequest{{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Node: "b", Service: "123456789"}}}}, codes.InvalidArgument},
		{"unknown tls", []*meshv1.DialRequest{{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Node: "b", Service: "s", TlsClient: "t"}}}}, codes.NotFound},
		{"unknown service", []*meshv1.DialRequest{{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Node: "b", Service: "s"}}}}, codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := e.mc.Dial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tt.reqs {
				if err := s.Send(r); err != nil {
					t.Fatal(err)
				}
			}
			_ = s.CloseSend()
			_, err = s.Recv()
			if status.Code(err) != tt.code {
				t.Errorf("code %v (%v), want %v", status.Code(err), err, tt.code)
			}
		})
	}
}

func TestDialOversizedChunk(t *testing.T) {
	e := newEnv(t, meshapi.Options{})
	ctx := testCtx(t)
	l, err := stream.Listen(ctx, e.mesh.Nodes["b"], "sink", stream.ListenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := e.mc.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Open{Open: &meshv1.DialOpen{Node: "b", Service: "sink"}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Recv(); err != nil || r.GetConnected() == nil {
		t.Fatalf("connected: %v, %v", r, err)
	}
	_ = s.Send(&meshv1.DialRequest{Msg: &meshv1.DialRequest_Data{Data: make([]byte, meshapi.MaxChunkIn+1)}})
	if _, err := s.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("oversized chunk: %v", err)
	}
}

// listenAndDial opens a Listen call on node a and n mesh connections to it
// from node b; it returns the announced IDs (at most want) and the dialers.
func listenAndDial(t *testing.T, e *env, n, want int) ([]string, []*stream.Conn) {
	ctx := testCtx(t)
	ls, err := e.mc.Listen(ctx, &meshv1.ListenRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ls.Recv(); err != nil || r.GetListening().GetService() != "svc" {
		t.Fatalf("listening: %v, %v", r, err)
	}
	var conns []*stream.Conn
	for range n {
		c, err := stream.DialConn(ctx, e.mesh.Nodes["b"], "a", "svc", stream.DialOptions{Logger: apitest.QuietLogger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		conns = append(conns, c)
	}
	var ids []string
	for range want {
		r, err := ls.Recv()
		if err != nil || r.GetIncoming() == nil {
			t.Fatalf("incoming: %v, %v", r, err)
		}
		ids = append(ids, r.GetIncoming().GetConnectionId())
	}
	return ids, conns
}

func accept(t *testing.T, e *env, id string) error {
	s, err := e.mc.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.CloseSend() })
	_ = s.Send(&meshv1.AcceptRequest{Msg: &meshv1.AcceptRequest_Open{Open: &meshv1.AcceptOpen{ConnectionId: id}}})
	r, err := s.Recv()
	if err == nil && r.GetAccepted().GetRemoteNode() != "b" {
		t.Errorf("accepted = %v", r)
	}
	return err
}

func TestUnacceptedLimit(t *testing.T) {
	e := newEnv(t, meshapi.Options{MaxUnaccepted: 2})
	ids, conns := listenAndDial(t, e, 3, 2)
	// Over the limit, the third connection is closed instead of announced.
	if _, err := conns[2].Read(make([]byte, 1)); err == nil {
		t.Error("third connection: read succeeded, want it closed by the router")
	}
	// The parked ones are still open (a read times out) and can be taken.
	_ = conns[0].SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var ne interface{ Timeout() bool }
	if _, err := conns[0].Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("parked connection: %v, want a read timeout", err)
	}
	for _, id := range ids {
		if err := accept(t, e, id); err != nil {
			t.Errorf("accept %s: %v", id, err)
		}
	}
	if err := accept(t, e, ids[0]); status.Code(err) != codes.NotFound {
		t.Errorf("second accept of one ID: %v, want NotFound", err)
	}
}

func TestUnacceptedExpiry(t *testing.T) {
	e := newEnv(t, meshapi.Options{AcceptTimeout: 100 * time.Millisecond})
	ids, conns := listenAndDial(t, e, 1, 1)
	if _, err := conns[0].Read(make([]byte, 1)); err == nil {
		t.Error("read succeeded, want the expired connection closed")
	}
	if err := accept(t, e, ids[0]); status.Code(err) != codes.NotFound {
		t.Errorf("accept of expired: %v, want NotFound", err)
	}
}

func TestPacketSocketErrorsAndDrops(t *testing.T) {
	e := newEnv(t, meshapi.Options{PacketQueue: 4})
	ctx := testCtx(t)
	bindReq := func(svc string) *meshv1.PacketSocketRequest {
		return &meshv1.PacketSocketRequest{Msg: &meshv1.PacketSocketRequest_Bind{Bind: &meshv1.PacketBind{Service: svc}}}
	}
	tests := []struct {
		name string
		reqs []*meshv1.PacketSocketRequest
		code codes.Code
	}{
		{"send first", []*meshv1.PacketSocketRequest{{Msg: &meshv1.PacketSocketRequest_Send{Send: &meshv1.PacketSend{Node: "b", Service: "x"}}}}, codes.InvalidArgument},
		{"reserved", []*meshv1.PacketSocketRequest{bindReq("ping")}, codes.AlreadyExists},
		{"advertise without name", []*meshv1.PacketSocketRequest{{Msg: &meshv1.PacketSocketRequest_Bind{Bind: &meshv1.PacketBind{Advertise: true}}}}, codes.InvalidArgument},
		{"second bind", []*meshv1.PacketSocketRequest{bindReq(""), bindReq("")}, codes.InvalidArgument},
		{"oversized", []*meshv1.PacketSocketRequest{bindReq(""), {Msg: &meshv1.PacketSocketRequest_Send{Send: &meshv1.PacketSend{
			Node: "b", Service: "x", Data: make([]byte, meshapi.MaxDatagram+1)}}}}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := e.mc.PacketSocket(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tt.reqs {
				_ = s.Send(r)
			}
			var last error
			for last == nil {
				_, last = s.Recv()
			}
			if status.Code(last) != tt.code {
				t.Errorf("code %v (%v), want %v", status.Code(last), last, tt.code)
			}
		})
	}

	// A client that does not read: datagrams beyond the queue are dropped
	// and counted, and the node keeps working.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := e.mc.PacketSocket(sctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(bindReq("slow"))
	if r, err := s.Recv(); err != nil || r.GetBound() == nil {
		t.Fatalf("bound: %v, %v", r, err)
	}
	sender, err := e.mesh.Nodes["b"].ListenPacket("")
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	payload := make([]byte, 60000)
	apitest.Eventually(t, 20*time.Second, func() bool {
		for range 64 {
			_, _ = sender.WriteTo(payload, mesh.Addr{Node: "a", Service: "slow"})
		}
		return e.srv.DroppedPackets() > 0
	}, "datagrams dropped for a slow client")
	if _, err := e.mc.Ping(ctx, &meshv1.PingRequest{Node: "b"}); err != nil {
		t.Errorf("ping while a socket is congested: %v", err)
	}
	cancel()
	for {
		if _, err := s.Recv(); err != nil {
			if !errors.Is(err, io.EOF) && status.Code(err) != codes.Canceled {
				t.Errorf("end: %v", err)
			}
			break
		}
	}
}

func TestAcceptUnknownID(t *testing.T) {
	e := newEnv(t, meshapi.Options{})
	s, err := e.mc.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&meshv1.AcceptRequest{Msg: &meshv1.AcceptRequest_Open{Open: &meshv1.AcceptOpen{ConnectionId: "nope"}}})
	if _, err := s.Recv(); status.Code(err) != codes.NotFound {
		t.Errorf("got %v", err)
	}
}

// The node applies SetWorkCommands itself when no setter is configured.
var _ meshapi.WorkCommandSetter = (*mesh.Node)(nil)
