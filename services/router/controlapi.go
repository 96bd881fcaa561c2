package router

import (
	"context"
	"errors"
	"io"

	"google.golang.org/grpc"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/authz"
	"github.com/receptor-mesh/receptor/services/internal/coalesce"
	"github.com/receptor-mesh/receptor/services/internal/grpcserve"
	"github.com/receptor-mesh/receptor/services/internal/meshapi"
	"github.com/receptor-mesh/receptor/services/mesh"
)

// maxCreateStdin bounds CreateWork's inline input (proto docs: 4 MiB).
const maxCreateStdin = grpcserve.MaxCreateStdin

// controlAPI is the router's ControlService: the node operations come from
// the MeshService implementation, work goes to the work agent. The REST
// gateway reaches it through gRPC, so REST and gRPC share this code.
type controlAPI struct {
	controlv1.UnimplementedControlServiceServer
	mesh   *meshapi.Server
	node   *mesh.Node
	work   workv1.WorkServiceClient // nil: no work agent attached
	reload func(ctx context.Context) error
	policy *authz.Policy
	quota  *quota
	// lists fetches one full unit list for all concurrent ListWork calls.
	lists coalesce.Group[*controlv1.ListWorkResponse]
}

// requestOrigin derives trust from the caller: only unix-socket peers are
// local clients, whose work signatures are not verified, as upstream
// treats its unix control socket. REST callers, even relayed over the
// in-process connection, are not.
func requestOrigin(ctx context.Context) workv1.RequestOrigin {
	if authz.FromContext(ctx).Kind == authz.KindUnix {
		return workv1.RequestOrigin_REQUEST_ORIGIN_LOCAL
	}
	return workv1.RequestOrigin_REQUEST_ORIGIN_REMOTE
}

// checkSubmit refuses signwork to principals not allowed to have work
// signed by this node.
func (c *controlAPI) checkSubmit(ctx context.Context, p *workv1.SubmitParams) error {
	if !p.GetSignWork() {
		return nil
	}
	if err := c.policy.Authorize(ctx, authz.ActionSignWork, "grpc/control"); err != nil {
		return apierr.Denied(err)
	}
	return nil
}

func (c *controlAPI) workClient() (workv1.WorkServiceClient, error) {
	if c.work == nil {
		return nil, apierr.NoWorkAgent()
	}
	return c.work, nil
}

func (c *controlAPI) GetStatus(ctx context.Context, _ *controlv1.GetStatusRequest) (*controlv1.GetStatusResponse, error) {
	resp, err := c.mesh.GetStatus(ctx, &meshv1.GetStatusRequest{})
	if err != nil {
		return nil, err
	}
	return &controlv1.GetStatusResponse{Status: resp.GetStatus()}, nil
}

func (c *controlAPI) GetVersion(ctx context.Context, _ *controlv1.GetVersionRequest) (*controlv1.GetVersionResponse, error) {
	resp, err := c.mesh.GetVersion(ctx, &meshv1.GetVersionRequest{})
	if err != nil {
		return nil, err
	}
	return &controlv1.GetVersionResponse{Version: resp.GetVersion()}, nil
}

func (c *controlAPI) Ping(ctx context.Context, req *controlv1.PingRequest) (*controlv1.PingResponse, error) {
	resp, err := c.mesh.Ping(ctx, &meshv1.PingRequest{Node: req.GetNode(), HopsToLive: req.HopsToLive, Timeout: req.GetTimeout()})
	if err != nil {
		return nil, err
	}
	return &controlv1.PingResponse{Result: resp.GetResult()}, nil
}

// traceStream adapts the ControlService traceroute stream to the
// MeshService one, whose implementation does the work.
type traceStream struct {
	grpc.ServerStream
	out grpc.ServerStreamingServer[controlv1.TracerouteResponse]
}

func (t traceStream) Send(m *meshv1.TracerouteResponse) error {
	return t.out.Send(&controlv1.TracerouteResponse{Hop: m.GetHop()})
}

func (c *controlAPI) Traceroute(req *controlv1.TracerouteRequest, gs grpc.ServerStreamingServer[controlv1.TracerouteResponse]) error {
	return c.mesh.Traceroute(&meshv1.TracerouteRequest{Node: req.GetNode()}, traceStream{ServerStream: gs, out: gs})
}

func (c *controlAPI) Reload(ctx context.Context, _ *controlv1.ReloadRequest) (*controlv1.ReloadResponse, error) {
	err := c.reload(ctx)
	if err == nil {
		return &controlv1.ReloadResponse{}, nil
	}
	var re *reloadError
	if errors.As(err, &re) {
		return nil, apierr.ReloadFailed(re.err.Error(), re.code)
	}
	return nil, apierr.ReloadFailed(err.Error(), 5) // not a reload failure receptorctl knows
}

