package work

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

const (
	// maxStatusConns bounds the control sessions one agent keeps to one
	// remote node for status polls. Every remote unit polls its status;
	// with a session per unit a burst of units costs one more mesh
	// connection (a QUIC and TLS handshake on both nodes) per unit. Status
	// requests are one line each way, so a few shared sessions carry the
	// polls of many units.
	maxStatusConns = 8
	// statusQueryTimeout bounds one status request on a shared session; a
	// session that does not answer in time is dropped.
	statusQueryTimeout = 15 * time.Second
)

// statusPool is the set of shared status sessions to one remote node (for
// one tls-client). Idle sessions wait in idle; slots counts open ones.
type statusPool struct {
	idle  chan *controlConn
	slots chan struct{}
}

func newStatusPool() *statusPool {
	return &statusPool{idle: make(chan *controlConn, maxStatusConns), slots: make(chan struct{}, maxStatusConns)}
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
	line, reused, err := r.queryOnce(ctx, ex)
	if err != nil && reused && ctx.Err() == nil {
		// An idle session may have ended meanwhile (the remote node
		// restarted); that says nothing about the node now.
		line, _, err = r.queryOnce(ctx, ex)
	}
	return line, err
}

func (r *remoteUnit) queryOnce(ctx context.Context, ex remoteExtra) (line string, reused bool, err error) {
	p := r.a.statusPool(ex)
	c, reused, err := p.take(ctx, r, ex)
	if err != nil {
		return "", false, err
	}
	_ = c.SetDeadline(time.Now().Add(statusQueryTimeout))
	interrupt := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	line, err = c.query("work status " + ex.RemoteUnitID + "\n")
	if !interrupt() || err != nil {
		c.Close()
		<-p.slots
		if err == nil {
			err = ctx.Err()
		}
		return "", reused, fmt.Errorf("status of remote unit %s on %s: %w", ex.RemoteUnitID, ex.RemoteNode, err)
	}
	_ = c.SetDeadline(time.Time{})
	p.idle <- c // never blocks: at most maxStatusConns sessions exist
	return line, reused, nil
}

// take returns an idle session (reused), or opens one while fewer than
// maxStatusConns are open, or waits for one to become idle.
func (p *statusPool) take(ctx context.Context, r *remoteUnit, ex remoteExtra) (c *controlConn, reused bool, err error) {
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

// query writes one request line and reads one reply line.
func (c *controlConn) query(req string) (string, error) {
	if _, err := c.Write([]byte(req)); err != nil {
		return "", err
	}
	line, err := c.readLine()
	if err != nil {
		return "", err
	}
	if !strings.HasSuffix(line, "\n") {
		return "", errors.New("reply line without newline")
	}
	return line, nil
}
