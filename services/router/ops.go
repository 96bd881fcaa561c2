package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"time"

	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/control"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/buildinfo"
	"github.com/receptor-mesh/receptor/services/internal/coalesce"
	"github.com/receptor-mesh/receptor/services/internal/hostmem"
	"github.com/receptor-mesh/receptor/services/mesh"
	"github.com/receptor-mesh/receptor/services/mesh/stream"
	"github.com/receptor-mesh/receptor/services/tlsconf"
)

// stdinChunk is the size of the stdin messages sent to the work agent
// (the WorkService accepts up to 1 MiB per message).
const stdinChunk = 256 << 10

// firstStdinRead is the size of the first stdin read of a submit.
const firstStdinRead = 16 << 10

// ops is the node's behaviour behind every face: the receptorctl protocol
// (control.Ops), and the gRPC ControlService, which converts the same
// results to protobuf. Work goes to the work agent's WorkService.
type ops struct {
	node   *mesh.Node
	tls    *tlsconf.Store
	work   workv1.WorkServiceClient // nil: no work agent attached
	reload func(ctx context.Context) error
	quota  *quota
	// lists builds one `work list` reply for all concurrent sessions
	// (WorkListReply).
	lists coalesce.Group[[]byte]
}

var _ control.Ops = (*ops)(nil)

func (o *ops) NodeID() string { return o.node.NodeID() }

// target maps receptorctl's "localhost" (any case) to the local node.
func (o *ops) target(node string) string {
	if strings.EqualFold(node, "localhost") {
		return o.node.NodeID()
	}
	return node
}

func (o *ops) Status(ctx context.Context) (control.Status, error) {
	st := o.node.Status()
	out := control.Status{
		NodeID:               st.NodeID,
		Connections:          make([]control.Connection, 0, len(st.Connections)),
		KnownConnectionCosts: st.KnownConnectionCosts,
		RoutingTable:         st.RoutingTable,
		Advertisements:       make([]control.Advertisement, 0, len(st.Advertisements)),
		SystemCPUCount:       runtime.NumCPU(),
		SystemMemoryMiB:      int(hostmem.TotalMiB()),
		Version:              buildinfo.Get().Version,
	}
	for _, c := range st.Connections {
		out.Connections = append(out.Connections, control.Connection{NodeID: c.NodeID, Cost: c.Cost})
	}
	for _, a := range st.Advertisements {
		ad := control.Advertisement{
			NodeID: a.NodeID, Service: a.Service, Time: a.Time, ConnType: uint8(a.ConnType), Tags: a.Tags,
		}
		for _, wc := range a.WorkCommands {
			ad.WorkCommands = append(ad.WorkCommands, control.WorkCommand{WorkType: wc.WorkType, Secure: wc.Secure})
		}
		out.Advertisements = append(out.Advertisements, ad)
	}
	return out, nil
}

func (o *ops) Ping(ctx context.Context, node string) control.PingResult {
	res, err := o.node.Ping(ctx, o.target(node))
	if err != nil {
		return control.PingResult{From: res.From, Error: err.Error()}
	}
	return control.PingResult{From: res.From, Time: res.RTT}
}

func (o *ops) Traceroute(ctx context.Context, node string) ([]control.TraceHop, error) {
	var hops []control.TraceHop
	for h := range o.node.Traceroute(ctx, o.target(node)) {
		hop := control.TraceHop{From: h.From, Time: h.RTT}
		if h.Err != nil {
			hop.Error = h.Err.Error()
		}
		hops = append(hops, hop)
	}
	return hops, nil
}

func (o *ops) Connect(ctx context.Context, node, service, tlsClient string) (net.Conn, error) {
	node = o.target(node)
	var opts stream.DialOptions
	if tlsClient != "" {
		cfg, err := o.tls.ClientForNode(tlsClient, node)
		if err != nil {
			return nil, err
		}
		opts.TLS = cfg
	}
	return stream.Dial(ctx, o.node, node, service, opts)
}

func (o *ops) Reload(ctx context.Context) error { return o.reload(ctx) }

