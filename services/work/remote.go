package work

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/receptor-mesh/receptor/services/work/unit"
)

// MeshDialer reaches services on other nodes of the mesh.
// worker.MeshDialer adapts a meshclient.Client (the router's MeshService)
// to it; a program owning a *mesh.Node can wrap stream.Dial the same way.
type MeshDialer interface {
	// Dial opens a stream to service on node, with the named tls-client
	// config ("" = the mesh default). The returned conn must support
	// CloseWrite (half-close), as mesh streams do.
	Dial(ctx context.Context, node, service, tlsClientName string) (net.Conn, error)
	NodeID() string
}

const (
	controlService = "control"
	// greetingTimeout bounds the wait for a control greeting (upstream 5 s).
	greetingTimeout = 5 * time.Second
	// maxReplyLine bounds a control reply line from another node.
	maxReplyLine = 1 << 20
	// statusInterval is how often a remote unit's status is asked for;
	// upstream peers offer no push, so this is the protocol.
	statusInterval = time.Second
	backoffFirst   = time.Second
	backoffMax     = 60 * time.Second
	// maxDialsPerNode bounds the connections to one remote node that are
	// being set up (dial and greeting) at once. A burst of remote submits
	// otherwise starts hundreds of QUIC handshakes toward one listener,
	// whose accept queue (quic-go: 32) then refuses connections with
	// CONNECTION_REFUSED and whose greetings miss greetingTimeout under
	// the CPU load. Established connections do not hold a slot.
	maxDialsPerNode = 16
)

var unitIDPattern = regexp.MustCompile(`with ID ([a-zA-Z0-9]+)\.`)

// remoteExtra is a remote unit's ExtraData, member order as upstream.
type remoteExtra struct {
	RemoteNode     string            `json:"RemoteNode"`
	RemoteWorkType string            `json:"RemoteWorkType"`
	RemoteParams   map[string]string `json:"RemoteParams"`
	RemoteUnitID   string            `json:"RemoteUnitID"`
	RemoteStarted  bool              `json:"RemoteStarted"`
	LocalCancelled bool              `json:"LocalCancelled"`
	LocalReleased  bool              `json:"LocalReleased"`
	SignWork       bool              `json:"SignWork"`
	TLSClient      string            `json:"TLSClient"`
	Expiration     time.Time         `json:"Expiration"`
}

func parseRemoteExtra(raw json.RawMessage) (remoteExtra, error) {
	var ex remoteExtra
	if len(raw) == 0 {
		return ex, errors.New("remote unit has no ExtraData")
	}
	if err := json.Unmarshal(raw, &ex); err != nil {
		return ex, fmt.Errorf("parsing remote unit ExtraData: %w", err)
	}
	return ex, nil
}

// redactRemoteExtra removes secret_* params from replies; the status file
// keeps them.
func redactRemoteExtra(raw json.RawMessage) json.RawMessage {
	ex, err := parseRemoteExtra(raw)
	if err != nil {
		return raw
	}
	for k := range ex.RemoteParams {
		if isSecret(k) {
			delete(ex.RemoteParams, k)
		}
	}
	b, err := json.Marshal(ex)
	if err != nil {
		return raw
	}
	return b
}

func isSecret(key string) bool { return strings.HasPrefix(strings.ToLower(key), "secret_") }

// connError marks failures to reach the remote control service, which are
// retried in the background; other failures are final.
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

func isConnError(err error) bool {
	var ce *connError
	return errors.As(err, &ce)
}

// remoteUnit is the agent's side of a unit running on another node.
type remoteUnit struct {
	a *Agent
	e *entry

	mu     sync.Mutex
	cancel context.CancelFunc // stops the current background activity
	done   chan struct{}      // closed when that activity has ended
}

func (r *remoteUnit) extra() (remoteExtra, unit.Status, error) {
	st, err := r.e.dir.ReadStatus()
	if err != nil {
		return remoteExtra{}, st, err
	}
	ex, err := parseRemoteExtra(st.ExtraData)
	return ex, st, err
}

func (r *remoteUnit) updateExtra(fn func(*remoteExtra)) error {
	var perr error
	_, err := r.e.dir.Update(func(st *unit.Status) {
		ex, err := parseRemoteExtra(st.ExtraData)
		if err != nil {
			perr = err
			return
		}
		fn(&ex)
		b, err := json.Marshal(ex)
		if err != nil {
			perr = err
			return
		}
		st.ExtraData = b
	})
	if err != nil {
		return err
	}
	return perr
}

