package meshapi

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"log/slog"
	"sync"
	"time"

	meshv1 "github.com/receptor-mesh/receptor/gen/go/receptor/mesh/v1"
	"github.com/receptor-mesh/receptor/services/internal/apierr"
)

// Listen implements MeshService.
func (s *Server) Listen(req *meshv1.ListenRequest, gs meshv1.MeshService_ListenServer) error {
	ctx := gs.Context()
	if err := checkService("service", req.GetService(), true); err != nil {
		return err
	}
	var tlsConf *tls.Config
	if name := req.GetTlsServer(); name != "" {
		var err error
		if tlsConf, err = s.lookupTLS(s.opts.TLSServer, name); err != nil {
			return err
		}
	}
	l, err := s.streams.Listen(ctx, req.GetService(), ListenConfig{
		Advertise: req.GetAdvertise(), Tags: req.GetTags(), TLS: tlsConf,
	})
	if err != nil {
		return bindError("service", req.GetService(), err)
	}
	ls := &listenState{l: l}
	defer s.parked.endListen(ls)
	addr := meshAddr(l.Addr())
	if err := gs.Send(&meshv1.ListenResponse{Event: &meshv1.ListenResponse_Listening{Listening: &meshv1.Listening{
		Node: addr.Node, Service: addr.Service,
	}}}); err != nil {
		return err
	}

	// The accept loop hands each connection over unbuffered: while the
	// client is slow to read announcements, the stream listener's own
	// bounded backlog fills instead of a queue here.
	actx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	incoming := make(chan StreamConn)
	acceptErr := make(chan error, 1)
	wg.Go(func() {
		for {
			c, err := l.Accept(actx)
			if err != nil {
				acceptErr <- err
				return
			}
			select {
			case incoming <- c:
			case <-actx.Done():
				_ = c.Close()
				return
			}
		}
	})
	for {
		select {
		case c := <-incoming:
			remote := meshAddr(c.RemoteAddr())
			id, ok := s.parked.park(ls, c, s.opts.MaxUnaccepted, s.opts.AcceptTimeout, s.log)
			if !ok {
				s.log.Warn("meshapi: too many connections waiting for Accept; closing a new one",
					"service", addr.Service, "remote", remote.String(), "limit", s.opts.MaxUnaccepted)
				_ = c.Close()
				continue
			}
			if err := gs.Send(&meshv1.ListenResponse{Event: &meshv1.ListenResponse_Incoming{Incoming: &meshv1.IncomingConnection{
				ConnectionId: id, RemoteNode: remote.Node, RemoteService: remote.Service,
			}}}); err != nil {
				return err
			}
		case err := <-acceptErr:
			if ctx.Err() != nil {
				return apierr.ContextEnded(ctx.Err())
			}
			return meshError(addr.Node, err)
		case <-ctx.Done():
			return apierr.ContextEnded(ctx.Err())
		}
	}
}

// listenState tracks one stream listener. Closing it would end every
// connection it accepted (they share its QUIC transport), so after its
// Listen call ends it stays open until the last accepted connection is done;
// meanwhile a refuser closes every new connection at once, so a dialer does
// not wait on a listener nobody serves. Fields are guarded by parking.mu.
type listenState struct {
	l       StreamListener
	refs    int // parked + accepted connections still open
	parked  int
	ended   bool          // the Listen call is over
	closed  bool          // l.Close was called (or is about to be)
	refuser chan struct{} // closed when the refuser has stopped; nil if none
}

// refuse closes every connection ls.l accepts until it is closed.
func (ls *listenState) refuse() {
	defer close(ls.refuser)
	for {
		c, err := ls.l.Accept(context.Background()) // ends with l.Close
		if err != nil {
			return
		}
		_ = c.Close()
	}
}

// close closes the listener and waits for its refuser.
func (ls *listenState) close() {
	_ = ls.l.Close()
	if ls.refuser != nil {
		<-ls.refuser
	}
}

// parkedConn is an incoming connection waiting for its Accept call.
type parkedConn struct {
	conn  StreamConn
	ls    *listenState
	timer *time.Timer
}

// parking holds incoming connections between their announcement and
// their Accept call, across all listeners.
type parking struct {
	mu    sync.Mutex
	conns map[string]*parkedConn
}

func newParking() *parking { return &parking{conns: make(map[string]*parkedConn)} }

// park stores c under a fresh ID; false when ls already has max parked.
// A connection not taken within timeout is closed.
func (p *parking) park(ls *listenState, c StreamConn, limit int, timeout time.Duration, log *slog.Logger) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ls.parked >= limit || ls.ended {
		return "", false
	}
	id := rand.Text()
	pc := &parkedConn{conn: c, ls: ls}
	ls.parked++
	ls.refs++
	p.conns[id] = pc
	pc.timer = time.AfterFunc(timeout, func() {
		if _, ok := p.take(id); ok {
			log.Debug("meshapi: incoming connection not accepted in time; closing", "id", id)
			_ = c.Close()
			p.release(ls)
		}
	})
	return id, true
}

// take removes a parked connection; the caller owns it and must call
// release(pc.ls) when done with it.
func (p *parking) take(id string) (*parkedConn, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc, ok := p.conns[id]
	if !ok {
		return nil, false
	}
	delete(p.conns, id)
	pc.timer.Stop()
	pc.ls.parked--
	return pc, true
}

// connEndBound bounds how long a finished Accept keeps its listener for a
// connection still ending: longer than the QUIC idle timeout (30 s).
const connEndBound = 35 * time.Second

// releaseWhenEnded releases ls once conn's transport has ended (for conns
// that report it through Done) or after connEndBound.
func (p *parking) releaseWhenEnded(ls *listenState, conn StreamConn) {
	if d, ok := conn.(interface{ Done() <-chan struct{} }); ok {
		t := time.NewTimer(connEndBound)
		select {
		case <-d.Done():
		case <-t.C:
		}
		t.Stop()
	}
	p.release(ls)
}

// release drops one reference to ls and closes its listener when the
// Listen call is over and nothing uses it any more.
func (p *parking) release(ls *listenState) {
	p.mu.Lock()
	ls.refs--
	closeNow := ls.ended && ls.refs == 0 && !ls.closed
	if closeNow {
		ls.closed = true
	}
	p.mu.Unlock()
	if closeNow {
		ls.close()
	}
}

// endListen closes the connections ls still has parked and, unless some
// are being carried by Accept calls, its listener.
func (p *parking) endListen(ls *listenState) {
	p.mu.Lock()
	ls.ended = true
	var drop []*parkedConn
	for id, pc := range p.conns {
		if pc.ls == ls {
			delete(p.conns, id)
			pc.timer.Stop()
			drop = append(drop, pc)
		}
	}
	ls.parked -= len(drop)
	ls.refs -= len(drop)
	closeNow := ls.refs == 0 && !ls.closed
	if closeNow {
		ls.closed = true
	} else if !ls.closed {
		// Started under the lock, so the release that closes the
		// listener always finds the refuser to wait for.
		ls.refuser = make(chan struct{})
		go ls.refuse()
	}
	p.mu.Unlock()
	for _, pc := range drop {
		_ = pc.conn.Close()
	}
	if closeNow {
		ls.close()
	}
}
