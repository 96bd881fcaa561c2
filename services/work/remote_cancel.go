package work

// Remote work, cancel and release: sent to the remote node at once, or
// retried in the background while it cannot be reached.

import (
	"context"
	"errors"
	"strings"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// cancelRemote implements cancel, release and force-release of a remote
// unit (docs/protocol.md §14.2).
func (a *Agent) cancelRemote(ctx context.Context, e *entry, release, force bool) (CancelResult, error) {
	r := e.remote
	if err := r.updateExtra(func(x *remoteExtra) {
		x.LocalCancelled = true
		x.LocalReleased = x.LocalReleased || release
	}); err != nil && !force {
		return CancelResult{}, err
	}
	ex, _, err := r.extra()
	if err != nil || !ex.RemoteStarted {
		r.stop()
		if !release {
			_, _ = e.dir.Update(func(st *unit.Status) {
				st.State, st.Detail, st.StdoutSize = unit.Failed, "Locally Cancelled", 0
			})
		}
		e.notify()
		return CancelResult{}, nil
	}
	err = r.sendCancel(ctx, ex, release)
	switch {
	case force:
		r.stop()
		return CancelResult{}, nil
	case err == nil:
		if release {
			r.stop()
		} else {
			r.background(r.monitor)
		}
		return CancelResult{}, nil
	case isConnError(err):
		r.background(func(ctx context.Context) { r.retryCancel(ctx, release) })
		return CancelResult{Pending: true}, nil
	default:
		return CancelResult{}, newError(ErrRemote, err.Error(), err)
	}
}

// sendCancel makes one attempt to send cancel or release to the remote.
func (r *remoteUnit) sendCancel(ctx context.Context, ex remoteExtra, release bool) error {
	sig, err := r.signature(ex)
	if err != nil {
		return err
	}
	line, err := r.onShared(ctx, ex, func(ctx context.Context, c *peerConn) (string, error) {
		return c.CancelWork(ctx, ex.RemoteUnitID, release, sig)
	})
	if err != nil {
		if isConnError(err) {
			return err // no session
		}
		return &connError{err} // the session failed: the remote may not have the request
	}
	if strings.HasPrefix(line, "ERROR") {
		// Upstream keeps the remote line after its first 6 bytes, leading
		// space and newline included; AWX matches the double space.
		rest := ""
		if len(line) > 6 {
			rest = line[6:]
		}
		return errors.New("error cancelling remote unit: " + rest)
	}
	return nil
}

// retryCancel resends a pending cancel or release until the remote takes
// it; a released unit is then deleted.
func (r *remoteUnit) retryCancel(ctx context.Context, release bool) {
	delays := remoteRetry.Start()
	for {
		if !backoff.Sleep(ctx, delays.Next()) {
			return
		}
		ex, _, err := r.extra()
		if err != nil {
			return
		}
		err = r.sendCancel(ctx, ex, release)
		if isConnError(err) {
			continue
		}
		if err != nil {
			r.a.log.Warn("remote cancel failed", "unit", r.e.id, "err", err)
		}
		if release {
			// Deleting runs outside this goroutine: remove waits for the
			// background activity, which is us.
			r.a.bg.Add(1)
			go func() {
				defer r.a.bg.Done()
				r.e.op.Lock()
				defer r.e.op.Unlock()
				r.stop()
				_ = r.a.remove(r.a.ctx, r.e, true)
			}()
			return
		}
		r.monitor(ctx)
		return
	}
}