// background replaces the unit's background activity with fn.
func (r *remoteUnit) background(fn func(ctx context.Context)) {
	r.stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithCancel(r.a.ctx)
	done := make(chan struct{})
	r.cancel, r.done = cancel, done
	r.a.bg.Add(1)
	go func() {
		defer r.a.bg.Done()
		defer close(done)
		defer cancel()
		fn(ctx)
	}()
}

// stop ends the background activity and waits for it.
func (r *remoteUnit) stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.cancel, r.done = nil, nil
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func (a *Agent) submitRemote(ctx context.Context, req SubmitRequest, stdin io.Reader) (SubmitResult, error) {
	t := a.types[req.WorkType]
	if err := a.checkSignature(t != nil && t.VerifySignature(), req.Auth); err != nil {
		return SubmitResult{}, err
	}
	if a.opts.Mesh == nil {
		return SubmitResult{}, newError(ErrRemote, "remote work is not available: no mesh connection", nil)
	}
	if req.TLSClient != "" && (a.opts.KnownTLSClient == nil || !a.opts.KnownTLSClient(req.TLSClient)) {
		return SubmitResult{}, newError(ErrInvalidRequest, "unknown TLS config "+req.TLSClient, nil)
	}
	if req.TLSClient == "" {
		for k := range req.Params {
			if isSecret(k) {
				return SubmitResult{}, errSecretsNoTLS
			}
		}
	}
	var expiration time.Time
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil {
			return SubmitResult{}, invalid(err)
		}
		expiration = time.Now().Add(d)
		if req.SignWork && a.opts.Signer != nil && d > a.opts.Signer.Lifetime() {
			a.log.Warn("remote work ttl exceeds the signing token lifetime", "ttl", d, "lifetime", a.opts.Signer.Lifetime())
		}
	}
	params := req.Params
	if params == nil {
		params = map[string]string{}
	}
	ex := remoteExtra{
		RemoteNode: req.Node, RemoteWorkType: req.WorkType, RemoteParams: params,
		SignWork: req.SignWork, TLSClient: req.TLSClient, Expiration: expiration,
	}
	raw, err := json.Marshal(ex)
	if err != nil {
		return SubmitResult{}, fmt.Errorf("encoding remote unit: %w", err)
	}
	e, err := a.allocate(RemoteWorkType, raw)
	if err != nil {
		return SubmitResult{}, err
	}
	r := &remoteUnit{a: a, e: e}
	e.remote = r
	if err := a.receiveStdin(e, req, stdin); err != nil {
		return SubmitResult{}, err
	}
	a.setStatus(e, unit.Pending, "Starting Worker")
	err = r.start(ctx)
	switch {
	case err == nil:
		r.background(r.monitor)
		return SubmitResult{Result: ResultStarted, UnitID: e.id}, nil
	case isConnError(err):
		a.log.Info("remote node unreachable; retrying in the background", "unit", e.id, "node", req.Node, "err", err)
		r.background(r.retryStart)
		return SubmitResult{Result: ResultSubmitted, UnitID: e.id}, nil
	default:
		a.setStatus(e, unit.Failed, "Error starting worker: "+err.Error())
		return SubmitResult{}, newError(ErrRemote, err.Error(), err)
	}
}

// controlConn is a control-protocol session with another node.
type controlConn struct {
	net.Conn
	r    *bufio.Reader
	stop func() bool // unregisters the close-on-cancel hook
}

// Close closes the session and drops its context hook.
func (c *controlConn) Close() error {
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

func (r *remoteUnit) dial(ctx context.Context, ex remoteExtra) (*controlConn, error) {
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
	c := &controlConn{Conn: conn, r: bufio.NewReaderSize(conn, 4096)}
	_ = conn.SetReadDeadline(time.Now().Add(greetingTimeout))
	line, err := c.readLine()
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, &connError{fmt.Errorf("reading greeting from %s: %w", ex.RemoteNode, err)}
	}
	if !strings.Contains(line, ex.RemoteNode) {
		conn.Close()
		return nil, &connError{fmt.Errorf("while expecting node ID %s, got message: %s", ex.RemoteNode, strings.TrimRight(line, "\n"))}
	}
	// Everything after the greeting ends with the context.
	c.stop = context.AfterFunc(ctx, func() { conn.Close() })
	return c, nil
}

