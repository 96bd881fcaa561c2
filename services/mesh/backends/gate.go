package backends

import "sync"

// byteGate bounds the bytes held by a session queue, next to the
// channel's bound on the number of messages. A message larger than the
// whole limit still passes when the queue holds nothing, so no message
// that fits the transport is refused forever.
type byteGate struct {
	mu    sync.Mutex
	used  int
	limit int
	wake  chan struct{} // closed by release when someone waits; nil otherwise
}

func (g *byteGate) fitsLocked(n int) bool { return g.used == 0 || g.used+n <= g.limit }

// tryTake reserves n bytes if they fit now.
func (g *byteGate) tryTake(n int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.fitsLocked(n) {
		return false
	}
	g.used += n
	return true
}

// take reserves n bytes, waiting for room until a or b is closed (then it
// reports false). Either may be nil.
func (g *byteGate) take(n int, a, b <-chan struct{}) bool {
	for {
		g.mu.Lock()
		if g.fitsLocked(n) {
			g.used += n
			g.mu.Unlock()
			return true
		}
		if g.wake == nil {
			g.wake = make(chan struct{})
		}
		w := g.wake
		g.mu.Unlock()
		select {
		case <-w:
		case <-a:
			return false
		case <-b:
			return false
		}
	}
}

// release frees n bytes taken before.
func (g *byteGate) release(n int) {
	g.mu.Lock()
	g.used -= n
	if g.wake != nil {
		close(g.wake)
		g.wake = nil
	}
	g.mu.Unlock()
}

// held reports the bytes currently reserved.
func (g *byteGate) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.used
}
