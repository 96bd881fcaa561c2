package receptorctl

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/meshclient"
)

// grpcBackend speaks the router's gRPC ControlService (and MeshService
// Dial for connect and for work list --node, which reach another node's
// control service through the mesh), converting its messages to the
// control protocol's reply shapes.
type grpcBackend struct {
	conn *grpc.ClientConn
	cs   controlv1.ControlServiceClient
	mesh *meshclient.Client
}

// newGRPCBackend dials address ("unix:///path", "unix:path" or
// "host:port"); TCP needs tlsConf (with a client certificate: the server
// requires one) unless the host is loopback.
func newGRPCBackend(address string, tlsConf *tls.Config) (*grpcBackend, error) {
	conn, err := grpcserve.Dial(address, tlsConf)
	if err != nil {
		return nil, usageError(err)
	}
	return &grpcBackend{conn: conn, cs: controlv1.NewControlServiceClient(conn), mesh: meshclient.New(conn)}, nil
}

func (g *grpcBackend) Close() error { return g.conn.Close() }

func (g *grpcBackend) NodeVersion(ctx context.Context) (string, error) {
	resp, err := g.cs.GetVersion(ctx, &controlv1.GetVersionRequest{})
	if err != nil {
		return "", err
	}
	return resp.GetVersion().GetVersion(), nil
}

func (g *grpcBackend) Status(ctx context.Context) (map[string]any, error) {
	resp, err := g.cs.GetStatus(ctx, &controlv1.GetStatusRequest{})
	if err != nil {
		return nil, err
	}
	return statusObject(resp.GetStatus()), nil
}

// statusObject is a NodeStatus in the shape of the control protocol's
// status reply.
func statusObject(s *meshv1.NodeStatus) map[string]any {
	conns := make([]any, 0, len(s.GetConnections()))
	for _, c := range s.GetConnections() {
		conns = append(conns, map[string]any{"NodeID": c.GetNodeId(), "Cost": floatNumber(c.GetCost())})
	}
	routes := make(map[string]any, len(s.GetRoutingTable()))
	for k, v := range s.GetRoutingTable() {
		routes[k] = v
	}
	costs := make(map[string]any, len(s.GetKnownConnectionCosts()))
	for node, cc := range s.GetKnownConnectionCosts() {
		m := make(map[string]any, len(cc.GetCosts()))
		for peer, cost := range cc.GetCosts() {
			m[peer] = floatNumber(cost)
		}
		costs[node] = m
	}
	ads := make([]any, 0, len(s.GetAdvertisements()))
	for _, a := range s.GetAdvertisements() {
		ad := map[string]any{
			"NodeID":   a.GetNodeId(),
			"Service":  a.GetService(),
			"Time":     a.GetTime().AsTime().Format(time.RFC3339Nano),
			"ConnType": jsonNumber(int64(a.GetConnectionType()) - 1),
			"Tags":     nil,
		}
		if len(a.GetTags()) > 0 {
			tags := make(map[string]any, len(a.GetTags()))
			for k, v := range a.GetTags() {
				tags[k] = v
			}
			ad["Tags"] = tags
		}
		var wc any
		if len(a.GetWorkCommands()) > 0 {
			l := make([]any, 0, len(a.GetWorkCommands()))
			for _, c := range a.GetWorkCommands() {
				l = append(l, map[string]any{"WorkType": c.GetWorkType(), "Secure": c.GetSecure()})
			}
			wc = l
		}
		ad["WorkCommands"] = wc
		ads = append(ads, ad)
	}
	return map[string]any{
		"NodeID":               s.GetNodeId(),
		"Version":              s.GetVersion(),
		"SystemCPUCount":       jsonNumber(s.GetSystemCpuCount()),
		"SystemMemoryMiB":      jsonNumber(s.GetSystemMemoryMib()),
		"Connections":          conns,
		"RoutingTable":         routes,
		"KnownConnectionCosts": costs,
		"Advertisements":       ads,
	}
}

// meshFailure reports whether err is a mesh operation's failure (an error
// status naming the node), which the control protocol reports inside a
// reply rather than as an error.
func meshFailure(err error) bool { return apierr.Node(err) != "" }