// workClient returns the work agent's client or the catalogue's error.
func (o *ops) workClient() (workv1.WorkServiceClient, error) {
	if o.work == nil {
		return nil, textError(apierr.NoWorkAgent())
	}
	return o.work, nil
}

// textError turns a gRPC status into an error whose text is the upstream
// message, which the receptorctl protocol prints after "ERROR: ".
func textError(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(apierr.Text(err))
}

func origin(sig control.Signature) workv1.RequestOrigin {
	if sig.Trusted {
		return workv1.RequestOrigin_REQUEST_ORIGIN_LOCAL
	}
	return workv1.RequestOrigin_REQUEST_ORIGIN_REMOTE
}

func (o *ops) WorkSubmit(ctx context.Context, req control.WorkSubmitRequest, created func(string) error, stdin io.Reader) (control.WorkSubmitResult, error) {
	wc, err := o.workClient()
	if err != nil {
		return control.WorkSubmitResult{}, err
	}
	adm, err := o.quota.admit(ctx)
	if err != nil {
		return control.WorkSubmitResult{}, textError(err)
	}
	defer adm.done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := wc.Submit(ctx)
	if err != nil {
		return control.WorkSubmitResult{}, textError(err)
	}
	err = st.Send(&workv1.SubmitRequest{
		Msg: &workv1.SubmitRequest_Params{Params: &workv1.SubmitParams{
			WorkType: req.WorkType, Node: o.target(req.Node), Params: req.Params, TlsClient: req.TLSClient,
			Ttl: req.TTL, SignWork: req.SignWork, Signature: req.Signature.JWT,
		}},
		Origin: origin(req.Signature),
	})
	if err != nil {
		return control.WorkSubmitResult{}, recvError(st)
	}
	first, err := st.Recv()
	if err != nil {
		return control.WorkSubmitResult{}, textError(err)
	}
	unitID := first.GetCreated().GetUnitId()
	if unitID == "" {
		return control.WorkSubmitResult{}, errors.New("work agent did not allocate a unit")
	}
	adm.created(unitID)
	if err := created(unitID); err != nil {
		return control.WorkSubmitResult{}, err
	}
	// Most stdins are small: reads start with a small buffer and move to
	// stdinChunk ones once a read fills it. A 256 KiB buffer per submit was
	// 2.7 % of the all-in-one's CPU in a burst of 200 small units (perf),
	// in zeroing it and in the collections its garbage caused.
	buf := make([]byte, firstStdinRead)
	for {
		n, rerr := stdin.Read(buf)
		if n > 0 {
			if err := adm.addStdin(n); err != nil {
				// The unit exists; cancelling the stream makes the agent
				// mark it failed rather than run it on partial input.
				cancel()
				return control.WorkSubmitResult{}, textError(err)
			}
			if err := st.Send(&workv1.SubmitRequest{Msg: &workv1.SubmitRequest_Stdin{Stdin: buf[:n]}}); err != nil {
				return control.WorkSubmitResult{}, recvError(st)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return control.WorkSubmitResult{}, fmt.Errorf("error reading input data: %w", rerr)
		}
		if n == len(buf) && len(buf) < stdinChunk {
			buf = make([]byte, stdinChunk) // the last message was sent: buf is free
		}
	}
	if err := st.CloseSend(); err != nil {
		return control.WorkSubmitResult{}, textError(err)
	}
	last, err := st.Recv()
	if err != nil {
		return control.WorkSubmitResult{}, textError(err)
	}
	res := last.GetResult()
	if res == nil {
		return control.WorkSubmitResult{}, errors.New("work agent ended the submission without a result")
	}
	return control.WorkSubmitResult{UnitID: unitID, Pending: !res.GetStarted()}, nil
}

// recvError is submitStatus as protocol text.
func recvError(st workv1.WorkService_SubmitClient) error { return textError(submitStatus(st)) }

func (o *ops) WorkList(ctx context.Context) (map[string]control.WorkStatus, error) {
	wc, err := o.workClient()
	if err != nil {
		return nil, err
	}
	resp, err := wc.ListUnits(ctx, &workv1.ListUnitsRequest{})
	if err != nil {
		return nil, textError(err)
	}
	out := make(map[string]control.WorkStatus, len(resp.GetUnits()))
	for _, u := range resp.GetUnits() {
		out[u.GetUnitId()] = workStatus(u)
	}
	return out, nil
}

// listTimeout bounds one shared building of the unit list (it serves
// every waiting caller, so no caller's context bounds it).
const listTimeout = time.Minute

// WorkListReply renders the full `work list` reply (control.WorkListRenderer).
// With a thousand units the reply is hundreds of KiB and building it
// (the agent reads every status file, then the reply is decoded and
// re-encoded here) takes a few MiB: one building serves all the sessions
// waiting for it, so memory does not grow with the number of concurrent
// requests, and each still gets a list built after its request arrived.
func (o *ops) WorkListReply(ctx context.Context) ([]byte, error) {
	if _, err := o.workClient(); err != nil {
		return nil, err
	}
	return o.lists.Do(ctx, func() ([]byte, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listTimeout)
		defer cancel()
		list, err := o.WorkList(lctx)
		if err != nil {
			return nil, err
		}
		return control.WorkListReply(list)
	})
}

