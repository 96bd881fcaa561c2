package backends

import "sync"

// group owns the goroutines of one started backend. It refuses new
// goroutines once stopped, so that wait() cannot race with a late Add:
// every spawner is itself a member until it calls stop.
type group struct {
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

// enter registers the calling goroutine as a member; false after stop.
func (g *group) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.wg.Add(1)
	return true
}

// leave ends a membership taken with enter.
func (g *group) leave() { g.wg.Done() }

// spawn runs f on a new member goroutine; false (and f not run) after stop.
func (g *group) spawn(f func()) bool {
	if !g.enter() {
		return false
	}
	go func() {
		defer g.leave()
		f()
	}()
	return true
}

// stop refuses further members. It is called by the last spawner (the
// listen or dial loop) on its way out.
func (g *group) stop() {
	g.mu.Lock()
	g.stopped = true
	g.mu.Unlock()
}

// wait blocks until every member has left.
func (g *group) wait() { g.wg.Wait() }
