package work

import (
	"context"
	"slices"
	"sync"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// UnitWatch follows every unit of the agent: which units changed since
// the last Next. It is fed by the same change notifications as Watch
// (inotify on each unit's directory, and the agent's own writes), plus
// registration and release. It holds one mark per changed unit, so a slow
// reader merges changes instead of queueing them.
type UnitWatch struct {
	a     *Agent
	mu    sync.Mutex
	dirty map[string]struct{}
	wake  chan struct{}
}

// WatchAll starts a watch of every unit. Call it before reading the
// units' current state (List): no change after WatchAll returns is missed.
func (a *Agent) WatchAll() *UnitWatch {
	w := &UnitWatch{a: a, dirty: map[string]struct{}{}, wake: make(chan struct{}, 1)}
	a.watchMu.Lock()
	a.watchers[w] = struct{}{}
	a.watchMu.Unlock()
	return w
}

// Close ends the watch.
func (w *UnitWatch) Close() {
	w.a.watchMu.Lock()
	delete(w.a.watchers, w)
	w.a.watchMu.Unlock()
}

// Next waits for changed units and returns their IDs, sorted; it returns
// ctx's error, or ErrClosed once the agent is closed.
func (w *UnitWatch) Next(ctx context.Context) ([]string, error) {
	for {
		w.mu.Lock()
		if len(w.dirty) > 0 {
			ids := make([]string, 0, len(w.dirty))
			for id := range w.dirty {
				ids = append(ids, id)
			}
			clear(w.dirty)
			w.mu.Unlock()
			slices.Sort(ids)
			return ids, nil
		}
		w.mu.Unlock()
		select {
		case <-w.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-w.a.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// touched marks unit id changed for every watch.
func (a *Agent) touched(id string) {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	for w := range a.watchers {
		w.mu.Lock()
		w.dirty[id] = struct{}{}
		w.mu.Unlock()
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Current returns the status of a unit the agent holds, as Status does,
// without looking for it on disk; false when the unit is not (or no
// longer) held.
func (a *Agent) Current(id string) (unit.Report, bool) {
	e := a.lookupLoaded(id)
	if e == nil {
		return unit.Report{}, false
	}
	r, err := a.report(e)
	if err != nil {
		return unit.Report{}, false
	}
	return r, true
}
