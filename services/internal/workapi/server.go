// Package workapi serves the work agent over gRPC (receptor.work.v1
// WorkService), mapping agent errors to gRPC codes with upstream's error
// texts as messages.
package workapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/coalesce"
	"github.com/receptor-mesh/receptor/services/work"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// Bounds of the API (proto/README.md).
const (
	maxStdinChunk  = 1 << 20
	maxResultChunk = 64 << 10
	// resultRead is how much of the stdout file one read takes; it goes
	// out as maxResultChunk messages. Large reads keep the syscalls per
	// byte low (the file is usually in the page cache).
	resultRead = 4 * maxResultChunk
	// firstResultRead is the size of the first read; see GetResults.
	firstResultRead = 16 << 10
	maxParams       = 64
	maxParamSize    = 64 << 10
)

// Server implements workv1.WorkServiceServer over an Agent.
type Server struct {
	workv1.UnimplementedWorkServiceServer
	agent   *work.Agent
	version string
	policy  *authz.Policy
	// lists builds one full unit list for all concurrent ListUnits calls.
	lists coalesce.Group[*workv1.ListUnitsResponse]
}

// New returns a server for agent; version is reported by GetWorkerInfo.
// policy decides whose claim of a local (trusted) origin is believed and
// who may have work signed; the server's gRPC interceptor must put the
// caller's principal in each call's context (grpcserve.Options.Policy).
// A nil policy believes every caller: only for tests and embedders that
// reach the server through a trusted channel alone.
func New(agent *work.Agent, version string, policy *authz.Policy) *Server {
	return &Server{agent: agent, version: version, policy: policy}
}

// auth is the signature rule of a request: a caller's claim that the
// request comes from a local (trusted) client is believed only from the
// router, which derives it from its own transport (authz.Policy.TrustsOrigin).
func (s *Server) auth(ctx context.Context, sig string, origin workv1.RequestOrigin) work.Auth {
	trusted := origin == workv1.RequestOrigin_REQUEST_ORIGIN_LOCAL
	if trusted && s.policy != nil && !s.policy.TrustsOrigin(authz.FromContext(ctx)) {
		trusted = false
	}
	return work.Auth{Signature: sig, Trusted: trusted}
}

// maySign refuses signwork to callers not allowed to have work signed.
func (s *Server) maySign(ctx context.Context, signWork bool) error {
	if !signWork || s.policy == nil {
		return nil
	}
	if err := s.policy.Authorize(ctx, authz.ActionSignWork, "grpc/work"); err != nil {
		return apierr.Denied(err)
	}
	return nil
}

// toStatus maps an agent error to a gRPC status carrying its exact text.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	text := err.Error()
	switch {
	case errors.Is(err, work.ErrUnknownUnit), errors.Is(err, work.ErrUnknownWorkType):
		return apierr.NotFound(text)
	case errors.Is(err, work.ErrSignature):
		return apierr.SignatureRejected(text)
	case errors.Is(err, work.ErrInvalidRequest):
		return apierr.BadRequest(text)
	case errors.Is(err, work.ErrRemote), errors.Is(err, work.ErrClosed):
		return apierr.WorkUnavailable(text)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return apierr.ContextEnded(err)
	}
	return apierr.Unclassified(text)
}

// UnitStatus converts an agent report.
func (s *Server) UnitStatus(id string, r unit.Report) (*workv1.UnitStatus, error) {
	var extra *structpb.Value
	if len(r.ExtraData) == 0 {
		extra = structpb.NewNullValue()
	} else {
		var v any
		if err := json.Unmarshal(r.ExtraData, &v); err != nil {
			return nil, fmt.Errorf("unit %s ExtraData: %w", id, err)
		}
		var err error
		if extra, err = structpb.NewValue(v); err != nil {
			return nil, fmt.Errorf("unit %s ExtraData: %w", id, err)
		}
	}
	state := workv1.UnitState_UNIT_STATE_UNSPECIFIED
	if r.State >= unit.Pending && r.State <= unit.Canceled {
		state = workv1.UnitState(int32(r.State) + 1)
	}
	st := &workv1.UnitStatus{
		UnitId:     id,
		State:      state,
		StateCode:  int32(r.State),
		StateName:  r.StateName,
		Detail:     r.Detail,
		StdoutSize: r.StdoutSize,
		WorkType:   r.WorkType,
		ExtraData:  extra,
		Node:       s.agent.RunsOn(r),
		Complete:   r.State.Complete(),
	}
	if !r.Updated.IsZero() {
		st.LastUpdated = timestamppb.New(r.Updated)
	}
	return st, nil
}

func (s *Server) statusOf(id string) (*workv1.UnitStatus, error) {
	r, err := s.agent.Status(id)
	if err != nil {
		return nil, toStatus(err)
	}
	return s.UnitStatus(id, r)
}