// readLine reads one reply line (with its newline), bounded.
func (c *controlConn) readLine() (string, error) {
	var buf []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxReplyLine {
			return "", fmt.Errorf("reply line longer than %d bytes", maxReplyLine)
		}
		if err == nil {
			return string(buf), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return string(buf), err
		}
	}
}

func (c *controlConn) sendJSON(v map[string]string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = c.Write(append(b, '\n'))
	return err
}

func (r *remoteUnit) sign(ex remoteExtra, req map[string]string) error {
	if !ex.SignWork {
		return nil
	}
	tok, err := r.a.opts.Signer.Sign(ex.RemoteNode)
	if err != nil {
		return err
	}
	req["signature"] = tok
	return nil
}

// start submits the unit to the remote node (docs/protocol.md §14.1 steps 1-4).
func (r *remoteUnit) start(ctx context.Context) error {
	ex, _, err := r.extra()
	if err != nil {
		return err
	}
	req := make(map[string]string, len(ex.RemoteParams)+6)
	for k, v := range ex.RemoteParams {
		req[k] = v
	}
	req["command"], req["subcommand"] = "work", "submit"
	req["node"], req["worktype"], req["tlsclient"] = ex.RemoteNode, ex.RemoteWorkType, ex.TLSClient
	if err := r.sign(ex, req); err != nil {
		return err
	}
	c, err := r.dial(ctx, ex)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.sendJSON(req); err != nil {
		return fmt.Errorf("write error sending to %s: %w", ex.RemoteNode, err)
	}
	line, err := c.readLine()
	if err != nil {
		return fmt.Errorf("read error reading from %s: %w", ex.RemoteNode, err)
	}
	m := unitIDPattern.FindStringSubmatch(line)
	if m == nil {
		return fmt.Errorf("could not parse response: %s", strings.TrimRight(line, "\n"))
	}
	if err := r.updateExtra(func(x *remoteExtra) { x.RemoteUnitID = m[1] }); err != nil {
		return err
	}
	stdin, err := os.Open(r.e.dir.Path(unit.StdinFile))
	if err != nil {
		return fmt.Errorf("error opening stdin file: %w", err)
	}
	_, err = io.Copy(c, stdin)
	stdin.Close()
	if err == nil {
		err = closeWrite(c.Conn)
	}
	if err != nil {
		return fmt.Errorf("error sending stdin file: %w", err)
	}
	line, err = c.readLine()
	if err != nil && line == "" {
		err = fmt.Errorf("read error reading from %s: %w", ex.RemoteNode, err)
		// The remote has our stdin and most likely started the unit; only
		// the reply was lost (e.g. the peer tore the connection down
		// before our side had read it). Submitting again would run the
		// work twice, so ask whether the unit exists instead.
		if !r.remoteUnitExists(ctx, ex, m[1]) {
			return err
		}
		r.a.log.Warn("remote submit reply lost; the remote unit exists, following it", "unit", r.e.id, "node", ex.RemoteNode, "remote_unit", m[1], "err", err)
		line = ""
	}
	if _, msg, ok := strings.Cut(line, "ERROR: "); ok {
		return fmt.Errorf("error from remote: %s", strings.TrimRight(msg, "\n"))
	}
	return r.updateExtra(func(x *remoteExtra) { x.RemoteStarted = true })
}

// remoteUnitExists asks the remote node, on a new connection, for the
// status of unit id; false when it does not know the unit or cannot be
// asked.
func (r *remoteUnit) remoteUnitExists(ctx context.Context, ex remoteExtra, id string) bool {
	c, err := r.dial(ctx, ex)
	if err != nil {
		return false
	}
	defer c.Close()
	if _, err := c.Write([]byte("work status " + id + "\n")); err != nil {
		return false
	}
	line, err := c.readLine()
	if err != nil {
		return false
	}
	var st struct{ State *unit.State }
	return json.Unmarshal([]byte(line), &st) == nil && st.State != nil
}

func closeWrite(c net.Conn) error {
	cw, ok := c.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("connection %T cannot half-close", c)
	}
	return cw.CloseWrite()
}

