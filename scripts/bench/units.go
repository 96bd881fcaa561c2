package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
)

// The "units" section: units per second through the control socket (the
// API AWX uses, and the only one upstream has), on the line node1 — node2
// — node3 over tcp links, for ours, ours with only the `receptor` binary
// installed (no receptor-runner beside it: the command runner then starts
// from the receptor binary itself), and upstream. Each unit is the whole
// cycle a client goes through: submit with stdin, stream the results to
// the end, release. Units run one after another, then o.units at once,
// on node1 itself and on node3 two hops away.

// unitsReceptorOnly names the implementation that has only `receptor`.
const unitsReceptorOnly = "ours, receptor binary only"

// unitsWork is the work type the section runs: cat echoes the stdin.
var unitsWork = []string{"--work-command", "worktype=echo", "command=cat"}

// ctlUnit runs one unit through node's control socket sock: submit to
// target with stdin, read the results to the end, release.
func ctlUnit(ctx context.Context, sock, target string, stdin []byte) error {
	id, err := func() (string, error) {
		c, err := client.Dial(ctx, "unix:"+sock, nil)
		if err != nil {
			return "", err
		}
		defer c.Close()
		res, err := c.SubmitWork(ctx, map[string]string{"node": target, "worktype": "echo"}, bytes.NewReader(stdin))
		if err != nil {
			return "", fmt.Errorf("submit to %s: %w", target, err)
		}
		return res.UnitID, nil
	}()
	if err != nil {
		return err
	}
	err = func() error {
		c, err := client.Dial(ctx, "unix:"+sock, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		r, err := c.Results(ctx, id, 0)
		if err != nil {
			return fmt.Errorf("results of %s: %w", id, err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("results of %s after %d bytes: %w", id, len(got), err)
		}
		if !bytes.Equal(got, stdin) {
			return fmt.Errorf("results of %s: %q, want %q", id, got, stdin)
		}
		return nil
	}()
	if err != nil {
		return err
	}
	var reply any
	if err := ctlCommand(ctx, sock, "work release "+id, &reply); err != nil {
		return fmt.Errorf("release %s: %w", id, err)
	}
	return nil
}

// unitsRate runs n units on target, one after another (parallel false) or
// all at once, and returns units per second.
func unitsRate(ctx context.Context, sock, target string, n int, parallel bool) (float64, time.Duration, error) {
	stdin := []byte("hello\n")
	t0 := time.Now()
	if !parallel {
		for i := range n {
			if err := ctlUnit(ctx, sock, target, stdin); err != nil {
				return 0, 0, fmt.Errorf("unit #%d: %w", i, err)
			}
		}
	} else {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				if err := ctlUnit(ctx, sock, target, stdin); err != nil {
					errs <- fmt.Errorf("unit #%d: %w", i, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return 0, 0, err
		}
	}
	el := time.Since(t0)
	return float64(n) / el.Seconds(), el, nil
}

// receptorOnly returns ours with node roles run from a directory that
// holds only a copy of the receptor binary.
func receptorOnly(o options, dir string) (impl, error) {
	only := filepath.Join(dir, "receptor-only")
	if err := os.MkdirAll(only, 0o755); err != nil {
		return impl{}, err
	}
	src, err := os.ReadFile(filepath.Join(o.binDir, "receptor"))
	if err != nil {
		return impl{}, err
	}
	bin := filepath.Join(only, "receptor")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		return impl{}, err
	}
	ours := o.impls()[0]
	return impl{name: unitsReceptorOnly, bin: func(role string) string {
		if role == roleRouter {
			return ours.bin(role)
		}
		return bin
	}}, nil
}

func unitsSection(ctx context.Context, o options, ps *ports, dir string, env []string, rep *report) {
	impls := o.impls()
	if only, err := receptorOnly(o, dir); err != nil {
		rep.failed("units", "receptor-only install", err)
	} else {
		impls = slices.Insert(impls, 1, only)
	}
	type load struct {
		name     string
		target   string // where the units run, as submitted from node1
		n        int
		parallel bool
		times    float64 // the target: ours ≥ times × upstream
	}
	loads := []load{
		{"one after another, local", "localhost", o.unitsSeq, false, 10},
		{"one after another, 2 hops", "node3", o.unitsSeq, false, 5},
		{fmt.Sprintf("%d at once, local", o.units), "localhost", o.units, true, 10},
		{fmt.Sprintf("%d at once, 2 hops", o.units), "node3", o.units, true, 5},
	}
	figs := map[string][]*figure{} // per implementation, per load
	for _, im := range impls {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		l, err := startLine3(sctx, o, ps, dir, im, "tcp", "127.0.0.1:9", env, unitsWork)
		cancel()
		for _, ld := range loads {
			f := &figure{err: err}
			if err == nil {
				uctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
				var el time.Duration
				f.v, el, f.err = unitsRate(uctx, l.ctl1, ld.target, ld.n, ld.parallel)
				cancel()
				f.text = fmt.Sprintf("%.1f units/s (%s)", f.v, el.Round(time.Millisecond))
				o.logger.Debug("units", "impl", im.name, "load", ld.name, "rate", f.text, "err", f.err)
			}
			figs[im.name] = append(figs[im.name], f)
		}
		if l != nil {
			l.stop()
		}
	}
	for i, ld := range loads {
		var up *figure
		if u := figs[implUpstream]; u != nil {
			up = u[i]
		}
		for _, name := range []string{implOurs, unitsReceptorOnly} {
			fs := figs[name]
			if fs == nil {
				continue
			}
			f := fs[i]
			r := row{Group: "units", Name: fmt.Sprintf("echo units %s (control socket: submit, results, release), %s", ld.name, name),
				Target: fmt.Sprintf("≥ %.0f× upstream", ld.times)}
			if f.err != nil {
				r.Value, r.Verdict = "error: "+oneLine(f.err.Error()), "MISS"
			} else {
				r.Value = f.text
				if up != nil && up.err == nil {
					r.Verdict = verdict(f.v >= ld.times*up.v)
				}
			}
			rep.add(sideBySide(r, f, up, true))
		}
	}
}
