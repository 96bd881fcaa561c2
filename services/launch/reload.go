package launch

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/receptor-mesh/receptor/services/config"
	"github.com/receptor-mesh/receptor/services/internal/dirwatch"
)

// watchSettle is how long a changed --config-v2 file must stay unchanged
// before it is reloaded: editors and config managers write a file in
// several steps (truncate, write, rename), each an event.
const watchSettle = 300 * time.Millisecond

// reloadRequests delivers a value for every SIGHUP and, when cfg came from
// --config-v2 files, for every change of their contents, until stop is
// called. Requests that arrive while one is pending are merged into it.
func reloadRequests(ctx context.Context, cfg *config.Config, log *slog.Logger) (<-chan struct{}, func(), error) {
	out := make(chan struct{}, 1)
	request := func() {
		select {
		case out <- struct{}{}:
		default: // one is pending already; it re-reads everything
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				log.Info("SIGHUP: reloading the configuration")
				request()
			}
		}
	})
	var w *dirwatch.Watcher
	if cfg.V2 && len(cfg.Sources) > 0 {
		var err error
		if w, err = watchFiles(ctx, &wg, cfg.Sources, log, request); err != nil {
			signal.Stop(hup)
			cancel()
			wg.Wait()
			return nil, nil, err
		}
	}
	stop := func() {
		signal.Stop(hup)
		if w != nil {
			_ = w.Close()
		}
		cancel()
		wg.Wait()
	}
	return out, stop, nil
}

// watchFiles calls request after the contents of one of files changed (as
// upstream's --config-v2 mode does), checked once the directory holding it
// has been quiet for watchSettle.
func watchFiles(ctx context.Context, wg *sync.WaitGroup, files []string, log *slog.Logger, request func()) (*dirwatch.Watcher, error) {
	w, err := dirwatch.New(log)
	if err != nil {
		return nil, err
	}
	changed := make(chan struct{}, 1)
	dirs := map[string]bool{}
	for _, f := range files {
		dir := filepath.Dir(f)
		if dirs[dir] {
			continue
		}
		dirs[dir] = true
		if err := w.Add(dir, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		}); err != nil {
			_ = w.Close()
			return nil, err
		}
	}
	read := func() [][]byte {
		contents := make([][]byte, len(files))
		for i, f := range files {
			contents[i], _ = os.ReadFile(f) // a missing file reads as empty: a change
		}
		return contents
	}
	last := read()
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			// Settle: wait until no event came for watchSettle.
			for settled := false; !settled; {
				select {
				case <-ctx.Done():
					return
				case <-changed:
				case <-time.After(watchSettle):
					settled = true
				}
			}
			now := read()
			same := true
			for i := range now {
				same = same && bytes.Equal(now[i], last[i])
			}
			if same {
				continue
			}
			last = now
			log.Info("configuration file changed: reloading", "files", files)
			request()
		}
	})
	return w, nil
}
