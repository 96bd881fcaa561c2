package backends

import (
	"context"
	"log/slog"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/backoff"
)

// Backoff is the redial schedule of dialer backends (docs/protocol.md §3.1).
// It starts with a quick phase: wait Quick, then 1.5 times as long each
// time while that stays below Initial (100 ms, 150 ms, 225 ms, … 3.8 s by
// default, ten waits in 11 s), each ±50 %, so that a peer that restarts,
// or starts a moment after us, is dialled within about a third of the time
// we have been trying (upstream waits 5 s). Then it waits Initial, growing by Factor up to Max,
// each ±Jitter (a fraction) so that many dialers do not reconnect in
// lockstep. The schedule starts over at the quick phase after a session
// that lasted stableSession or longer; a session that ends sooner (the
// peer rejects us, e.g. while it still holds our previous session) does
// not reset it, so repeated short sessions back off as failed dials do.
// Zero fields take the defaults; a Quick of Initial or more leaves out the
// quick phase (upstream's schedule).
type Backoff struct {
	Initial time.Duration // default 5 s
	Max     time.Duration // default 20 s
	Factor  float64       // default 1.5
	Jitter  float64       // default 0.1
	Quick   time.Duration // default 100 ms
}

const (
	// defaultQuickRedial is Backoff.Quick's default.
	defaultQuickRedial = 100 * time.Millisecond
	// quickFactor is the growth of the waits in the quick phase.
	quickFactor = 1.5
	// quickJitter spreads the waits of the quick phase.
	quickJitter = 0.5
	// stableSession is how long a session must last for the schedule to
	// start over when it ends.
	stableSession = 2 * time.Second
)

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

// redialSchedule is a running Backoff schedule; not safe for concurrent use.
type redialSchedule struct {
	quickStart, quick, initial time.Duration
	quickPolicy                backoff.Policy
	main                       *backoff.Backoff
}

func (b Backoff) schedule() *redialSchedule {
	p := b.policy()
	q := b.Quick
	if q <= 0 {
		q = defaultQuickRedial
	}
	return &redialSchedule{
		quickStart: q, quick: q, initial: p.Initial,
		quickPolicy: backoff.Policy{Initial: q, Max: p.Initial, Factor: quickFactor, Jitter: quickJitter},
		main:        p.Start(),
	}
}

// next returns the wait before the next dial and moves the schedule on.
func (s *redialSchedule) next() time.Duration {
	if s.quick < s.initial {
		d := s.quickPolicy.Jittered(s.quick)
		s.quick = s.quickPolicy.Next(s.quick)
		return d
	}
	return s.main.Next()
}

// reset starts the schedule over (after a stable session).
func (s *redialSchedule) reset() {
	s.quick = s.quickStart
	s.main.Reset()
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
	delay := b.schedule()
	for {
		s, err := dial(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return
		case err != nil:
			log.Warn("backend dial failed", "err", err)
		default:
			log.Debug("backend session started", "remote", s.RemoteAddr())
			began := time.Now()
			runSession(ctx, s, accept)
			lasted := time.Since(began)
			log.Debug("backend session ended", "remote", s.RemoteAddr(), "lasted", lasted)
			if lasted >= stableSession {
				delay.reset()
			}
		}
		if !redial {
			return
		}
		wait := delay.next()
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