// retryStart retries the submission with backoff until it succeeds, the
// ttl expires, or a TLS failure makes retrying pointless.
func (r *remoteUnit) retryStart(ctx context.Context) {
	delay := backoffFirst
	for {
		ex, _, err := r.extra()
		if err != nil {
			r.a.log.Error("remote unit", "unit", r.e.id, "err", err)
			return
		}
		wait := delay
		if !ex.Expiration.IsZero() {
			left := time.Until(ex.Expiration)
			if left <= 0 {
				r.a.setStatus(r.e, unit.Failed, "Work unit expired on "+ex.Expiration.Local().Format("Mon Jan 2 15:04:05"))
				return
			}
			wait = min(wait, left)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !ex.Expiration.IsZero() && time.Now().After(ex.Expiration) {
			continue
		}
		err = r.start(ctx)
		switch {
		case err == nil:
			r.monitor(ctx)
			return
		case strings.Contains(err.Error(), "CRYPTO_ERROR"):
			r.a.setStatus(r.e, unit.Failed, "TLS error connecting to remote service: "+err.Error())
			return
		case !isConnError(err):
			r.a.setStatus(r.e, unit.Failed, "Error starting worker: "+err.Error())
			return
		}
		delay = min(time.Duration(float64(delay)*1.5), backoffMax)
	}
}

// monitor copies the remote unit's status and output until the local copy
// is complete (docs/protocol.md §14.2).
func (r *remoteUnit) monitor(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// pollNow asks the status loop for an early poll: when a results
	// stream ends, the remote unit has most likely finished, and waiting
	// for the next periodic poll would add up to statusInterval to every
	// remote unit's completion.
	pollNow := make(chan struct{}, 1)
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		r.statusLoop(ctx, pollNow)
		// The remote unit is gone or monitoring failed for good; results
		// cannot progress either.
		cancel()
	}()
	r.resultsLoop(ctx, pollNow)
	cancel()
	<-statusDone
}

// localFinished: complete and every byte is here; or canceled remotely and
// the byte counts match (upstream never ends such streams, quirk Q4 of docs/protocol.md §15.1).
func (r *remoteUnit) localFinished() bool {
	st, err := r.e.dir.ReadStatus()
	if err != nil {
		return true
	}
	size := r.e.dir.StdoutSize()
	return (st.State.Complete() || st.State == unit.Canceled) && size >= st.StdoutSize
}

// statusLoop asks for the remote status once a second, or sooner when
// pollNow fires, on the shared status sessions of the remote node, until
// monitoring is over.
func (r *remoteUnit) statusLoop(ctx context.Context, pollNow <-chan struct{}) {
	delay := backoffFirst
	failures := 0
	for ctx.Err() == nil {
		ex, _, err := r.extra()
		if err != nil {
			return
		}
		line, err := r.queryStatus(ctx, ex)
		if err != nil {
			if !sleepCtx(ctx, delay) {
				return
			}
			delay = min(time.Duration(float64(delay)*1.5), backoffMax)
			continue
		}
		delay = backoffFirst
		if r.applyStatus(line, &failures) {
			return
		}
		t := time.NewTimer(statusInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-pollNow:
			t.Stop()
		case <-t.C:
		}
	}
}

// applyStatus copies one status reply into the local unit; true means
// monitoring is over.
func (r *remoteUnit) applyStatus(line string, failures *int) bool {
	if strings.HasPrefix(line, "ERROR") {
		if strings.Contains(line, "unknown work unit") {
			cur, _, _ := r.extra()
			if !cur.LocalReleased {
				r.a.setStatus(r.e, unit.Failed, "Remote work unit is gone")
			}
		} else {
			r.a.log.Warn("remote status", "unit", r.e.id, "reply", strings.TrimSpace(line))
		}
		return true
	}
	var rs struct {
		State      unit.State
		Detail     string
		StdoutSize int64
	}
	if err := json.Unmarshal([]byte(line), &rs); err != nil {
		r.a.log.Warn("remote status unparsable", "unit", r.e.id, "err", err)
		return true
	}
	if _, err := r.e.dir.Update(func(st *unit.Status) {
		st.State, st.Detail, st.StdoutSize = rs.State, rs.Detail, rs.StdoutSize
	}); err != nil {
		*failures++
		if *failures > 3 {
			return true
		}
	} else {
		*failures = 0
	}
	return r.localFinished()
}