func (g *grpcBackend) Ping(ctx context.Context, node string) (map[string]any, error) {
	resp, err := g.cs.Ping(ctx, &controlv1.PingRequest{Node: node})
	if err != nil {
		if meshFailure(err) {
			return map[string]any{"Error": status.Convert(err).Message(), "Success": false}, nil
		}
		return nil, err
	}
	rtt := resp.GetResult().GetRtt().AsDuration()
	return map[string]any{"From": resp.GetResult().GetFromNode(), "Success": true,
		"Time": jsonNumber(int64(rtt)), "TimeStr": rtt.String()}, nil
}

func (g *grpcBackend) Traceroute(ctx context.Context, node string) (map[string]any, error) {
	s, err := g.cs.Traceroute(ctx, &controlv1.TracerouteRequest{Node: node})
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for {
		resp, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		h := resp.GetHop()
		rtt := h.GetRtt().AsDuration()
		e := map[string]any{"From": h.GetFromNode(), "Time": jsonNumber(int64(rtt)), "TimeStr": rtt.String()}
		if h.GetError() != "" {
			e["Error"] = h.GetError()
		}
		out[strconv.Itoa(int(h.GetIndex()))] = e
	}
}

func (g *grpcBackend) Reload(ctx context.Context) (map[string]any, error) {
	if _, err := g.cs.Reload(ctx, &controlv1.ReloadRequest{}); err != nil {
		if status.Code(err) == codes.FailedPrecondition {
			return map[string]any{"Error": status.Convert(err).Message(), "Success": false}, nil
		}
		return nil, err
	}
	return map[string]any{"Success": true}, nil
}

func (g *grpcBackend) WorkList(ctx context.Context, node, tlsClient, unitID string) (map[string]any, error) {
	if node != "" {
		return g.remoteWorkList(ctx, node, tlsClient, unitID)
	}
	resp, err := g.cs.ListWork(ctx, &controlv1.ListWorkRequest{UnitId: unitID})
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(resp.GetUnits()))
	for _, u := range resp.GetUnits() {
		out[u.GetUnitId()] = unitObject(u)
	}
	return out, nil
}

// workListUpdated is WorkList of this node plus when each unit's status
// last changed (UnitStatus.last_updated; units without one are missing from
// the map). The time is not put in the status objects: they stay in the
// control protocol's shape, which has no such member.
func (g *grpcBackend) workListUpdated(ctx context.Context) (map[string]any, map[string]time.Time, error) {
	resp, err := g.cs.ListWork(ctx, &controlv1.ListWorkRequest{})
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string]any, len(resp.GetUnits()))
	updated := make(map[string]time.Time, len(resp.GetUnits()))
	for _, u := range resp.GetUnits() {
		out[u.GetUnitId()] = unitObject(u)
		if u.GetLastUpdated() != nil {
			updated[u.GetUnitId()] = u.GetLastUpdated().AsTime()
		}
	}
	return out, updated, nil
}

// remoteWorkList asks node's control service through the mesh, as the
// socket backend does through the control socket's connect.
func (g *grpcBackend) remoteWorkList(ctx context.Context, node, tlsClient, unitID string) (map[string]any, error) {
	conn, err := g.Connect(ctx, node, "control", tlsClient)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	c, err := client.NewConn(ctx, conn)
	if err != nil {
		return nil, err
	}
	line := "work list"
	if unitID != "" {
		line += " " + unitID
	}
	return objectCommand(ctx, c, line, func() {})
}

// unitObject is a UnitStatus in the shape of the control protocol's
// status object.
func unitObject(u *workv1.UnitStatus) map[string]any {
	var extra any
	if x := u.GetExtraData(); x != nil {
		if b, err := protojson.Marshal(x); err == nil {
			extra, _ = decodeJSON(b)
		}
	}
	return map[string]any{
		"State":      jsonNumber(int64(u.GetStateCode())),
		"StateName":  u.GetStateName(),
		"Detail":     u.GetDetail(),
		"StdoutSize": jsonNumber(u.GetStdoutSize()),
		"WorkType":   u.GetWorkType(),
		"ExtraData":  extra,
	}
}

func (g *grpcBackend) WorkStatus(ctx context.Context, unitID string) (map[string]any, error) {
	resp, err := g.cs.GetWork(ctx, &controlv1.GetWorkRequest{UnitId: unitID})
	if err != nil {
		return nil, err
	}
	return unitObject(resp.GetStatus()), nil
}

