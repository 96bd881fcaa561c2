package stream

import (
	"context"
	"sync"

	"github.com/receptor-mesh/receptor/services/mesh"
)

// MaxHandshakesPerNode bounds the dials this process runs toward one remote
// node at once, from the first packet until the stream is open. A
// listener's QUIC stack queues at most 32 handshaken connections that its
// application has not yet taken; a burst of hundreds of dials (a proxy's
// tcp-server receiving 1,000 clients at once) overruns that queue and the
// excess is refused with CONNECTION_REFUSED. Dials over the bound wait for
// a slot (or their context); established connections hold none.
const MaxHandshakesPerNode = 16

// handshakeKey names a (local node, remote node) pair: a process may run
// several local nodes (tests, benchmarks).
type handshakeKey struct {
	local, remote string
}

type handshakeSlots struct {
	ch    chan struct{}
	users int // holders and waiters; the entry is dropped at zero
}

var handshakes = struct {
	sync.Mutex
	m map[handshakeKey]*handshakeSlots
}{m: map[handshakeKey]*handshakeSlots{}}

// acquireHandshake waits for a dial slot toward node on network and
// returns its release.
func acquireHandshake(ctx context.Context, network mesh.PacketNetwork, node string) (func(), error) {
	key := handshakeKey{local: network.NodeID(), remote: node}
	handshakes.Lock()
	s := handshakes.m[key]
	if s == nil {
		s = &handshakeSlots{ch: make(chan struct{}, MaxHandshakesPerNode)}
		handshakes.m[key] = s
	}
	s.users++
	handshakes.Unlock()
	leave := func() {
		handshakes.Lock()
		s.users--
		if s.users == 0 {
			delete(handshakes.m, key)
		}
		handshakes.Unlock()
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, context.Cause(ctx)
	}
}