func (r *remoteUnit) resultsLoop(ctx context.Context, pollNow chan<- struct{}) {
	delay := backoffFirst
	for ctx.Err() == nil {
		if r.localFinished() {
			return
		}
		ex, st, err := r.extra()
		if err != nil {
			return
		}
		if st.State == unit.Canceled || (st.State.Complete() && r.e.dir.StdoutSize() >= st.StdoutSize) {
			// Nothing more to fetch now; wait for the status to move.
			if !r.waitStatusMove(ctx, st) {
				return
			}
			continue
		}
		n, err := r.fetchResults(ctx, ex)
		if err != nil {
			if !sleepCtx(ctx, delay) {
				return
			}
			delay = min(time.Duration(float64(delay)*1.5), backoffMax)
			continue
		}
		delay = backoffFirst
		select {
		case pollNow <- struct{}{}:
		default: // a poll is already pending
		}
		if n == 0 {
			// The remote ended a stream without new bytes (it is complete
			// but our copy of its status is behind, e.g. while the status
			// connection recovers from a path change); wait for the
			// status to move rather than asking again at once.
			if !r.waitStatusMove(ctx, st) {
				return
			}
		}
	}
}

// waitStatusMove waits until the unit's State or StdoutSize differs from
// before, or the safety interval passes; false when ctx ended. Change
// notifications alone are not enough: they also fire for our own file
// activity (closing stdout after an empty fetch is an inotify
// IN_CLOSE_WRITE), which would otherwise re-ask the remote in a tight loop.
func (r *remoteUnit) waitStatusMove(ctx context.Context, before unit.Status) bool {
	deadline := safetyPoll()
	for {
		changed := r.e.changes()
		st, err := r.e.dir.ReadStatus()
		if err != nil || st.State != before.State || st.StdoutSize != before.StdoutSize {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline:
			return true
		case <-changed:
		}
	}
}