// stdinChunk is the size of SubmitWork's stdin messages (the server takes
// up to 1 MiB).
const stdinChunk = 256 << 10

func (g *grpcBackend) Submit(ctx context.Context, req submitRequest, payload io.Reader) (map[string]any, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := g.cs.SubmitWork(ctx)
	if err != nil {
		return nil, err
	}
	params := &workv1.SubmitParams{WorkType: req.WorkType, Node: req.Node, Params: req.Params,
		TlsClient: req.TLSClient, Ttl: req.TTL, SignWork: req.SignWork}
	if err := s.Send(&controlv1.SubmitWorkRequest{Msg: &controlv1.SubmitWorkRequest_Params{Params: params}}); err != nil {
		return nil, recvErr(s, err)
	}
	first, err := s.Recv()
	if err != nil {
		return nil, err
	}
	if first.GetCreated() == nil {
		return nil, fmt.Errorf("failed to start work unit: unexpected first reply %v", first)
	}
	if payload != nil {
		buf := make([]byte, stdinChunk)
		for {
			n, rerr := payload.Read(buf)
			if n > 0 {
				chunk := append([]byte(nil), buf[:n]...)
				if err := s.Send(&controlv1.SubmitWorkRequest{Msg: &controlv1.SubmitWorkRequest_Stdin{Stdin: chunk}}); err != nil {
					return nil, recvErr(s, err)
				}
			}
			if errors.Is(rerr, io.EOF) {
				break
			}
			if rerr != nil {
				return nil, fmt.Errorf("reading payload: %w", rerr)
			}
		}
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	last, err := s.Recv()
	if err != nil {
		return nil, err
	}
	r := last.GetResult()
	if r == nil {
		return nil, fmt.Errorf("work submit: unexpected final reply %v", last)
	}
	result := "Job Submitted"
	if r.GetStarted() {
		result = "Job Started"
	}
	return map[string]any{"result": result, "unitid": r.GetUnitId()}, nil
}

// recvErr is the server's status when a Send failed because the call ended
// (Send then reports only io.EOF).
func recvErr(s grpc.BidiStreamingClient[controlv1.SubmitWorkRequest, controlv1.SubmitWorkResponse], err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := s.Recv(); rerr != nil {
			return rerr
		}
	}
	return err
}

func (g *grpcBackend) Results(ctx context.Context, unitID string, offset int64) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := g.cs.GetWorkResults(ctx, &controlv1.GetWorkResultsRequest{UnitId: unitID, Offset: offset})
	if err != nil {
		cancel()
		return nil, err
	}
	// The first response says the unit was found (or the call fails).
	if _, err := s.Recv(); err != nil {
		cancel()
		return nil, err
	}
	return &resultsReader{s: s, cancel: cancel}, nil
}

type resultsReader struct {
	s      grpc.ServerStreamingClient[controlv1.GetWorkResultsResponse]
	cancel context.CancelFunc
	buf    []byte
}

func (r *resultsReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		resp, err := r.s.Recv()
		if err != nil {
			return 0, err
		}
		r.buf = resp.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *resultsReader) Close() error { r.cancel(); return nil }

func (g *grpcBackend) UnitOp(ctx context.Context, op, unitID string) (map[string]any, error) {
	switch op {
	case "cancel":
		if _, err := g.cs.CancelWork(ctx, &controlv1.CancelWorkRequest{UnitId: unitID}); err != nil {
			return nil, err
		}
		return map[string]any{"cancelled": unitID}, nil
	case "release", "force-release":
		if _, err := g.cs.ReleaseWork(ctx, &controlv1.ReleaseWorkRequest{UnitId: unitID, Force: op == "force-release"}); err != nil {
			return nil, err
		}
		return map[string]any{"released": unitID}, nil
	}
	return nil, fmt.Errorf("unknown unit operation %q", op)
}

func (g *grpcBackend) Connect(ctx context.Context, node, service, tlsClient string) (net.Conn, error) {
	return g.mesh.Dial(ctx, node, service, meshclient.DialOptions{TLSClient: tlsClient})
}

// floatNumber is a float as a node's JSON reply writes it (encoding/json:
// 1 rather than 1.0), so both backends print costs alike.
func floatNumber(f float64) json.Number {
	b, err := json.Marshal(f)
	if err != nil {
		return json.Number("0")
	}
	return json.Number(b)
}
