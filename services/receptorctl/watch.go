package receptorctl

// watch mesh and watch work: follow the node's ControlService.WatchMesh /
// WatchWork streams (gRPC only: the receptorctl control protocol has no
// watch) and print one line, JSON object or YAML document per event.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
)

func init() {
	addVerb("watch", newWatchMeshCmd)
	addVerb("watch", newWatchWorkCmd)
}

// errNoWatch is the failure of a watch over the control socket.
var errNoWatch = errors.New("watch needs the node's gRPC API: give --grpc ADDRESS (the receptorctl socket protocol has no watch)")

// watchOverrun is the failure of a watch the node ended because the
// client read too slowly (RESOURCE_EXHAUSTED): ExitWatchOverrun.
func watchOverrun(err error) error {
	return withCode(ExitWatchOverrun, fmt.Errorf("the node ended the watch because events arrived faster than they were read (%s); watch again for a fresh snapshot",
		status.Convert(err).Message()))
}

// watchBackend is the gRPC backend of a watch verb, or the usage failure
// of any other.
func (a *app) watchBackend(ctx context.Context) (*grpcBackend, error) {
	if a.grpcAddr == "" {
		return nil, usageError(errNoWatch)
	}
	be, _, err := a.backend(ctx)
	if err != nil {
		return nil, err
	}
	g, ok := be.(*grpcBackend)
	if !ok {
		return nil, usageError(errNoWatch)
	}
	return g, nil
}

// watchEnd is the outcome of a watch stream's error: nil when the user
// (Ctrl-C, SIGTERM) or --timeout ended it after it started, the overflow
// failure for RESOURCE_EXHAUSTED, else err.
func watchEnd(cmdCtx, ctx context.Context, err error) error {
	switch {
	case errors.Is(err, io.EOF):
		return errors.New("the node ended the watch")
	case cmdCtx.Err() != nil || ctx.Err() != nil:
		return nil
	case status.Code(err) == codes.ResourceExhausted:
		return watchOverrun(err)
	}
	return err
}

// emitProto writes one stream item of machine output: m in the JSON
// mapping of the REST gateway (lowerCamelCase names, enum names,
// RFC 3339 times), as one compact line or one YAML document.
func (a *app) emitProto(m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	v, err := decodeJSON(b)
	if err != nil {
		return err
	}
	return a.emit(v, true)
}

// textTime formats an event's time for the text output (local time, ms).
func textTime(t *timestamppb.Timestamp) string {
	if t == nil {
		t = timestamppb.Now()
	}
	return t.AsTime().Local().Format("2006-01-02T15:04:05.000Z07:00")
}

// textRTT is a round-trip time for the text output ("" when unset).
func textRTT(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	return d.AsDuration().Round(time.Microsecond).String()
}

// fields joins key=value pairs, leaving out empty values; values with
// spaces are quoted.
func fields(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		v := kv[i+1]
		if strings.ContainsAny(v, " \t\"") {
			v = fmt.Sprintf("%q", v)
		}
		parts = append(parts, kv[i]+"="+v)
	}
	return strings.Join(parts, " ")
}