func (o *ops) WorkStatus(ctx context.Context, unitID string) (control.WorkStatus, error) {
	wc, err := o.workClient()
	if err != nil {
		return control.WorkStatus{}, err
	}
	resp, err := wc.GetUnitStatus(ctx, &workv1.GetUnitStatusRequest{UnitId: unitID})
	if err != nil {
		return control.WorkStatus{}, textError(err)
	}
	return workStatus(resp.GetStatus()), nil
}

// workStatus converts the agent's status to upstream's status object.
func workStatus(u *workv1.UnitStatus) control.WorkStatus {
	ws := control.WorkStatus{
		Detail: u.GetDetail(), State: int(u.GetStateCode()), StateName: u.GetStateName(),
		StdoutSize: u.GetStdoutSize(), WorkType: u.GetWorkType(),
	}
	if v := u.GetExtraData(); v != nil {
		if b, err := extraDataJSON(v); err == nil {
			ws.ExtraData = b
		}
	}
	return ws
}

func (o *ops) WorkResults(ctx context.Context, unitID string, offset int64, sig control.Signature) (io.ReadCloser, error) {
	wc, err := o.workClient()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	st, err := wc.GetResults(ctx, &workv1.GetResultsRequest{
		UnitId: unitID, Offset: offset, Signature: sig.JWT, Origin: origin(sig),
	})
	if err != nil {
		cancel()
		return nil, textError(err)
	}
	// The first response carries no data: it says the unit was found and
	// the signature rule passed.
	if _, err := st.Recv(); err != nil {
		cancel()
		return nil, textError(err)
	}
	return &resultsReader{recv: st.Recv, cancel: cancel}, nil
}

// resultsReader reads a GetResults stream as bytes.
type resultsReader struct {
	recv   func() (*workv1.GetResultsResponse, error)
	cancel context.CancelFunc
	buf    []byte
}

func (r *resultsReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		msg, err := r.recv()
		if err == io.EOF {
			return 0, io.EOF
		}
		if err != nil {
			return 0, textError(err)
		}
		r.buf = msg.GetData()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *resultsReader) Close() error {
	r.cancel()
	return nil
}

func (o *ops) WorkCancel(ctx context.Context, unitID string, sig control.Signature) (bool, error) {
	wc, err := o.workClient()
	if err != nil {
		return false, err
	}
	resp, err := wc.CancelUnit(ctx, &workv1.CancelUnitRequest{UnitId: unitID, Signature: sig.JWT, Origin: origin(sig)})
	if err != nil {
		return false, textError(err)
	}
	return resp.GetPending(), nil
}

func (o *ops) WorkRelease(ctx context.Context, unitID string, force bool, sig control.Signature) (bool, error) {
	wc, err := o.workClient()
	if err != nil {
		return false, err
	}
	resp, err := wc.ReleaseUnit(ctx, &workv1.ReleaseUnitRequest{
		UnitId: unitID, Force: force, Signature: sig.JWT, Origin: origin(sig),
	})
	if err != nil {
		return false, textError(err)
	}
	return resp.GetPending(), nil
}
