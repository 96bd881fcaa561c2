package receptorctl

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/status"

	"github.com/receptor-mesh/receptor/services/control/client"
	"github.com/receptor-mesh/receptor/services/internal/backoff"
)

func init() { addVerb("work", newWorkResultsCmd) }

// resultsFlags tune work results (and submit --follow).
type resultsFlags struct {
	resumeFor time.Duration // how long to keep trying to resume a broken stream
	progress  string        // auto, always, never
}

func (rf *resultsFlags) register(f *pflag.FlagSet) {
	f.DurationVar(&rf.resumeFor, "resume-for", time.Minute,
		"When the results stream breaks, keep reconnecting and resuming from the last byte for this long (0: never)")
	f.StringVar(&rf.progress, "progress", "auto",
		"Progress bar on stderr: auto (when stderr is a terminal and stdout is not), always or never")
}

func newWorkResultsCmd(a *app) *cobra.Command {
	var rf resultsFlags
	cmd := &cobra.Command{
		Use:               "results UNIT_ID",
		Short:             "Get results for a previously or currently running unit of work.",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeUnits,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := a.ctx(cmd)
			be, _, err := a.backend(ctx)
			if err != nil {
				return err
			}
			return a.results(ctx, be, args[0], &rf)
		},
	}
	rf.register(cmd.Flags())
	return cmd
}

// resultsRetry paces the reconnections of a broken results stream.
var resultsRetry = backoff.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second, Factor: 2, Jitter: 0.1}

// results streams a unit's output to stdout, as receptorctl does, and then
// checks its final state (Failed: exit 1 with "Remote unit failed"). A
// stream that ends before the unit is complete and all its output is in
// (the connection broke, the node restarted) is resumed from the last byte
// received, for up to --resume-for. Machine output: one item per chunk
// ({"unitid","offset","data"}, data as text or "data_base64"), then the
// final status ({"unitid","status"}).
func (a *app) results(ctx context.Context, be backend, unitID string, rf *resultsFlags) error {
	var bar *progressBar
	if a.showProgress(rf.progress) {
		if st, err := be.WorkStatus(ctx, unitID); err == nil {
			bar = newProgressBar(a.stdio.Err, unitID, num(st["StdoutSize"]))
		}
	}
	var offset int64
	var deadline time.Time
	retry := resultsRetry.Start()
	for {
		n, streamErr := a.streamResults(ctx, be, unitID, offset, bar)
		offset += n
		if err := ctx.Err(); err != nil {
			bar.done()
			return err
		}
		if n > 0 {
			deadline = time.Time{}
			retry.Reset()
		}
		if streamErr != nil && offset == 0 && n == 0 && !retryable(streamErr) {
			// The node refused the request itself (unknown unit, ...).
			return withCode(exitCode(streamErr, ExitError), fmt.Errorf("Failed to get results: %s", errorText(streamErr))) //nolint:staticcheck // receptorctl's text
		}
		st, statusErr := be.WorkStatus(ctx, unitID)
		if statusErr == nil && num(st["State"]) >= 2 && offset >= num(st["StdoutSize"]) {
			bar.done()
			return a.finishResults(unitID, st)
		}
		if statusErr != nil && !retryable(statusErr) {
			bar.done()
			return statusErr
		}
		// Not complete, or the node is unreachable: resume from offset.
		if rf.resumeFor <= 0 {
			bar.done()
			return firstErr(streamErr, statusErr, fmt.Errorf("results stream of %s ended at byte %d before the unit completed", unitID, offset))
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(rf.resumeFor)
		}
		if time.Now().After(deadline) {
			bar.done()
			return withCode(ExitUnreachable, fmt.Errorf("results of %s: gave up resuming at byte %d after %s: %w",
				unitID, offset, rf.resumeFor, firstErr(streamErr, statusErr, errors.New("stream ended early"))))
		}
		if !backoff.Sleep(ctx, retry.Next()) {
			return ctx.Err()
		}
		_ = be.Close() // a fresh session or connection for the next try
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// retryable reports whether err may go away by reconnecting: the node or
// the connection to it is unavailable, or the stream broke (a transport
// error that is no reply of the node's).
func retryable(err error) bool {
	switch exitCode(err, 0) {
	case ExitUnreachable, ExitTimeout:
		return true
	case 0:
		var re *client.RemoteError
		if errors.As(err, &re) {
			return false
		}
		_, isStatus := status.FromError(err)
		return !isStatus
	}
	return false
}

// streamResults copies one results stream from offset; it returns the
// bytes written.
func (a *app) streamResults(ctx context.Context, be backend, unitID string, offset int64, bar *progressBar) (int64, error) {
	r, err := be.Results(ctx, unitID, offset)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	// The stream's reads do not watch ctx: closing the stream ends them.
	stop := context.AfterFunc(ctx, func() { _ = r.Close() })
	defer stop()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			if err := a.writeChunk(unitID, offset+n, buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
			bar.set(offset + n)
		}
		if errors.Is(rerr, io.EOF) {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

func (a *app) writeChunk(unitID string, offset int64, b []byte) error {
	if !a.machine() {
		_, err := a.stdio.Out.Write(b)
		return err
	}
	item := map[string]any{"unitid": unitID, "offset": offset}
	if utf8.Valid(b) {
		item["data"] = string(b)
	} else {
		item["data_base64"] = base64.StdEncoding.EncodeToString(b)
	}
	return a.emit(item, true)
}

func (a *app) finishResults(unitID string, st map[string]any) error {
	if a.machine() {
		if err := a.emit(map[string]any{"unitid": unitID, "status": st}, true); err != nil {
			return err
		}
	}
	if num(st["State"]) == 3 { // Failed
		detail := "Unknown"
		if d, ok := st["Detail"]; ok {
			detail = str(d)
		}
		if !a.machine() {
			fmt.Fprintf(a.stdio.Err, "ERROR: Remote unit failed: %s\n\n", detail)
		}
		return &exitError{code: ExitError, err: fmt.Errorf("Remote unit failed: %s", detail), quiet: !a.machine()} //nolint:staticcheck // receptorctl's text
	}
	return nil
}
