package work

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// safetyInterval is the fallback re-check for followers, in case a change
// notification was lost (e.g. inotify unavailable). Normal progress is
// driven by notifications.
const safetyInterval = time.Second

func safetyPoll() <-chan time.Time  { return time.After(safetyInterval) }
func afterSecond() <-chan time.Time { return time.After(time.Second) }

// Results streams a unit's stdout from byte offset, following a running
// unit until it is complete and every byte counted in its StdoutSize was
// delivered (docs/protocol.md §13.6). A canceled unit's stream ends once the bytes
// present were sent (quirk Q4 fixed, docs/protocol.md §15.1); a released unit's ends at once.
// A negative offset gives an empty stream.
func (a *Agent) Results(ctx context.Context, id string, offset int64, auth Auth) (io.ReadCloser, error) {
	e, err := a.lookup(id)
	if err != nil {
		return nil, err
	}
	if err := a.checkSignature(a.needsSignature(e), auth); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(a.ctx, cancel)
	sent := a.m.resultsBytes.WithLabelValues(a.typeLabel(e.workType))
	return &resultReader{e: e, ctx: ctx, cancel: func() { stop(); cancel() }, off: offset, sent: sent}, nil
}

type resultReader struct {
	e      *entry
	ctx    context.Context
	cancel func()
	off    int64
	sent   prometheus.Counter // bytes handed to the reader

	mu  sync.Mutex
	f   *os.File
	eof bool
}

func (r *resultReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.eof || r.off < 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		// Take the change channel before looking, so a change between
		// looking and waiting is not missed.
		changed := r.e.changes()
		n, err := r.readAvailable(p)
		if n > 0 || err != nil {
			return n, err
		}
		done, err := r.finished()
		if err != nil {
			return 0, err
		}
		if done {
			// Bytes may have landed between the read and the status.
			if n, err := r.readAvailable(p); n > 0 || err != nil {
				return n, err
			}
			r.eof = true
			return 0, io.EOF
		}
		select {
		case <-changed:
		case <-r.e.gone:
			r.eof = true
			return 0, io.EOF
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		case <-safetyPoll():
		}
	}
}

// readAvailable reads what the stdout file holds beyond the offset.
func (r *resultReader) readAvailable(p []byte) (int, error) {
	if r.f == nil {
		f, err := os.Open(r.e.dir.Path(unit.StdoutFile))
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("reading results of unit %s: %w", r.e.id, err)
		}
		r.f = f
	}
	n, err := r.f.ReadAt(p, r.off)
	r.off += int64(n)
	r.sent.Add(float64(n))
	if err != nil && !errors.Is(err, io.EOF) {
		return n, fmt.Errorf("reading results of unit %s: %w", r.e.id, err)
	}
	return n, nil
}

// finished reports whether the stream has everything it will get.
func (r *resultReader) finished() (bool, error) {
	st, err := r.e.dir.ReadStatus()
	if err != nil {
		if !r.e.dir.Exists() {
			return true, nil // released meanwhile
		}
		return false, err
	}
	switch {
	case st.State.Complete():
		return r.off >= st.StdoutSize, nil
	case st.State == unit.Canceled:
		return r.off >= r.e.dir.StdoutSize(), nil
	}
	return false, nil
}

func (r *resultReader) Close() error {
	r.cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.eof = true
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		return err
	}
	return nil
}
