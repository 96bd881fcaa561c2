package receptorctl

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progressMin is the smallest result for which a bar is worth drawing.
const progressMin = 1 << 20

// showProgress decides whether work results draws a progress bar: "auto"
// only when stderr is a terminal and stdout is not (the output goes to a
// file or a pipe, and the bar does not mix with it), "always", "never".
func (a *app) showProgress(mode string) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	if a.machine() || a.stdio.IsTerminal == nil {
		return false
	}
	return a.stdio.IsTerminal(a.stdio.Err) && !a.stdio.IsTerminal(a.stdio.Out)
}

// progressBar draws "<id> [=====>    ]  45%  12.0 MiB / 27.0 MiB" on one
// line of w, at most ten times a second. total is the unit's output size
// when the stream started (a running unit's grows: the bar then shows the
// bytes alone once past it). A nil bar draws nothing.
type progressBar struct {
	w     io.Writer
	id    string
	total int64
	cur   int64
	last  time.Time
	drawn bool
}

func newProgressBar(w io.Writer, id string, total int64) *progressBar {
	if total < progressMin {
		return nil
	}
	return &progressBar{w: w, id: id, total: total}
}

func (p *progressBar) set(n int64) {
	if p == nil {
		return
	}
	p.cur = n
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw()
	}
}

func (p *progressBar) draw() {
	fmt.Fprintf(p.w, "\r%s", renderBar(p.id, p.cur, p.total, 30))
	p.drawn = true
}

// done draws the final state and ends the line.
func (p *progressBar) done() {
	if p == nil || !p.drawn && p.cur < p.total {
		return
	}
	p.draw()
	fmt.Fprintln(p.w)
}

func renderBar(id string, cur, total int64, width int) string {
	if total <= 0 || cur > total {
		return fmt.Sprintf("%s %s", id, mib(cur))
	}
	filled := int(int64(width) * cur / total)
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	return fmt.Sprintf("%s [%s] %3d%%  %s / %s", id, bar, 100*cur/total, mib(cur), mib(total))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// IsTerminal reports whether f is an *os.File on a terminal; the default
// of Stdio.IsTerminal.
func fileIsTerminal(isTerm func(fd int) bool) func(f any) bool {
	return func(f any) bool {
		file, ok := f.(*os.File)
		return ok && isTerm(int(file.Fd()))
	}
}

// DefaultStdio is the process's standard streams.
func DefaultStdio() Stdio {
	return Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, IsTerminal: fileIsTerminal(term.IsTerminal)}
}
