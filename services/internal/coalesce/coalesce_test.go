package coalesce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestSharedAndFresh: concurrent callers share few computations, and every
// caller sees a value computed after its call began.
func TestSharedAndFresh(t *testing.T) {
	var g Group[int64]
	var version, runs atomic.Int64
	compute := func() (int64, error) {
		runs.Add(1)
		v := version.Load()
		time.Sleep(20 * time.Millisecond)
		return v, nil
	}
	const callers = 200
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%10 == 0 {
				version.Add(1)
			}
			seen := version.Load()
			v, err := g.Do(context.Background(), compute)
			if err != nil {
				errs <- err
				return
			}
			if v < seen {
				errs <- errors.New("a caller got a value computed before its call")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := runs.Load(); n > callers/4 {
		t.Errorf("%d computations for %d concurrent callers", n, callers)
	}
}

// TestCallerLeaves: a caller whose context ends returns at once; the
// computation still serves the others.
func TestCallerLeaves(t *testing.T) {
	var g Group[string]
	release := make(chan struct{})
	fn := func() (string, error) { <-release; return "done", nil }
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Do(ctx, fn); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do with an ended context = %v", err)
	}
	got := make(chan string)
	go func() {
		v, _ := g.Do(context.Background(), fn)
		got <- v
	}()
	close(release)
	if v := <-got; v != "done" {
		t.Fatalf("Do = %q", v)
	}
}
