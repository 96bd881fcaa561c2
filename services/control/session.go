package control

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/receptor-mesh/receptor/services/internal/authz"
)

// errLineTooLong ends a session whose request line exceeds the bound.
var errLineTooLong = errors.New("line too long")

// readBufferSize is the session's read buffer. Bytes buffered past a
// request line are not lost: raw modes read through the same buffer.
const readBufferSize = 16 << 10

// session is one control connection: greeting, then commands in order.
type session struct {
	srv    *Server
	conn   net.Conn
	br     *bufio.Reader
	origin Origin
	log    *slog.Logger
	// principal is who the session's caller is; every command is
	// authorized for it (srv.policy).
	principal authz.Principal
	// failed is set when the current request got an error reply (reply),
	// for the request counts (metrics.go).
	failed bool
}

func newSession(srv *Server, conn net.Conn, origin Origin, log *slog.Logger) *session {
	return &session{
		srv:    srv,
		conn:   conn,
		br:     bufio.NewReaderSize(conn, readBufferSize),
		origin: origin,
		log:    log,
	}
}

func (s *session) run(ctx context.Context) {
	if !s.write(Greeting(s.srv.ops.NodeID())) {
		return
	}
	wait := s.srv.firstLineTimeout
	for {
		// The whole line must arrive in time: trickling bytes does not
		// extend the deadline.
		s.readDeadline(wait)
		line, err := readLine(s.br, s.srv.maxLine)
		wait = s.srv.idleTimeout
		if errors.Is(err, errLineTooLong) {
			s.write(ErrorReply(err))
			return
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.log.Debug("control session idle, closing", "partial", len(line) > 0)
			return
		}
		if err != nil && !errors.Is(err, io.EOF) {
			s.log.Debug("control session read failed", "err", err)
			return
		}
		// Like upstream, a final line without "\n" is still executed.
		if len(line) > 0 && !s.handle(ctx, string(line)) {
			return
		}
		if err != nil {
			return
		}
	}
}

// readDeadline bounds the next reads of the connection to d from now; 0
// removes the bound.
func (s *session) readDeadline(d time.Duration) {
	var t time.Time
	if d > 0 {
		t = time.Now().Add(d)
	}
	_ = s.conn.SetReadDeadline(t)
}

// idleReader reads the session's input with the deadline renewed before
// every read: a payload may take any time while bytes keep arriving.
type idleReader struct{ s *session }

func (r idleReader) Read(p []byte) (int, error) {
	r.s.readDeadline(r.s.srv.idleTimeout)
	return r.s.br.Read(p)
}

// readLine reads up to "\n", dropping every "\r" and the "\n". It returns
// io.EOF with whatever partial line preceded the end of input.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if err == nil {
			frag = frag[:len(frag)-1]
		}
		for len(frag) > 0 {
			i := bytes.IndexByte(frag, '\r')
			if i < 0 {
				line = append(line, frag...)
				break
			}
			line = append(line, frag[:i]...)
			frag = frag[i+1:]
		}
		if len(line) > limit {
			return nil, errLineTooLong
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, err
		}
	}
}

// write sends b in full; false means the session is over.
func (s *session) write(b []byte) bool {
	if _, err := s.conn.Write(b); err != nil {
		s.log.Debug("control session write failed", "err", err)
		return false
	}
	return true
}

// reply sends b, or the error reply for err.
func (s *session) reply(b []byte, err error) bool {
	if err != nil {
		s.failed = true
		return s.write(ErrorReply(err))
	}
	return s.write(b)
}

func (s *session) signature(jwt string) Signature {
	return Signature{JWT: jwt, Trusted: s.origin == OriginUnix}
}