// stdinStream reads the stdin chunks of a Submit call.
type stdinStream struct {
	stream grpc.BidiStreamingServer[workv1.SubmitRequest, workv1.SubmitResponse]
	buf    []byte
}

func (r *stdinStream) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		req, err := r.stream.Recv()
		if err != nil {
			return 0, err // io.EOF at CloseSend
		}
		chunk, ok := req.GetMsg().(*workv1.SubmitRequest_Stdin)
		if !ok {
			return 0, apierr.BadRequest("submit: only stdin may follow the params")
		}
		if len(chunk.Stdin) > maxStdinChunk {
			return 0, apierr.BadRequest(fmt.Sprintf("submit: stdin chunk of %d bytes exceeds %d", len(chunk.Stdin), maxStdinChunk))
		}
		r.buf = chunk.Stdin
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Submit implements WorkService.Submit.
func (s *Server) Submit(stream grpc.BidiStreamingServer[workv1.SubmitRequest, workv1.SubmitResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return apierr.BadRequest(fmt.Sprintf("submit: reading params: %v", err))
	}
	p := first.GetParams()
	if p == nil {
		return apierr.BadRequest("submit: the first request must carry params")
	}
	if len(p.GetParams()) > maxParams {
		return apierr.BadRequest(fmt.Sprintf("submit: %d params exceed the limit of %d", len(p.GetParams()), maxParams))
	}
	for k, v := range p.GetParams() {
		if len(k)+len(v) > maxParamSize {
			return apierr.BadRequest(fmt.Sprintf("submit: param %s exceeds %d bytes", k, maxParamSize))
		}
	}
	req := work.SubmitRequest{
		Node: p.GetNode(), WorkType: p.GetWorkType(), Params: p.GetParams(),
		TLSClient: p.GetTlsClient(), TTL: p.GetTtl(), SignWork: p.GetSignWork(),
		Auth: s.auth(stream.Context(), p.GetSignature(), first.GetOrigin()),
		Created: func(id string) error {
			return stream.Send(&workv1.SubmitResponse{Msg: &workv1.SubmitResponse_Created{Created: &workv1.UnitCreated{UnitId: id}}})
		},
	}
	if req.Node == "" {
		req.Node = "localhost"
	}
	if err := s.maySign(stream.Context(), req.SignWork); err != nil {
		return err
	}
	res, err := s.agent.Submit(stream.Context(), req, &stdinStream{stream: stream})
	if err != nil {
		return toStatus(err)
	}
	st, err := s.statusOf(res.UnitID)
	if err != nil {
		return err
	}
	return stream.Send(&workv1.SubmitResponse{Msg: &workv1.SubmitResponse_Result{Result: &workv1.SubmitResult{
		UnitId: res.UnitID, Started: res.Result == work.ResultStarted, Status: st, DeferredReason: res.Reason,
	}}})
}

// ListUnits implements WorkService.ListUnits. The full list (every status
// file read, hundreds of KiB with a thousand units) is built once for all
// concurrent callers, each getting a list built after its call began;
// gRPC only reads the shared message to send it.
func (s *Server) ListUnits(ctx context.Context, req *workv1.ListUnitsRequest) (*workv1.ListUnitsResponse, error) {
	if req.GetUnitId() != "" {
		return s.listUnits(req.GetUnitId())
	}
	return s.lists.Do(ctx, func() (*workv1.ListUnitsResponse, error) { return s.listUnits("") })
}

