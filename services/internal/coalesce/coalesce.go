// Package coalesce shares one computation among concurrent callers that
// each need a result at least as fresh as their call: the `work list`
// reply, which is large and the same for everyone, built once for many
// simultaneous requests instead of once per request.
//
// A call never receives a result computed before it was made. While a
// computation runs, new callers wait for the next one, which starts when
// the running one ends and serves all of them; so at most one computation
// runs at a time and memory does not grow with the number of callers.
package coalesce

import (
	"context"
	"sync"
)

// Group coalesces calls of one computation. The zero value is ready.
type Group[T any] struct {
	mu      sync.Mutex
	running bool
	next    *call[T] // the computation new callers join; nil when none waits
}

type call[T any] struct {
	fn   func() (T, error)
	done chan struct{}
	val  T
	err  error
}

// Do returns the result of fn, or of the fn of another caller, run after
// this call began. The result is shared: callers must not modify it. fn
// runs on a goroutine of its own and must end by itself (bound it with a
// timeout of its own: it serves every waiting caller, so it must not use
// one caller's context). When ctx ends first, Do returns ctx.Err() and
// the computation goes on for the others.
func (g *Group[T]) Do(ctx context.Context, fn func() (T, error)) (T, error) {
	g.mu.Lock()
	c := g.next
	if c == nil {
		c = &call[T]{fn: fn, done: make(chan struct{})}
		g.next = c
		if !g.running {
			g.startLocked()
		}
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// startLocked runs the waiting computation; g.mu is held.
func (g *Group[T]) startLocked() {
	c := g.next
	g.next = nil
	g.running = true
	go func() {
		c.val, c.err = c.fn()
		close(c.done)
		g.mu.Lock()
		g.running = false
		if g.next != nil {
			g.startLocked()
		}
		g.mu.Unlock()
	}()
}