// actionOf is the authorization action of a request.
func actionOf(req Request) authz.Action {
	switch r := req.(type) {
	case PingRequest:
		return authz.ActionPing
	case TracerouteRequest:
		return authz.ActionTraceroute
	case StatusRequest:
		return authz.ActionStatus
	case ReloadRequest:
		return authz.ActionReload
	case ConnectRequest:
		return authz.ActionConnect
	case WorkSubmitRequest:
		if r.SignWork {
			return authz.ActionSignWork
		}
		return authz.ActionWorkSubmit
	case WorkResultsRequest, WorkListRequest, WorkStatusRequest:
		return authz.ActionWorkRead
	case WorkCancelRequest:
		return authz.ActionWorkCancel
	case WorkReleaseRequest:
		return authz.ActionWorkRelease
	}
	return 0
}

// handle runs one request line; false ends the session.
func (s *session) handle(ctx context.Context, line string) bool {
	req, err := ParseRequest(line)
	if err != nil {
		s.srv.stats.request(cmdInvalid, outcomeError)
		return s.write(ErrorReply(err))
	}
	cmd := commandOf(req)
	if p := s.srv.policy; p != nil {
		if err := p.Check(s.principal, actionOf(req), "control/"+s.origin.String()); err != nil {
			s.srv.stats.request(cmd, outcomeDenied)
			return s.write(ErrorReply(err))
		}
	}
	s.failed = false
	more := s.dispatch(ctx, req)
	outcome := outcomeOK
	if s.failed {
		outcome = outcomeError
	}
	s.srv.stats.request(cmd, outcome)
	return more
}

// dispatch answers one authorized request; false ends the session.
func (s *session) dispatch(ctx context.Context, req Request) bool {
	ops := s.srv.ops
	switch r := req.(type) {
	case PingRequest:
		res := ops.Ping(ctx, r.Target)
		s.failed = res.Error != "" // answered with Success false
		return s.reply(PingReply(res))
	case TracerouteRequest:
		hops, err := ops.Traceroute(ctx, r.Target)
		if err != nil {
			return s.reply(nil, err)
		}
		return s.reply(TracerouteReply(hops))
	case StatusRequest:
		st, err := ops.Status(ctx)
		if err != nil {
			return s.reply(nil, err)
		}
		return s.reply(StatusReply(st, r))
	case ReloadRequest:
		err := ops.Reload(ctx)
		s.failed = err != nil // answered with Success false
		return s.reply(ReloadReply(err))
	case ConnectRequest:
		return s.connect(ctx, r)
	case WorkSubmitRequest:
		return s.submit(ctx, r)
	case WorkResultsRequest:
		return s.results(ctx, r)
	case WorkListRequest:
		if r.HasUnitID {
			// One unit: upstream looks it up like "work status".
			st, err := ops.WorkStatus(ctx, r.UnitID)
			if err != nil {
				return s.reply(nil, err)
			}
			return s.reply(WorkListReply(map[string]WorkStatus{r.UnitID: st}))
		}
		if lr, ok := ops.(WorkListRenderer); ok {
			return s.reply(lr.WorkListReply(ctx))
		}
		list, err := ops.WorkList(ctx)
		if err != nil {
			return s.reply(nil, err)
		}
		return s.reply(WorkListReply(list))
	case WorkStatusRequest:
		st, err := ops.WorkStatus(ctx, r.UnitID)
		if err != nil {
			return s.reply(nil, err)
		}
		return s.reply(WorkStatusReply(st))
	case WorkCancelRequest:
		pending, err := ops.WorkCancel(ctx, r.UnitID, s.signature(r.Signature))
		if err != nil {
			return s.reply(nil, err)
		}
		return s.reply(UnitActionReply("cancelled", "cancel pending", pending, r.UnitID))
	case WorkReleaseRequest:
		pending, err := ops.WorkRelease(ctx, r.UnitID, r.Force, s.signature(r.Signature))
		if err != nil {
			return s.reply(nil, err)
		}
		return s.reply(UnitActionReply("released", "release pending", pending, r.UnitID))
	}
	return s.write(ErrorReply(ErrUnknownCommand))
}

