package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	controlv1 "github.com/receptor-mesh/receptor/gen/go/receptor/control/v1"
	workv1 "github.com/receptor-mesh/receptor/gen/go/receptor/work/v1"
)

// runUnit submits one unit of workType to node with stdin, then streams
// its results to the end, returning the output size and the time from
// submission to the last byte.
func runUnit(ctx context.Context, cc controlv1.ControlServiceClient, workType, node string, stdin []byte) (int64, time.Duration, error) {
	t0 := time.Now()
	resp, err := cc.CreateWork(ctx, &controlv1.CreateWorkRequest{
		Params: &workv1.SubmitParams{WorkType: workType, Node: node},
		Stdin:  stdin,
	})
	if err != nil {
		return 0, 0, fmt.Errorf("submit %s to %s: %w", workType, node, err)
	}
	id := resp.GetResult().GetUnitId()
	if id == "" {
		return 0, 0, fmt.Errorf("submit %s to %s: no unit ID", workType, node)
	}
	st, err := cc.GetWorkResults(ctx, &controlv1.GetWorkResultsRequest{UnitId: id})
	if err != nil {
		return 0, 0, fmt.Errorf("results of %s: %w", id, err)
	}
	var n int64
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, 0, fmt.Errorf("results of %s after %d bytes: %w", id, n, err)
		}
		n += int64(len(r.GetData()))
	}
	el := time.Since(t0)
	// Release so that hundreds of units do not pile up on disk.
	if _, err := cc.ReleaseWork(ctx, &controlv1.ReleaseWorkRequest{UnitId: id}); err != nil {
		return n, el, fmt.Errorf("release %s: %w", id, err)
	}
	return n, el, nil
}

// unitLatencies runs n echo units one after another.
func unitLatencies(ctx context.Context, cc controlv1.ControlServiceClient, node string, n int) ([]time.Duration, error) {
	in := []byte("hello\n")
	out := make([]time.Duration, 0, n)
	for i := range n {
		got, el, err := runUnit(ctx, cc, "echo", node, in)
		if err != nil {
			return nil, fmt.Errorf("unit #%d: %w", i, err)
		}
		if got != int64(len(in)) {
			return nil, fmt.Errorf("unit #%d: %d bytes of output, want %d", i, got, len(in))
		}
		out = append(out, el)
	}
	return out, nil
}

// unitBurst submits n echo units at once and waits for all results; it
// returns the wall time from the first submission to the last result.
func unitBurst(ctx context.Context, cc controlv1.ControlServiceClient, node string, n int) (time.Duration, error) {
	in := []byte("hello\n")
	var wg sync.WaitGroup
	errs := make(chan error, n)
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, _, err := runUnit(ctx, cc, "echo", node, in)
			if err == nil && got != int64(len(in)) {
				err = fmt.Errorf("%d bytes of output, want %d", got, len(in))
			}
			if err != nil {
				errs <- fmt.Errorf("unit #%d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return el, nil
}

// readFileTime reads path once to io.Discard (the baseline of results
// streaming: the page cache is warm because the unit just read it).
func readFileTime(path string) (int64, time.Duration, error) {
	t0 := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	n, err := io.CopyBuffer(io.Discard, f, make([]byte, 1<<20))
	if err != nil {
		return n, 0, fmt.Errorf("read %s: %w", path, err)
	}
	return n, time.Since(t0), nil
}

// writeBigFile creates a file of size bytes of non-repeating-ish content.
func writeBigFile(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte('a' + i%26)
		if i%100 == 99 {
			buf[i] = '\n'
		}
	}
	for written := int64(0); written < size; {
		k := min(int64(len(buf)), size-written)
		if _, err := f.Write(buf[:k]); err != nil {
			_ = f.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		written += k
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}