// fetchResults streams the remote stdout from the local size onwards and
// appends it to the local stdout, until the remote ends the stream.
func (r *remoteUnit) fetchResults(ctx context.Context, ex remoteExtra) (int64, error) {
	out, err := os.OpenFile(r.e.dir.Path(unit.StdoutFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("opening stdout of unit %s: %w", r.e.id, err)
	}
	defer out.Close()
	fi, err := out.Stat()
	if err != nil {
		return 0, err
	}
	c, err := r.dial(ctx, ex)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	// startpos must be a JSON number (upstream rejects strings).
	req := fmt.Sprintf(`{"command":"work","subcommand":"results","unitid":%q,"startpos":%d`, ex.RemoteUnitID, fi.Size())
	if ex.SignWork {
		tok, err := r.a.opts.Signer.Sign(ex.RemoteNode)
		if err != nil {
			return 0, err
		}
		req += fmt.Sprintf(`,"signature":%q`, tok)
	}
	if _, err := c.Write([]byte(req + "}\n")); err != nil {
		return 0, err
	}
	line, err := c.readLine()
	if err != nil {
		return 0, err
	}
	if !strings.Contains(line, "Streaming results") {
		return 0, fmt.Errorf("results of remote unit %s: %s", ex.RemoteUnitID, strings.TrimSpace(line))
	}
	_ = closeWrite(c.Conn)
	return io.Copy(out, c.r)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// cancelRemote implements cancel, release and force-release of a remote
// unit (docs/protocol.md §14.2).
func (a *Agent) cancelRemote(ctx context.Context, e *entry, release, force bool) (CancelResult, error) {
	r := e.remote
	if err := r.updateExtra(func(x *remoteExtra) {
		x.LocalCancelled = true
		x.LocalReleased = x.LocalReleased || release
	}); err != nil && !force {
		return CancelResult{}, err
	}
	ex, _, err := r.extra()
	if err != nil || !ex.RemoteStarted {
		r.stop()
		if !release {
			_, _ = e.dir.Update(func(st *unit.Status) {
				st.State, st.Detail, st.StdoutSize = unit.Failed, "Locally Cancelled", 0
			})
		}
		e.notify()
		return CancelResult{}, nil
	}
	err = r.sendCancel(ctx, ex, release)
	switch {
	case force:
		r.stop()
		return CancelResult{}, nil
	case err == nil:
		if release {
			r.stop()
		} else {
			r.background(r.monitor)
		}
		return CancelResult{}, nil
	case isConnError(err):
		r.background(func(ctx context.Context) { r.retryCancel(ctx, release) })
		return CancelResult{Pending: true}, nil
	default:
		return CancelResult{}, newError(ErrRemote, err.Error(), err)
	}
}

// sendCancel makes one attempt to send cancel or release to the remote.
func (r *remoteUnit) sendCancel(ctx context.Context, ex remoteExtra, release bool) error {
	sub := "cancel"
	if release {
		sub = "release"
	}
	req := map[string]string{"command": "work", "subcommand": sub, "unitid": ex.RemoteUnitID}
	if err := r.sign(ex, req); err != nil {
		return err
	}
	c, err := r.dial(ctx, ex)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.sendJSON(req); err != nil {
		return &connError{err}
	}
	line, err := c.readLine()
	if err != nil && line == "" {
		return &connError{err}
	}
	if strings.HasPrefix(line, "ERROR") {
		// Upstream keeps the remote line after its first 6 bytes, leading
		// space and newline included; AWX matches the double space.
		rest := ""
		if len(line) > 6 {
			rest = line[6:]
		}
		return errors.New("error cancelling remote unit: " + rest)
	}
	return nil
}

// retryCancel resends a pending cancel or release until the remote takes
// it; a released unit is then deleted.
func (r *remoteUnit) retryCancel(ctx context.Context, release bool) {
	delay := backoffFirst
	for {
		if !sleepCtx(ctx, delay) {
			return
		}
		ex, _, err := r.extra()
		if err != nil {
			return
		}
		err = r.sendCancel(ctx, ex, release)
		if isConnError(err) {
			delay = min(time.Duration(float64(delay)*1.5), backoffMax)
			continue
		}
		if err != nil {
			r.a.log.Warn("remote cancel failed", "unit", r.e.id, "err", err)
		}
		if release {
			// Deleting runs outside this goroutine: remove waits for the
			// background activity, which is us.
			r.a.bg.Add(1)
			go func() {
				defer r.a.bg.Done()
				r.e.op.Lock()
				defer r.e.op.Unlock()
				r.stop()
				_ = r.a.remove(r.a.ctx, r.e, true)
			}()
			return
		}
		r.monitor(ctx)
		return
	}
}

// restartRemote resumes a remote unit found on disk (docs/protocol.md §14.2 Restart).
func (a *Agent) restartRemote(e *entry, st unit.Status) {
	r := &remoteUnit{a: a, e: e}
	e.remote = r
	ex, err := parseRemoteExtra(st.ExtraData)
	if err != nil {
		a.setStatus(e, unit.Failed, "Failed to restart: "+err.Error())
		return
	}
	switch {
	case !ex.RemoteStarted:
		if !st.State.Complete() {
			a.setStatus(e, unit.Failed, "Failed to restart: remote work had not previously started")
		}
	case ex.LocalReleased || ex.LocalCancelled:
		r.background(func(ctx context.Context) { r.retryCancel(ctx, ex.LocalReleased) })
	case !r.localFinished():
		r.background(r.monitor)
	}
}

// AdoptRemote creates a local remote unit for a unit already running on
// node (remoteUnitID) and follows it like one submitted from here. It
// returns the local unit ID.
func (a *Agent) AdoptRemote(node, remoteUnitID, workType, tlsClient string, signWork bool) (string, error) {
	if a.opts.Mesh == nil {
		return "", newError(ErrRemote, "remote work is not available: no mesh connection", nil)
	}
	if signWork && a.opts.Signer == nil {
		return "", newError(ErrInvalidRequest, "cannot sign work: signing key is empty", nil)
	}
	if !unit.ValidID(remoteUnitID) {
		return "", newError(ErrInvalidRequest, "invalid remote unit ID "+remoteUnitID, nil)
	}
	if tlsClient != "" && (a.opts.KnownTLSClient == nil || !a.opts.KnownTLSClient(tlsClient)) {
		return "", newError(ErrInvalidRequest, "unknown TLS config "+tlsClient, nil)
	}
	raw, err := json.Marshal(remoteExtra{
		RemoteNode: node, RemoteWorkType: workType, RemoteParams: map[string]string{},
		RemoteUnitID: remoteUnitID, RemoteStarted: true, TLSClient: tlsClient, SignWork: signWork,
	})
	if err != nil {
		return "", err
	}
	e, err := a.allocate(RemoteWorkType, raw)
	if err != nil {
		return "", err
	}
	r := &remoteUnit{a: a, e: e}
	e.remote = r
	if err := os.WriteFile(e.dir.Path(unit.StdinFile), nil, 0o600); err != nil {
		return "", fmt.Errorf("adopting remote unit %s: %w", remoteUnitID, err)
	}
	r.background(r.monitor)
	return e.id, nil
}