func (c *controlAPI) SubmitWork(gs grpc.BidiStreamingServer[controlv1.SubmitWorkRequest, controlv1.SubmitWorkResponse]) error {
	wc, err := c.workClient()
	if err != nil {
		return err
	}
	// The parameters come first; they decide whether the caller may submit
	// at all (signwork) before anything reaches the agent.
	head, err := gs.Recv()
	if err != nil {
		return err
	}
	if err := c.checkSubmit(gs.Context(), head.GetParams()); err != nil {
		return err
	}
	adm, err := c.quota.admit(gs.Context())
	if err != nil {
		return err
	}
	defer adm.done()
	ctx, cancel := context.WithCancelCause(gs.Context())
	defer cancel(nil)
	up, err := wc.Submit(ctx)
	if err != nil {
		return err
	}
	origin := requestOrigin(gs.Context())
	// Client → agent: relay every message; the first carries the origin.
	// The relay is not waited for: it can only be blocked in gs.Recv, which
	// returns once this handler has returned, or in up.Send, which returns
	// once ctx is cancelled (deferred above). Waiting for it would hang a
	// call the agent ended early (a rejected submission) until the client
	// sent its next message.
	go func() {
		first := true
		for m, err := head, error(nil); ; m, err = gs.Recv() {
			if err == io.EOF {
				_ = up.CloseSend()
				return
			}
			if err != nil {
				cancel(nil)
				return
			}
			req := &workv1.SubmitRequest{}
			switch msg := m.GetMsg().(type) {
			case *controlv1.SubmitWorkRequest_Params:
				if !first {
					// Parameters come once: a second set would dodge the
					// checks made on the first.
					cancel(apierr.BadRequest("submit: parameters may only be sent in the first message"))
					return
				}
				req.Msg = &workv1.SubmitRequest_Params{Params: msg.Params}
			case *controlv1.SubmitWorkRequest_Stdin:
				if err := adm.addStdin(len(msg.Stdin)); err != nil {
					cancel(err)
					return
				}
				req.Msg = &workv1.SubmitRequest_Stdin{Stdin: msg.Stdin}
			}
			if first {
				req.Origin, first = origin, false
			}
			if err := up.Send(req); err != nil {
				// The agent ended the call; its status arrives on Recv.
				return
			}
		}
	}()
	// Agent → client.
	for {
		m, err := up.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && cause != context.Canceled {
				return cause
			}
			return err
		}
		out := &controlv1.SubmitWorkResponse{}
		switch msg := m.GetMsg().(type) {
		case *workv1.SubmitResponse_Created:
			adm.created(msg.Created.GetUnitId())
			out.Msg = &controlv1.SubmitWorkResponse_Created{Created: msg.Created}
		case *workv1.SubmitResponse_Result:
			out.Msg = &controlv1.SubmitWorkResponse_Result{Result: msg.Result}
		}
		if err := gs.Send(out); err != nil {
			return err
		}
	}
}

func (c *controlAPI) CreateWork(ctx context.Context, req *controlv1.CreateWorkRequest) (*controlv1.CreateWorkResponse, error) {
	if err := c.checkSubmit(ctx, req.GetParams()); err != nil {
		return nil, err
	}
	wc, err := c.workClient()
	if err != nil {
		return nil, err
	}
	if len(req.GetStdin()) > maxCreateStdin {
		return nil, apierr.StdinTooLarge(len(req.GetStdin()), maxCreateStdin)
	}
	adm, err := c.quota.admit(ctx)
	if err != nil {
		return nil, err
	}
	defer adm.done()
	if err := adm.addStdin(len(req.GetStdin())); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	up, err := wc.Submit(ctx)
	if err != nil {
		return nil, err
	}
	if err := up.Send(&workv1.SubmitRequest{
		Msg: &workv1.SubmitRequest_Params{Params: req.GetParams()}, Origin: requestOrigin(ctx),
	}); err != nil {
		return nil, submitStatus(up)
	}
	for data := req.GetStdin(); len(data) > 0; {
		n := min(len(data), stdinChunk)
		if err := up.Send(&workv1.SubmitRequest{Msg: &workv1.SubmitRequest_Stdin{Stdin: data[:n]}}); err != nil {
			return nil, submitStatus(up)
		}
		data = data[n:]
	}
	if err := up.CloseSend(); err != nil {
		return nil, err
	}
	for {
		m, err := up.Recv()
		if err != nil {
			if err == io.EOF {
				err = errors.New("work agent ended the submission without a result")
			}
			return nil, err
		}
		if cr := m.GetCreated(); cr != nil {
			adm.created(cr.GetUnitId())
		}
		if r := m.GetResult(); r != nil {
			return &controlv1.CreateWorkResponse{Result: r}, nil
		}
	}
}

