package router

import (
	"context"
	"fmt"
	"sync"
	"time"

	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// reconcileTimeout bounds the question to the work agent about which of a
// principal's units have finished.
const reconcileTimeout = 10 * time.Second

// quota enforces the per-principal limits of authz.Policy.Limits on work
// submitted through this router, whatever the face: concurrent unfinished
// units, and stdin bytes per submission.
//
// The router counts the units each principal created through it. When a
// principal reaches its limit, one ListUnits call to the work agent drops
// the units that have since finished or been released; only if the count
// is still at the limit is the submission refused.
type quota struct {
	policy *authz.Policy
	work   workv1.WorkServiceClient

	mu    sync.Mutex
	units map[authz.Principal]*principalUnits
}

type principalUnits struct {
	ids      map[string]struct{}
	reserved int // admitted submissions that have not created their unit yet
}

func newQuota(policy *authz.Policy, work workv1.WorkServiceClient) *quota {
	return &quota{policy: policy, work: work, units: map[authz.Principal]*principalUnits{}}
}

// errTooManyUnits is a submission over the principal's unit limit.
func errTooManyUnits(pr authz.Principal, limit int) error {
	return apierr.LimitReached(fmt.Sprintf(
		"%s has %d unfinished work units, its limit; release finished units or ask for a higher maxunits", pr, limit))
}

// errStdinTooLarge is a submission whose stdin passed the principal's limit.
func errStdinTooLarge(pr authz.Principal, limit int64) error {
	return apierr.LimitReached(fmt.Sprintf("work submit input from %s exceeds its limit of %d bytes (maxstdin)", pr, limit))
}

// admission is one submission's slot under the quota.
type admission struct {
	q        *quota
	pr       authz.Principal
	maxStdin int64
	stdin    int64
	held     bool
}

// admit reserves a unit slot for a submission by the principal in ctx.
// Call created with the unit ID once the unit exists, and done in every
// case (it returns an unused reservation).
func (q *quota) admit(ctx context.Context) (*admission, error) {
	pr := authz.FromContext(ctx)
	lim := q.policy.Limits(pr)
	a := &admission{q: q, pr: pr, maxStdin: lim.MaxStdin}
	if lim.MaxUnits == 0 {
		return a, nil
	}
	if !q.tryReserve(pr, lim.MaxUnits) {
		q.reconcile(ctx, pr)
		if !q.tryReserve(pr, lim.MaxUnits) {
			return nil, errTooManyUnits(pr, lim.MaxUnits)
		}
	}
	a.held = true
	return a, nil
}

func (q *quota) tryReserve(pr authz.Principal, limit int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	u := q.units[pr]
	if u == nil {
		u = &principalUnits{ids: map[string]struct{}{}}
		q.units[pr] = u
	}
	if len(u.ids)+u.reserved >= limit {
		return false
	}
	u.reserved++
	return true
}

// reconcile forgets the principal's units that the work agent reports as
// finished, or no longer has.
func (q *quota) reconcile(ctx context.Context, pr authz.Principal) {
	if q.work == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, reconcileTimeout)
	defer cancel()
	resp, err := q.work.ListUnits(ctx, &workv1.ListUnitsRequest{})
	if err != nil {
		return
	}
	active := make(map[string]bool, len(resp.GetUnits()))
	for _, u := range resp.GetUnits() {
		switch u.GetState() {
		case workv1.UnitState_UNIT_STATE_PENDING, workv1.UnitState_UNIT_STATE_RUNNING:
			active[u.GetUnitId()] = true
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if u := q.units[pr]; u != nil {
		for id := range u.ids {
			if !active[id] {
				delete(u.ids, id)
			}
		}
	}
}

// created turns the reservation into the unit's slot.
func (a *admission) created(unitID string) {
	if !a.held {
		return
	}
	a.q.mu.Lock()
	defer a.q.mu.Unlock()
	u := a.q.units[a.pr]
	u.reserved--
	u.ids[unitID] = struct{}{}
	a.held = false
}

// done returns a reservation that never became a unit.
func (a *admission) done() {
	if a == nil || !a.held {
		return
	}
	a.q.mu.Lock()
	defer a.q.mu.Unlock()
	u := a.q.units[a.pr]
	u.reserved--
	if u.reserved == 0 && len(u.ids) == 0 {
		delete(a.q.units, a.pr)
	}
	a.held = false
}

// addStdin counts n more bytes of input; an error means the submission is
// over the principal's limit and must be abandoned.
func (a *admission) addStdin(n int) error {
	a.stdin += int64(n)
	if a.maxStdin > 0 && a.stdin > a.maxStdin {
		return errStdinTooLarge(a.pr, a.maxStdin)
	}
	return nil
}
