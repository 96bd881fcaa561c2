package work

// Remote work, connections: control sessions with other nodes (the
// receptorctl protocol client of services/control/client over mesh
// streams), the limit on sessions being set up per node, and the shared
// sessions that carry the status polls, cancels and releases of all remote
// units on one node.

import (
	"context"
	"fmt"
	"time"

	"github.com/receptor-mesh/receptor/services/control/client"
)

const (
	// greetingTimeout bounds the wait for a control greeting (upstream 5 s).
	greetingTimeout = 5 * time.Second
	// maxDialsPerNode bounds the connections to one remote node that are
	// being set up (dial and greeting) at once. A burst of remote submits
	// otherwise starts hundreds of QUIC handshakes toward one listener,
	// whose accept queue (quic-go: 32) then refuses connections with
	// CONNECTION_REFUSED and whose greetings miss greetingTimeout under
	// the CPU load. Established connections do not hold a slot.
	maxDialsPerNode = 16
	// maxStatusConns bounds the control sessions one agent keeps to one
	// remote node for status polls, cancels and releases. Every remote
	// unit polls its status and is released; with a session per request a
	// burst of units costs more mesh connections (a QUIC and TLS handshake
	// on both nodes each) per unit. These requests are one line each way,
	// so a few shared sessions carry those of many units.
	maxStatusConns = 8
	// statusQueryTimeout bounds one status request on a shared session; a
	// session that does not answer in time is dropped.
	statusQueryTimeout = 15 * time.Second
)

// peerConn is a control session with another node; it is closed when the
// context it was opened for ends.
type peerConn struct {
	*client.Conn
	stop func() bool // unregisters the close-on-cancel hook
}

// Close closes the session and drops its context hook.
func (c *peerConn) Close() error {
	if c.stop != nil {
		c.stop()
	}
	return c.Conn.Close()
}

// dialSlots is the set-up limiter of one remote node (maxDialsPerNode).
func (a *Agent) dialSlots(node string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dialing == nil {
		a.dialing = make(map[string]chan struct{})
	}
	ch := a.dialing[node]
	if ch == nil {
		ch = make(chan struct{}, maxDialsPerNode)
		a.dialing[node] = ch
	}
	return ch
}

// dial opens a control session with ex's remote node. Failures are
// *connError: the node could not be reached.
func (r *remoteUnit) dial(ctx context.Context, ex remoteExtra) (*peerConn, error) {
	slots := r.a.dialSlots(ex.RemoteNode)
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		return nil, &connError{fmt.Errorf("connecting to %s: %w", ex.RemoteNode, ctx.Err())}
	}
	defer func() { <-slots }()
	conn, err := r.a.opts.Mesh.Dial(ctx, ex.RemoteNode, controlService, ex.TLSClient)
	if err != nil {
		return nil, &connError{err}
	}
	gctx, cancel := context.WithTimeout(ctx, greetingTimeout)
	c, err := client.Greet(gctx, conn, ex.RemoteNode)
	cancel()
	if err != nil {
		conn.Close()
		return nil, &connError{err}
	}
	// Everything after the greeting ends with the context.
	return &peerConn{Conn: c, stop: context.AfterFunc(ctx, func() { conn.Close() })}, nil
}

// statusPool is the set of shared status sessions to one remote node (for
// one tls-client). Idle sessions wait in idle; slots counts open ones.
type statusPool struct {
	idle  chan *peerConn
	slots chan struct{}
}

func newStatusPool() *statusPool {
	return &statusPool{idle: make(chan *peerConn, maxStatusConns), slots: make(chan struct{}, maxStatusConns)}
}

// statusPool returns the pool for ex's node and tls-client.
func (a *Agent) statusPool(ex remoteExtra) *statusPool {
	key := ex.RemoteNode + "\x00" + ex.TLSClient
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pools == nil {
		a.pools = make(map[string]*statusPool)
	}
	p := a.pools[key]
	if p == nil {
		p = newStatusPool()
		a.pools[key] = p
	}
	return p
}

// closePools closes the idle shared sessions (Close, after every
// background activity ended, so none is in use).
func (a *Agent) closePools() {
	a.mu.Lock()
	pools := a.pools
	a.pools = nil
	a.mu.Unlock()
	for _, p := range pools {
	drain:
		for {
			select {
			case c := <-p.idle:
				c.Close()
			default:
				break drain
			}
		}
	}
}

// queryStatus sends `work status <id>` on a shared session to r's remote
// node and returns the reply line. ctx ends the wait (the session is then
// dropped, as its state is unknown).
func (r *remoteUnit) queryStatus(ctx context.Context, ex remoteExtra) (string, error) {
	line, err := r.onShared(ctx, ex, func(ctx context.Context, c *peerConn) (string, error) {
		return c.WorkStatus(ctx, ex.RemoteUnitID)
	})
	if err != nil {
		r.a.counts.pollsErr.Add(1)
		return "", fmt.Errorf("status of remote unit %s on %s: %w", ex.RemoteUnitID, ex.RemoteNode, err)
	}
	r.a.counts.pollsOK.Add(1)
	return line, nil
}

// onShared runs one request (one line each way) on a shared session to
// r's remote node. An idle session may have ended meanwhile (the remote
// node restarted), which says nothing about the node now: a request that
// fails on one is sent once more on a new session.
func (r *remoteUnit) onShared(ctx context.Context, ex remoteExtra, req func(context.Context, *peerConn) (string, error)) (string, error) {
	line, reused, err := r.sharedOnce(ctx, ex, req)
	if err != nil && reused && ctx.Err() == nil {
		line, _, err = r.sharedOnce(ctx, ex, req)
	}
	return line, err
}

func (r *remoteUnit) sharedOnce(ctx context.Context, ex remoteExtra, req func(context.Context, *peerConn) (string, error)) (line string, reused bool, err error) {
	p := r.a.statusPool(ex)
	c, reused, err := p.take(ctx, r, ex)
	if err != nil {
		return "", false, err
	}
	qctx, cancel := context.WithTimeout(ctx, statusQueryTimeout)
	line, err = req(qctx, c)
	// A request that ctx or the timeout interrupted, even one that was
	// answered, leaves the session in an unknown state: drop it.
	ended := qctx.Err()
	cancel()
	if err != nil || ended != nil {
		c.Close()
		<-p.slots
		if err == nil {
			err = ended
		}
		return "", reused, err
	}
	p.idle <- c // never blocks: at most maxStatusConns sessions exist
	return line, reused, nil
}

// take returns an idle session (reused), or opens one while fewer than
// maxStatusConns are open, or waits for one to become idle.
func (p *statusPool) take(ctx context.Context, r *remoteUnit, ex remoteExtra) (c *peerConn, reused bool, err error) {
	select {
	case c := <-p.idle:
		return c, true, nil
	default:
	}
	select {
	case c := <-p.idle:
		return c, true, nil
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
	c, err = r.dial(ctx, ex)
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	// The session outlives this unit's context: it belongs to the agent.
	c.stop()
	c.stop = context.AfterFunc(r.a.ctx, func() { c.Conn.Close() })
	return c, false, nil
}