// submitStatus returns the status that ended a Submit call after Send
// failed: gRPC returns io.EOF from Send and the real status from Recv.
func submitStatus(up workv1.WorkService_SubmitClient) error {
	for {
		if _, err := up.Recv(); err != nil {
			return err
		}
	}
}

func (c *controlAPI) ListWork(ctx context.Context, req *controlv1.ListWorkRequest) (*controlv1.ListWorkResponse, error) {
	wc, err := c.workClient()
	if err != nil {
		return nil, err
	}
	if req.GetUnitId() != "" {
		resp, err := wc.ListUnits(ctx, &workv1.ListUnitsRequest{UnitId: req.GetUnitId()})
		if err != nil {
			return nil, err
		}
		return &controlv1.ListWorkResponse{Units: resp.GetUnits()}, nil
	}
	// The full list is shared by concurrent callers, as for `work list`
	// (ops.WorkListReply); gRPC only reads the message to send it.
	return c.lists.Do(ctx, func() (*controlv1.ListWorkResponse, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listTimeout)
		defer cancel()
		resp, err := wc.ListUnits(lctx, &workv1.ListUnitsRequest{})
		if err != nil {
			return nil, err
		}
		return &controlv1.ListWorkResponse{Units: resp.GetUnits()}, nil
	})
}

func (c *controlAPI) GetWork(ctx context.Context, req *controlv1.GetWorkRequest) (*controlv1.GetWorkResponse, error) {
	wc, err := c.workClient()
	if err != nil {
		return nil, err
	}
	resp, err := wc.GetUnitStatus(ctx, &workv1.GetUnitStatusRequest{UnitId: req.GetUnitId()})
	if err != nil {
		return nil, err
	}
	return &controlv1.GetWorkResponse{Status: resp.GetStatus()}, nil
}

func (c *controlAPI) GetWorkResults(req *controlv1.GetWorkResultsRequest, gs grpc.ServerStreamingServer[controlv1.GetWorkResultsResponse]) error {
	wc, err := c.workClient()
	if err != nil {
		return err
	}
	up, err := wc.GetResults(gs.Context(), &workv1.GetResultsRequest{
		UnitId: req.GetUnitId(), Offset: req.GetOffset(), Signature: req.GetSignature(), Origin: requestOrigin(gs.Context()),
	})
	if err != nil {
		return err
	}
	for {
		m, err := up.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := gs.Send(&controlv1.GetWorkResultsResponse{Data: m.GetData(), Offset: m.GetOffset()}); err != nil {
			return err
		}
	}
}

func (c *controlAPI) CancelWork(ctx context.Context, req *controlv1.CancelWorkRequest) (*controlv1.CancelWorkResponse, error) {
	wc, err := c.workClient()
	if err != nil {
		return nil, err
	}
	resp, err := wc.CancelUnit(ctx, &workv1.CancelUnitRequest{
		UnitId: req.GetUnitId(), Signature: req.GetSignature(), Origin: requestOrigin(ctx),
	})
	if err != nil {
		return nil, err
	}
	return &controlv1.CancelWorkResponse{UnitId: resp.GetUnitId(), Pending: resp.GetPending()}, nil
}

func (c *controlAPI) ReleaseWork(ctx context.Context, req *controlv1.ReleaseWorkRequest) (*controlv1.ReleaseWorkResponse, error) {
	wc, err := c.workClient()
	if err != nil {
		return nil, err
	}
	resp, err := wc.ReleaseUnit(ctx, &workv1.ReleaseUnitRequest{
		UnitId: req.GetUnitId(), Force: req.GetForce(), Signature: req.GetSignature(), Origin: requestOrigin(ctx),
	})
	if err != nil {
		return nil, err
	}
	return &controlv1.ReleaseWorkResponse{UnitId: resp.GetUnitId(), Pending: resp.GetPending()}, nil
}

// GetAccess describes the caller to itself: its principal, role and the
// actions that role allows (the web view shows cancel and release buttons
// only to callers allowed to use them).
func (c *controlAPI) GetAccess(ctx context.Context, _ *controlv1.GetAccessRequest) (*controlv1.GetAccessResponse, error) {
	pr := authz.FromContext(ctx)
	role := c.policy.RoleOf(pr)
	resp := &controlv1.GetAccessResponse{Principal: pr.String(), Role: role.String()}
	for _, a := range role.Actions() {
		resp.AllowedActions = append(resp.AllowedActions, a.String())
	}
	return resp, nil
}
