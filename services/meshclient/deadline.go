package meshclient

import (
	"sync"
	"time"
)

// deadline is a resettable point in time: wait returns a channel that is
// closed once the deadline has passed (never, while unset).
type deadline struct {
	mu      sync.Mutex
	timer   *time.Timer
	expired chan struct{}
}

func newDeadline() *deadline { return &deadline{expired: make(chan struct{})} }

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.expired // the timer fired: its func closes this channel
	}
	d.timer = nil
	passed := isClosed(d.expired)
	if t.IsZero() {
		if passed {
			d.expired = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if passed {
			d.expired = make(chan struct{})
		}
		ch := d.expired
		d.timer = time.AfterFunc(dur, func() { close(ch) })
		return
	}
	if !passed {
		close(d.expired)
	}
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expired
}

// passed reports whether the deadline is over now.
func (d *deadline) passed() bool { return isClosed(d.wait()) }

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// deadlines are a connection's read and write deadlines. Embedded in Conn
// and PacketConn, they provide the net.Conn deadline methods.
type deadlines struct{ rdl, wdl *deadline }

func newDeadlines() deadlines { return deadlines{rdl: newDeadline(), wdl: newDeadline()} }

// SetDeadline sets both deadlines.
func (d deadlines) SetDeadline(t time.Time) error {
	d.rdl.set(t)
	d.wdl.set(t)
	return nil
}

// SetReadDeadline sets the read deadline.
func (d deadlines) SetReadDeadline(t time.Time) error {
	d.rdl.set(t)
	return nil
}

// SetWriteDeadline sets the write deadline; it bounds the wait for room to
// send (a free send buffer, or gRPC flow control).
func (d deadlines) SetWriteDeadline(t time.Time) error {
	d.wdl.set(t)
	return nil
}

// stop releases both deadlines' timers.
func (d deadlines) stop() {
	d.rdl.stop()
	d.wdl.stop()
}
