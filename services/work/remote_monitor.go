package work

// Remote work, monitoring: a started remote unit is followed until the local
// copy is complete. The status loop polls the remote status on the shared
// sessions of remote_pool.go; the results loop (remote_results.go) copies
// the output.

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
	"github.com/receptor-mesh/receptor/services/work/unit"
)

// monitor copies the remote unit's status and output until the local copy
// is complete (docs/protocol.md §14.2).
func (r *remoteUnit) monitor(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// pollNow asks the status loop for an early poll: when a results
	// stream ends, the remote unit has most likely finished, and waiting
	// for the next periodic poll would add up to statusInterval to every
	// remote unit's completion.
	pollNow := make(chan struct{}, 1)
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		r.statusLoop(ctx, pollNow)
		// The remote unit is gone or monitoring failed for good; results
		// cannot progress either.
		cancel()
	}()
	r.resultsLoop(ctx, pollNow)
	cancel()
	<-statusDone
}

// statusLoop asks for the remote status once a second, or sooner when
// pollNow fires, on the shared status sessions of the remote node, until
// monitoring is over.
func (r *remoteUnit) statusLoop(ctx context.Context, pollNow <-chan struct{}) {
	delays := remoteRetry.Start()
	failures := 0
	for ctx.Err() == nil {
		ex, _, err := r.extra()
		if err != nil {
			return
		}
		line, err := r.queryStatus(ctx, ex)
		if err == nil && transientStatusError(line) {
			// The remote answered but could not say, e.g. a node of ours
			// stopping, whose control service no longer reaches its work
			// agent. Giving up here would leave the unit Running for good.
			r.a.log.Warn("remote status failed; retrying", "unit", r.e.id, "reply", strings.TrimSpace(line))
			err = errors.New(line)
		}
		if err != nil {
			if !backoff.Sleep(ctx, delays.Next()) {
				return
			}
			r.a.counts.reconnectStatus.Add(1)
			continue
		}
		delays.Reset()
		if r.applyStatus(line, &failures) {
			return
		}
		t := time.NewTimer(statusInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-pollNow:
			t.Stop()
		case <-t.C:
		}
	}
}

// maxRemoteDetail bounds the Detail of a remote status kept locally. A
// peer's reply may be as long as client.MaxPeerReplyBytes, and its Detail,
// re-encoded with JSON escapes (up to 6 bytes a character), would outgrow
// the status file limit (unit.MaxStatusSize) and make the unit unreadable.
const maxRemoteDetail = 64 << 10

// truncateUTF8 cuts s to at most n bytes at a character boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// transientStatusError reports whether a status reply is an error that
// does not say the remote unit is gone: the request is retried.
func transientStatusError(line string) bool {
	return strings.HasPrefix(line, "ERROR") && !strings.Contains(line, "unknown work unit")
}

// applyStatus copies one status reply into the local unit; true means
// monitoring is over.
func (r *remoteUnit) applyStatus(line string, failures *int) bool {
	if strings.HasPrefix(line, "ERROR") {
		// statusLoop retries the other errors (transientStatusError)
		// before they get here.
		if strings.Contains(line, "unknown work unit") {
			cur, _, _ := r.extra()
			if !cur.LocalReleased {
				r.a.setStatus(r.e, unit.Failed, "Remote work unit is gone")
			}
		} else {
			r.a.log.Warn("remote status", "unit", r.e.id, "reply", strings.TrimSpace(line))
		}
		return true
	}
	var rs struct {
		State      unit.State
		Detail     string
		StdoutSize int64
	}
	if err := json.Unmarshal([]byte(line), &rs); err != nil {
		r.a.log.Warn("remote status unparsable", "unit", r.e.id, "err", err)
		return true
	}
	if _, err := r.e.dir.Update(func(st *unit.Status) {
		st.State, st.Detail, st.StdoutSize = rs.State, truncateUTF8(rs.Detail, maxRemoteDetail), rs.StdoutSize
	}); err != nil {
		*failures++
		if *failures > 3 {
			return true
		}
	} else {
		*failures = 0
	}
	return r.localFinished()
}
