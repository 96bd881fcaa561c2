package work

// Remote work, results: the remote unit's stdout is streamed from the byte
// after the last one held here and appended to the local stdout, again
// after every interruption.

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

func (r *remoteUnit) resultsLoop(ctx context.Context, pollNow chan<- struct{}) {
	delays := remoteRetry.Start()
	for ctx.Err() == nil {
		if r.localFinished() {
			return
		}
		ex, st, err := r.extra()
		if err != nil {
			return
		}
		if st.State == unit.Canceled || (st.State.Complete() && r.e.dir.StdoutSize() >= st.StdoutSize) {
			// Nothing more to fetch now; wait for the status to move.
			if !r.waitStatusMove(ctx, st) {
				return
			}
			continue
		}
		n, err := r.fetchResults(ctx, ex)
		if err != nil {
			if !backoff.Sleep(ctx, delays.Next()) {
				return
			}
			r.a.counts.reconnectResults.Add(1)
			continue
		}
		delays.Reset()
		select {
		case pollNow <- struct{}{}:
		default: // a poll is already pending
		}
		if n == 0 {
			// The remote ended a stream without new bytes (it is complete
			// but our copy of its status is behind, e.g. while the status
			// connection recovers from a path change); wait for the
			// status to move rather than asking again at once.
			if !r.waitStatusMove(ctx, st) {
				return
			}
		}
	}
}

// waitStatusMove waits until the unit's State or StdoutSize differs from
// before, or the safety interval passes; false when ctx ended. Change
// notifications alone are not enough: they also fire for our own file
// activity (closing stdout after an empty fetch is an inotify
// IN_CLOSE_WRITE), which would otherwise re-ask the remote in a tight loop.
func (r *remoteUnit) waitStatusMove(ctx context.Context, before unit.Status) bool {
	deadline := safetyPoll()
	for {
		changed := r.e.changes()
		st, err := r.e.dir.ReadStatus()
		if err != nil || st.State != before.State || st.StdoutSize != before.StdoutSize {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return true
		case <-changed:
		}
	}
}

// fetchResults streams the remote stdout from the local size onwards and
// appends it to the local stdout, until the remote ends the stream.
func (r *remoteUnit) fetchResults(ctx context.Context, ex remoteExtra) (int64, error) {
	out, err := os.OpenFile(r.e.dir.Path(unit.StdoutFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("opening stdout of unit %s: %w", r.e.id, err)
	}
	defer out.Close()
	fi, err := out.Stat()
	if err != nil {
		return 0, err
	}
	c, err := r.dial(ctx, ex)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	sig, err := r.signature(ex)
	if err != nil {
		return 0, err
	}
	stream, err := c.ResultsFrom(ctx, ex.RemoteUnitID, fi.Size(), sig)
	if err != nil {
		return 0, err
	}
	return io.Copy(out, stream)
}