// submit runs "work submit": after Ops accepts the request and allocates a
// unit, the rest of the connection up to EOF is the payload.
func (s *session) submit(ctx context.Context, r WorkSubmitRequest) bool {
	r.Signature.Trusted = s.origin == OriginUnix
	stdin := &gatedReader{r: idleReader{s}}
	var gone atomic.Bool
	created := func(unitID string) error {
		if !s.write(SubmitCreatedLine(unitID)) {
			gone.Store(true)
			return errors.New("control client went away before the payload")
		}
		stdin.open()
		return nil
	}
	res, err := s.srv.ops.WorkSubmit(ctx, r, created, stdin)
	if gone.Load() {
		return false
	}
	if err != nil {
		if stdin.opened() {
			// The payload runs to EOF, so whatever the agent did not read
			// of it must never be taken for command lines (a client still
			// sending stdin would also deadlock against our error replies
			// to them): answer and end the session.
			s.reply(nil, err)
			return false
		}
		return s.reply(nil, err)
	}
	return s.reply(SubmitReply(res))
}

// gatedReader refuses reads until the unit exists, so an Ops bug cannot
// swallow bytes that belong to the next command.
type gatedReader struct {
	mu     sync.Mutex
	r      io.Reader
	isOpen bool
}

func (g *gatedReader) open() {
	g.mu.Lock()
	g.isOpen = true
	g.mu.Unlock()
}

// opened reports whether the payload was opened (the created line sent).
func (g *gatedReader) opened() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.isOpen
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.mu.Lock()
	ok := g.isOpen
	g.mu.Unlock()
	if !ok {
		return 0, errors.New("work submit payload read before the unit was created")
	}
	return g.r.Read(p)
}

// results runs "work results": header, raw bytes until the stream ends, then
// close (only the write direction for mesh streams, as upstream does).
func (s *session) results(ctx context.Context, r WorkResultsRequest) bool {
	rc, err := s.srv.ops.WorkResults(ctx, r.UnitID, r.StartPos, s.signature(r.Signature))
	if err != nil {
		return s.reply(nil, err)
	}
	defer rc.Close()
	if !s.write(ResultsHeader(r.UnitID)) {
		return false
	}
	if _, err := io.Copy(writerOnly{s.conn}, rc); err != nil {
		s.log.Debug("control results stream ended early", "unit", r.UnitID, "err", err)
		return false
	}
	if s.origin != OriginMesh {
		return false
	}
	// A mesh stream's Close ends only our direction upstream; the session
	// then reads on until the peer closes its side.
	closeWrite(s.conn)
	return true
}

// writerOnly hides ReadFrom so io.Copy stays a plain read/write loop.
type writerOnly struct{ io.Writer }

// connect runs "connect": dial, "Connecting", then bridge both ways.
func (s *session) connect(ctx context.Context, r ConnectRequest) bool {
	remote, err := s.srv.ops.Connect(ctx, r.Node, r.Service, r.TLS)
	if err != nil {
		return s.reply(nil, err)
	}
	defer remote.Close()
	if !s.write(connectingLine) {
		return false
	}
	s.readDeadline(0) // a bridge may idle as long as both ends like
	bridge(ctx, s.conn, s.br, remote)
	return false
}

// closeWrite half-closes c when it can, else closes it.
func closeWrite(c io.Closer) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		return
	}
	_ = c.Close()
}

// bridge copies client→remote and remote→client until both directions end.
// Each direction half-closes its destination when its source ends, so EOF
// propagates both ways; ctx cancellation closes both ends.
func bridge(ctx context.Context, client net.Conn, clientR io.Reader, remote net.Conn) {
	abort := func() {
		_ = client.Close()
		_ = remote.Close()
	}
	stop := context.AfterFunc(ctx, abort)
	defer stop()
	var wg sync.WaitGroup
	pipe := func(dst net.Conn, src io.Reader) {
		if _, err := io.Copy(writerOnly{dst}, src); err != nil {
			abort() // a failed direction ends the bridge, not just one side
			return
		}
		closeWrite(dst)
	}
	wg.Go(func() { pipe(remote, clientR) })
	wg.Go(func() { pipe(client, remote) })
	wg.Wait()
}
