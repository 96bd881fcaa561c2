package workapi

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/work"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// watchAll serves WatchUnitStatus with all_units: every unit held (SNAPSHOT),
// SNAPSHOT_END, then CREATED, CHANGED and RELEASED events from the agent's
// watch of all units (work.UnitWatch). sent keeps the last report sent
// per unit, so that a change that leaves the report as it was is not sent.
func (s *Server) watchAll(stream grpc.ServerStreamingServer[workv1.WatchUnitStatusResponse]) error {
	ctx := stream.Context()
	w := s.agent.WatchAll()
	defer w.Close()
	units, err := s.agent.List("")
	if err != nil {
		return toStatus(err)
	}
	sent := make(map[string][]byte, len(units))
	ids := make([]string, 0, len(units))
	for id := range units {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	send := func(kind workv1.UnitEventKind, id string, r *unit.Report) error {
		m := &workv1.WatchUnitStatusResponse{Kind: kind, UnitId: id, Time: timestamppb.New(time.Now())}
		if r != nil {
			st, err := s.UnitStatus(id, *r)
			if err != nil {
				return toStatus(err)
			}
			m.Status = st
		}
		return stream.Send(m)
	}
	for _, id := range ids {
		r := units[id]
		sent[id], _ = json.Marshal(r)
		if err := send(workv1.UnitEventKind_UNIT_EVENT_KIND_SNAPSHOT, id, &r); err != nil {
			return err
		}
	}
	if err := send(workv1.UnitEventKind_UNIT_EVENT_KIND_SNAPSHOT_END, "", nil); err != nil {
		return err
	}
	for {
		changed, err := w.Next(ctx)
		if err != nil {
			if errors.Is(err, work.ErrClosed) {
				return apierr.WorkAgentClosing()
			}
			return apierr.ContextEnded(context.Cause(ctx))
		}
		for _, id := range changed {
			r, ok := s.agent.Current(id)
			last, known := sent[id]
			switch {
			case !ok && known:
				delete(sent, id)
				err = send(workv1.UnitEventKind_UNIT_EVENT_KIND_RELEASED, id, nil)
			case !ok:
				continue
			default:
				b, _ := json.Marshal(r)
				kind := workv1.UnitEventKind_UNIT_EVENT_KIND_CHANGED
				if !known {
					kind = workv1.UnitEventKind_UNIT_EVENT_KIND_CREATED
				} else if string(b) == string(last) {
					continue
				}
				sent[id] = b
				err = send(kind, id, &r)
			}
			if err != nil {
				return err
			}
		}
	}
}