func (s *Server) listUnits(id string) (*workv1.ListUnitsResponse, error) {
	l, err := s.agent.List(id)
	if err != nil {
		return nil, toStatus(err)
	}
	ids := make([]string, 0, len(l))
	for id := range l {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := &workv1.ListUnitsResponse{Units: make([]*workv1.UnitStatus, 0, len(ids))}
	for _, id := range ids {
		st, err := s.UnitStatus(id, l[id])
		if err != nil {
			// As the agent does for unreadable units: one bad unit does
			// not hide the others.
			continue
		}
		out.Units = append(out.Units, st)
	}
	return out, nil
}

// GetUnitStatus implements WorkService.GetUnitStatus.
func (s *Server) GetUnitStatus(_ context.Context, req *workv1.GetUnitStatusRequest) (*workv1.GetUnitStatusResponse, error) {
	st, err := s.statusOf(req.GetUnitId())
	if err != nil {
		return nil, err
	}
	return &workv1.GetUnitStatusResponse{Status: st}, nil
}

// WatchUnitStatus implements WorkService.WatchUnitStatus.
func (s *Server) WatchUnitStatus(req *workv1.WatchUnitStatusRequest, stream grpc.ServerStreamingServer[workv1.WatchUnitStatusResponse]) error {
	if req.GetAllUnits() {
		return s.watchAll(stream)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	ch, err := s.agent.Watch(ctx, req.GetUnitId())
	if err != nil {
		return toStatus(err)
	}
	final := false
	for r := range ch {
		st, err := s.UnitStatus(req.GetUnitId(), r)
		if err != nil {
			return toStatus(err)
		}
		if err := stream.Send(&workv1.WatchUnitStatusResponse{Status: st}); err != nil {
			return err
		}
		final = r.State.Complete() || r.State == unit.Canceled
	}
	if final {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return toStatus(err)
	}
	// The watch ended without a final state: the unit was released.
	_, err = s.agent.Status(req.GetUnitId())
	if err == nil {
		return apierr.WorkAgentClosing()
	}
	return toStatus(err)
}

// GetResults implements WorkService.GetResults.
func (s *Server) GetResults(req *workv1.GetResultsRequest, stream grpc.ServerStreamingServer[workv1.GetResultsResponse]) error {
	rc, err := s.agent.Results(stream.Context(), req.GetUnitId(), req.GetOffset(), s.auth(stream.Context(), req.GetSignature(), req.GetOrigin()))
	if err != nil {
		return toStatus(err)
	}
	defer rc.Close()
	off := req.GetOffset()
	// One message, reused: gRPC has serialized it when Send returns.
	msg := &workv1.GetResultsResponse{Offset: off}
	if err := stream.Send(msg); err != nil {
		return err
	}
	// Reads start small and move to resultRead once one fills the buffer:
	// most results are short, and a 256 KiB buffer per call cost zeroing
	// and collections in bursts of small units.
	buf := make([]byte, firstResultRead)
	for {
		n, err := rc.Read(buf)
		for sent := 0; sent < n; {
			k := min(n-sent, maxResultChunk)
			msg.Data, msg.Offset = buf[sent:sent+k], off
			if serr := stream.Send(msg); serr != nil {
				return serr
			}
			sent += k
			off += int64(k)
		}
		if n == len(buf) && len(buf) < resultRead {
			buf = make([]byte, resultRead)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return toStatus(err)
		}
	}
}

// CancelUnit implements WorkService.CancelUnit.
func (s *Server) CancelUnit(ctx context.Context, req *workv1.CancelUnitRequest) (*workv1.CancelUnitResponse, error) {
	res, err := s.agent.Cancel(ctx, req.GetUnitId(), s.auth(ctx, req.GetSignature(), req.GetOrigin()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &workv1.CancelUnitResponse{UnitId: req.GetUnitId(), Pending: res.Pending}, nil
}

// ReleaseUnit implements WorkService.ReleaseUnit.
func (s *Server) ReleaseUnit(ctx context.Context, req *workv1.ReleaseUnitRequest) (*workv1.ReleaseUnitResponse, error) {
	res, err := s.agent.Release(ctx, req.GetUnitId(), req.GetForce(), s.auth(ctx, req.GetSignature(), req.GetOrigin()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &workv1.ReleaseUnitResponse{UnitId: req.GetUnitId(), Pending: res.Pending}, nil
}

// AdoptRemoteUnit implements WorkService.AdoptRemoteUnit.
func (s *Server) AdoptRemoteUnit(ctx context.Context, req *workv1.AdoptRemoteUnitRequest) (*workv1.AdoptRemoteUnitResponse, error) {
	if err := s.maySign(ctx, req.GetSignWork()); err != nil {
		return nil, err
	}
	id, err := s.agent.AdoptRemote(req.GetNode(), req.GetRemoteUnitId(), req.GetWorkType(), req.GetTlsClient(), req.GetSignWork())
	if err != nil {
		return nil, toStatus(err)
	}
	st, err := s.statusOf(id)
	if err != nil {
		return nil, err
	}
	return &workv1.AdoptRemoteUnitResponse{Status: st}, nil
}

// GetWorkerInfo implements WorkService.GetWorkerInfo.
func (s *Server) GetWorkerInfo(context.Context, *workv1.GetWorkerInfoRequest) (*workv1.GetWorkerInfoResponse, error) {
	c := s.agent.Capacity()
	out := &workv1.GetWorkerInfoResponse{
		NodeId:  s.agent.NodeID(),
		Version: s.version,
		Capacity: &meshv1.WorkCapacity{
			CpuCount: int64(c.CPUCount), MemoryMib: c.MemoryMiB, RunningUnits: int64(c.RunningUnits),
		},
	}
	for _, wc := range s.agent.WorkTypes() {
		out.WorkCommands = append(out.WorkCommands, &meshv1.WorkCommand{WorkType: wc.WorkType, Secure: wc.Secure})
	}
	return out, nil
}
