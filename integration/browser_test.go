package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's headless Chromium through chromedp.
// .ci/run installs it; on a machine without it the tests skip and say so,
// except under CI (CI=true), where a missing browser fails them.

// chromiumPath finds the browser: $RECEPTOR_CHROMIUM, else chromium or
// google-chrome on PATH.
func chromiumPath() string {
	if p := os.Getenv("RECEPTOR_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless Chromium for one test, with one tab.
type browser struct {
	t     testing.TB
	ctx   context.Context
	shots string // screenshots go here: the test's artifact directory

	mu       sync.Mutex
	problems []string // uncaught exceptions and security (CSP) refusals
	n        int      // screenshots taken
}

// newBrowser starts Chromium for t (a window of width x height CSS pixels)
// and stops it when t ends. Page errors (uncaught exceptions, content
// security policy refusals) fail the test.
func newBrowser(t testing.TB, width, height int) *browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium found (chromium on PATH or RECEPTOR_CHROMIUM); .ci/run installs Debian's chromium package")
		}
		t.Skip("skipping browser test: no Chromium found (apt-get install chromium, or set RECEPTOR_CHROMIUM)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(width, height),
		// Nothing but the page's own requests: this machine has no network.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx, shots: t.ArtifactDir()}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancel()
		cancelAlloc()
		t.Fatalf("starting %s: %v", path, err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	msgs := chromedp.Console(ctx)
	go func() {
		defer wg.Done()
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() || m.Source == "security" {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		wg.Wait()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, p := range b.problems {
			t.Errorf("page error: %s", p)
		}
		t.Logf("screenshots: %s", b.shots)
	})
	return b
}

// do runs actions in the tab, failing the test on error.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.shot("failed-" + what)
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// evalAwait evaluates a JavaScript expression that returns a promise, and
// returns what the promise resolves to.
func evalAwait[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitFor waits until the JavaScript expression is truthy (polled on
// every animation frame), failing the test with what after timeout.
func (b *browser) waitFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		b.shot("timeout-" + what)
		if ctx.Err() == nil {
			for _, id := range []string{"live", "login-error"} {
				if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById(`+jsString(id)+`)?.textContent || ''`)); err == nil {
					b.t.Logf("page #%s: %q", id, text)
				}
			}
		}
		if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout") {
			b.t.Fatalf("%s: not within %v (%s)", what, timeout, expr)
		}
		b.t.Fatalf("%s: %v", what, err)
	}
}

// shot saves a screenshot of the viewport as NN-name.png.
func (b *browser) shot(name string) string {
	b.t.Helper()
	b.mu.Lock()
	b.n++
	file := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.n, name))
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
	}
	return file
}

// navigate loads url, trying again when Chromium reports that the
// machine's network changed (other tests and builds add and remove
// interfaces; Chromium then aborts loads with ERR_NETWORK_CHANGED).
func (b *browser) navigate(url string) {
	b.t.Helper()
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
		err := chromedp.Do(ctx, chromedp.Navigate(url))
		cancel()
		if err == nil {
			return
		}
		if attempt < 5 && strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			b.t.Logf("loading %s: %v; trying again", url, err)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		b.t.Fatalf("loading %s: %v", url, err)
	}
}

// signIn opens the web view at base and signs in with token.
func (b *browser) signIn(base, token string) {
	b.t.Helper()
	b.navigate(base + "/ui/")
	b.do("open the web view", chromedp.WaitVisible(chromedp.CSS("#token")))
	b.do("sign in",
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#view-home")))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s) + `"`
}
