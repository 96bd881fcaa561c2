package backends

import (
	"context"
	"log/slog"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
)

// Backoff is the redial schedule of dialer backends (docs/protocol.md §3.1): wait
// Initial after a session or a failed dial, grow by Factor up to Max, and go
// back to Initial after every successful dial. Jitter spreads each wait by
// ±Jitter (a fraction) so that many dialers do not reconnect in lockstep;
// upstream has no jitter. Zero fields take the defaults.
type Backoff struct {
	Initial time.Duration // default 5 s
	Max     time.Duration // default 20 s
	Factor  float64       // default 1.5
	Jitter  float64       // default 0.1
}

// DefaultBackoff is upstream's schedule plus ±10% jitter.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 5 * time.Second, Max: 20 * time.Second, Factor: 1.5, Jitter: 0.1}
}

func (b Backoff) withDefaults() Backoff {
	d := DefaultBackoff()
	if b.Initial <= 0 {
		b.Initial = d.Initial
	}
	if b.Max <= 0 {
		b.Max = d.Max
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Factor < 1 {
		b.Factor = d.Factor
	}
	if b.Jitter <= 0 || b.Jitter >= 1 {
		b.Jitter = d.Jitter
	}
	return b
}

// policy is the schedule with the defaults applied.
func (b Backoff) policy() backoff.Policy {
	b = b.withDefaults()
	return backoff.Policy{Initial: b.Initial, Max: b.Max, Factor: b.Factor, Jitter: b.Jitter}
}

// startDialer runs redialLoop in a goroutine group of its own: the shared
// Start of every dialer backend. dial gets the group so that the sessions
// it creates are waited for too.
func startDialer(ctx context.Context, log *slog.Logger, redial bool, b Backoff,
	dial func(context.Context, *group) (Session, error), accept func(Session)) (func(), error) {
	g := &group{}
	g.spawn(func() {
		defer g.stop()
		redialLoop(ctx, log, redial, b, func(ctx context.Context) (Session, error) { return dial(ctx, g) }, accept)
	})
	return g.wait, nil
}

// redialLoop runs one session at a time from dial until ctx ends, or after
// the first session or failure when redial is false.
func redialLoop(ctx context.Context, log *slog.Logger, redial bool, b Backoff,
	dial func(context.Context) (Session, error), accept func(Session)) {
	delay := b.policy().Start()
	for {
		s, err := dial(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("backend dial failed", "err", err)
		default:
			delay.Reset()
			log.Debug("backend session started", "remote", s.RemoteAddr())
			runSession(ctx, s, accept)
			log.Debug("backend session ended", "remote", s.RemoteAddr())
		}
		if !redial {
			return
		}
		wait := delay.Next()
		log.Debug("backend redial scheduled", "in", wait)
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

// runSession hands s to accept and makes sure it is closed when accept
// returns or ctx ends, whichever comes first.
func runSession(ctx context.Context, s Session, accept func(Session)) {
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	defer s.Close() //nolint:errcheck // Close of a session cannot fail
	accept(s)
}

// acceptInGroup runs runSession on a member goroutine of g; when g is
// already stopped the session is closed instead.
func acceptInGroup(ctx context.Context, g *group, s Session, accept func(Session)) {
	if !g.spawn(func() { runSession(ctx, s, accept) }) {
		_ = s.Close()
	}
}

func loggerOr(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