func newWatchMeshCmd(a *app) *cobra.Command {
	snapshot := true
	cmd := &cobra.Command{
		Use:   "mesh",
		Short: "Follow the mesh as the node sees it: nodes, links, routes, advertisements.",
		Long: `Follow the mesh as the node sees it (ControlService.WatchMesh; needs --grpc): first a
snapshot (the node, its known nodes and every link it has had), then one line per change:
NODE_APPEARED, NODE_LEFT, LINK_UP, LINK_DOWN, LINK_RTT, ROUTE_CHANGED, ADVERTISEMENT,
ADVERTISEMENT_CANCELLED. Runs until interrupted (exit 0).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := a.ctx(cmd)
			g, err := a.watchBackend(ctx)
			if err != nil {
				return err
			}
			s, err := g.cs.WatchMesh(ctx, &controlv1.WatchMeshRequest{})
			if err != nil {
				return err
			}
			return follow(cmd, ctx, s.Recv, func(resp *controlv1.WatchMeshResponse) bool {
				return resp.GetSnapshot() != nil && !snapshot
			}, a.printMeshResponse)
		},
	}
	cmd.Flags().BoolVar(&snapshot, "snapshot", true, "Print the snapshot the watch starts from (--snapshot=false: only changes)")
	return cmd
}

// follow prints a watch's responses (those skip rejects) until it ends. A
// first Recv that fails other than by a clean end, RESOURCE_EXHAUSTED or
// the user's interrupt means the watch never started (e.g. no work agent):
// that error's class is the exit code; any other end goes to watchEnd.
func follow[T any](cmd *cobra.Command, ctx context.Context, recv func() (T, error), skip func(T) bool, print func(T) error) error {
	for first := true; ; first = false {
		resp, err := recv()
		if err != nil {
			if first && !errors.Is(err, io.EOF) && status.Code(err) != codes.ResourceExhausted && cmd.Context().Err() == nil {
				return err
			}
			return watchEnd(cmd.Context(), ctx, err)
		}
		if skip(resp) {
			continue
		}
		if err := print(resp); err != nil {
			return err
		}
	}
}

// printMeshResponse writes one WatchMesh response.
func (a *app) printMeshResponse(resp *controlv1.WatchMeshResponse) error {
	if a.machine() {
		return a.emitProto(resp)
	}
	if snap := resp.GetSnapshot(); snap != nil {
		st := snap.GetStatus()
		now := textTime(nil)
		nodes := make([]string, 0, len(st.GetRoutingTable()))
		for n := range st.GetRoutingTable() {
			nodes = append(nodes, n)
		}
		a.println(fmt.Sprintf("%s SNAPSHOT node=%s reachable=%s", now, st.GetNodeId(), strings.Join(slices.Sorted(slices.Values(nodes)), ",")))
		for _, l := range snap.GetLinks() {
			state := "down"
			if l.GetUp() {
				state = "up"
			}
			a.println(fmt.Sprintf("%s SNAPSHOT_LINK %s", now, fields("peer", l.GetPeer(), "backend", l.GetBackendKind(),
				"state", state, "cost", str(floatNumber(l.GetCost())), "rtt", textRTT(l.GetRtt()))))
		}
		return nil
	}
	e := resp.GetEvent()
	kind := strings.TrimPrefix(e.GetKind().String(), "MESH_EVENT_KIND_")
	var f string
	switch e.GetKind() {
	case controlv1.MeshEventKind_MESH_EVENT_KIND_NODE_APPEARED, controlv1.MeshEventKind_MESH_EVENT_KIND_NODE_LEFT:
		f = fields("node", e.GetNodeId())
	case controlv1.MeshEventKind_MESH_EVENT_KIND_LINK_UP, controlv1.MeshEventKind_MESH_EVENT_KIND_LINK_DOWN,
		controlv1.MeshEventKind_MESH_EVENT_KIND_LINK_RTT:
		f = fields("peer", e.GetPeer(), "backend", e.GetBackendKind(), "cost", str(floatNumber(e.GetCost())),
			"rtt", textRTT(e.GetRtt()), "reason", e.GetReason())
	case controlv1.MeshEventKind_MESH_EVENT_KIND_ROUTE_CHANGED:
		f = fields("node", e.GetNodeId(), "next_hop", e.GetNextHop(), "previous_next_hop", e.GetPreviousNextHop())
	case controlv1.MeshEventKind_MESH_EVENT_KIND_ADVERTISEMENT, controlv1.MeshEventKind_MESH_EVENT_KIND_ADVERTISEMENT_CANCELLED:
		ad := e.GetAdvertisement()
		var wt []string
		for _, c := range ad.GetWorkCommands() {
			wt = append(wt, c.GetWorkType())
		}
		f = fields("node", e.GetNodeId(), "service", ad.GetService(), "worktypes", strings.Join(wt, ","))
	default:
		f = fields("node", e.GetNodeId(), "peer", e.GetPeer())
	}
	a.println(strings.TrimRight(fmt.Sprintf("%s %s %s", textTime(e.GetTime()), kind, f), " "))
	return nil
}

func newWatchWorkCmd(a *app) *cobra.Command {
	snapshot := true
	cmd := &cobra.Command{
		Use:   "work",
		Short: "Follow the node's units of work: created, changed, released.",
		Long: `Follow the node's units of work (ControlService.WatchWork; needs --grpc): every existing
unit (SNAPSHOT), SNAPSHOT_END, then one line per change: CREATED, CHANGED (state, detail or
output size) and RELEASED. Runs until interrupted (exit 0).`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := a.ctx(cmd)
			g, err := a.watchBackend(ctx)
			if err != nil {
				return err
			}
			s, err := g.cs.WatchWork(ctx, &controlv1.WatchWorkRequest{})
			if err != nil {
				return err
			}
			return follow(cmd, ctx, s.Recv, func(resp *controlv1.WatchWorkResponse) bool {
				k := resp.GetKind()
				return !snapshot && (k == workv1.UnitEventKind_UNIT_EVENT_KIND_SNAPSHOT || k == workv1.UnitEventKind_UNIT_EVENT_KIND_SNAPSHOT_END)
			}, a.printWorkResponse)
		},
	}
	cmd.Flags().BoolVar(&snapshot, "snapshot", true, "Print the existing units the watch starts with (--snapshot=false: only changes)")
	return cmd
}

// printWorkResponse writes one WatchWork response.
func (a *app) printWorkResponse(resp *controlv1.WatchWorkResponse) error {
	if a.machine() {
		return a.emitProto(resp)
	}
	kind := strings.TrimPrefix(resp.GetKind().String(), "UNIT_EVENT_KIND_")
	line := fmt.Sprintf("%s %s", textTime(resp.GetTime()), kind)
	if resp.GetUnitId() != "" {
		line += " " + resp.GetUnitId()
	}
	if st := resp.GetStatus(); st != nil {
		line += " " + fields("state", st.GetStateName(), "worktype", st.GetWorkType(), "node", st.GetNode(),
			"stdout", fmt.Sprint(st.GetStdoutSize()), "detail", st.GetDetail())
	}
	a.println(line)
	return nil
}
