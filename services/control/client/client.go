// Package client is the one client of the receptorctl-compatible control
// protocol: dial a control socket, read the greeting, send commands and read
// their JSON or "ERROR: " replies, submit work with a payload, stream results
// (this file, receptorctl's way); and the requests one node makes to
// another node's control service for remote work, with upstream's reply
// handling (peer.go).
package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// MaxReplyBytes bounds one reply line (a "work list" of many units is big).
const MaxReplyBytes = 64 << 20

// RemoteError is an "ERROR: <Message>" reply.
type RemoteError struct{ Message string }

func (e *RemoteError) Error() string { return e.Message }

// Conn is one control session.
type Conn struct {
	conn     net.Conn
	br       *bufio.Reader
	nodeID   string
	maxReply int // bound of one reply line
}

// Dial connects to a control service address in receptorctl's grammar:
// "unix:path", "unix://path" or a plain path; "tcp:host:port" or
// "tcp://host:port"; "tls:host:port" or "tls://host:port" (tlsConfig
// required; its ServerName defaults to host). It then reads the greeting.
func Dial(ctx context.Context, address string, tlsConfig *tls.Config) (*Conn, error) {
	network, addr, err := ParseAddress(address)
	if err != nil {
		return nil, err
	}
	var c net.Conn
	switch network {
	case "tls":
		if tlsConfig == nil {
			return nil, fmt.Errorf("dial %s: tls address needs a TLS config", address)
		}
		cfg := tlsConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		d := tls.Dialer{Config: cfg}
		c, err = d.DialContext(ctx, "tcp", addr)
	default:
		var d net.Dialer
		c, err = d.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial control service %s: %w", address, err)
	}
	cc, err := NewConn(ctx, c)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return cc, nil
}

var (
	tcpAddrRE  = regexp.MustCompile(`^(tcp|tls):(?://)?([a-zA-Z0-9\-.:]+):(\d+)$`)
	unixAddrRE = regexp.MustCompile(`^(?:unix:(?://)?)?([^:]+)$`)
)

// ParseAddress splits a control service address (the grammar of Dial) into
// its network ("unix", "tcp" or "tls") and address.
func ParseAddress(address string) (network, addr string, err error) {
	if m := tcpAddrRE.FindStringSubmatch(address); m != nil {
		return m[1], net.JoinHostPort(m[2], m[3]), nil
	}
	if m := unixAddrRE.FindStringSubmatch(address); m != nil {
		return "unix", m[1], nil
	}
	return "", "", fmt.Errorf("invalid socket address %q", address)
}

var greetingRE = regexp.MustCompile(`^Receptor Control, node (.+)$`)

// NewConn starts a session on an established connection (for example a
// mesh stream, or the bridge after Connect) by reading the greeting.
func NewConn(ctx context.Context, c net.Conn) (*Conn, error) {
	cc := &Conn{conn: c, br: bufio.NewReader(c), maxReply: MaxReplyBytes}
	line, err := cc.ReadLine(ctx)
	if err != nil {
		return nil, fmt.Errorf("read control greeting: %w", err)
	}
	m := greetingRE.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return nil, fmt.Errorf("not a control service greeting: %q", line)
	}
	cc.nodeID = m[1]
	return cc, nil
}

// NodeID is the node named in the greeting.
func (c *Conn) NodeID() string { return c.nodeID }

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }

// guard makes ctx's deadline and cancellation interrupt blocking I/O. After
// a cancellation the Conn is unusable (the deadline may stay set): close it.
func (c *Conn) guard(ctx context.Context) (done func()) {
	if d, ok := ctx.Deadline(); ok {
		_ = c.conn.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.conn.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		_ = c.conn.SetDeadline(time.Time{})
	}
}

func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	return err
}

// ReadLine reads one line and returns it without "\n" or "\r".
func (c *Conn) ReadLine(ctx context.Context) (string, error) {
	line, err := c.readRaw(ctx)
	if err != nil {
		return "", ctxErr(ctx, err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// readRaw reads one line as sent, "\n" included; with an error it returns
// what was read of the line (nothing when the line is too long).
func (c *Conn) readRaw(ctx context.Context) (string, error) {
	defer c.guard(ctx)()
	var sb strings.Builder
	for {
		frag, err := c.br.ReadSlice('\n')
		sb.Write(frag)
		if sb.Len() > c.maxReply {
			return "", fmt.Errorf("reply line longer than %d bytes", c.maxReply)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return sb.String(), err
	}
}

// WriteLine sends line plus "\n".
func (c *Conn) WriteLine(ctx context.Context, line string) error {
	if err := c.writeRaw(ctx, line+"\n"); err != nil {
		return ctxErr(ctx, fmt.Errorf("write control command: %w", err))
	}
	return nil
}

// writeRaw sends s in one write.
func (c *Conn) writeRaw(ctx context.Context, s string) error {
	defer c.guard(ctx)()
	_, err := io.WriteString(c.conn, s)
	return err
}

// replyError turns an "ERROR: " line into a *RemoteError.
func replyError(line string) error {
	if msg, ok := strings.CutPrefix(line, "ERROR: "); ok {
		return &RemoteError{Message: msg}
	}
	return nil
}

// Command sends one text or JSON command line and returns its JSON reply.
func (c *Conn) Command(ctx context.Context, cmd string) (json.RawMessage, error) {
	if err := c.WriteLine(ctx, cmd); err != nil {
		return nil, err
	}
	line, err := c.ReadLine(ctx)
	if err != nil {
		return nil, fmt.Errorf("read reply to %q: %w", truncate(cmd), err)
	}
	if err := replyError(line); err != nil {
		return nil, err
	}
	if !json.Valid([]byte(line)) {
		return nil, fmt.Errorf("reply to %q is not JSON: %q", truncate(cmd), truncate(line))
	}
	return json.RawMessage(line), nil
}

// CommandJSON marshals req as a JSON command and decodes the reply into out
// (out may be nil).
func (c *Conn) CommandJSON(ctx context.Context, req any, out any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("marshal control command: %w", err)
	}
	raw, err := c.Command(ctx, string(b))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode reply to %s: %w", truncate(string(b)), err)
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// SubmitResult is the final reply of a work submit.
type SubmitResult struct {
	Result string `json:"result"` // "Job Started" or "Job Submitted"
	UnitID string `json:"unitid"`
}

var createdRE = regexp.MustCompile(`^Work unit created with ID (.+)\. Send stdin data and EOF\.$`)

// SubmitWork sends a JSON work submit with members (node, worktype and any
// of tlsclient, ttl, signwork, signature and work params; command and
// subcommand are added), streams payload, half-closes and reads the final
// reply. The session is finished afterwards: close the Conn.
func (c *Conn) SubmitWork(ctx context.Context, members map[string]string, payload io.Reader) (SubmitResult, error) {
	b, err := submitRequest(members)
	if err != nil {
		return SubmitResult{}, err
	}
	if err := c.WriteLine(ctx, b); err != nil {
		return SubmitResult{}, err
	}
	line, err := c.ReadLine(ctx)
	if err != nil {
		return SubmitResult{}, fmt.Errorf("read work submit reply: %w", err)
	}
	if err := replyError(line); err != nil {
		return SubmitResult{}, err
	}
	if createdRE.FindStringSubmatch(line) == nil {
		return SubmitResult{}, fmt.Errorf("failed to start work unit: %q", truncate(line))
	}
	if err := c.sendPayload(ctx, payload); err != nil {
		return SubmitResult{}, err
	}
	line, err = c.ReadLine(ctx)
	if err != nil {
		return SubmitResult{}, fmt.Errorf("read work submit result: %w", err)
	}
	if err := replyError(line); err != nil {
		return SubmitResult{}, err
	}
	var res SubmitResult
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		return SubmitResult{}, fmt.Errorf("decode work submit result %q: %w", truncate(line), err)
	}
	return res, nil
}

// submitRequest is the JSON line of a work submit: members plus command and
// subcommand, keys in sorted order (encoding/json), as upstream sends it.
func submitRequest(members map[string]string) (string, error) {
	req := make(map[string]string, len(members)+2)
	for k, v := range members {
		req[k] = v
	}
	req["command"] = "work"
	req["subcommand"] = "submit"
	b, err := json.Marshal(req)
	if err != nil {
		return "", fmt.Errorf("marshal work submit: %w", err)
	}
	return string(b), nil
}

func (c *Conn) sendPayload(ctx context.Context, payload io.Reader) error {
	if err := c.SendPayload(ctx, payload); err != nil {
		return ctxErr(ctx, fmt.Errorf("send work payload: %w", err))
	}
	return nil
}

// SendPayload copies payload (nil: none) to the node and half-closes the
// connection, which ends the payload of a work submit. Errors are the
// connection's own (see closeWrite for TLS).
func (c *Conn) SendPayload(ctx context.Context, payload io.Reader) error {
	defer c.guard(ctx)()
	if payload != nil {
		if _, err := io.Copy(c.conn, payload); err != nil {
			return err
		}
	}
	return c.closeWrite()
}

// closeWrite half-closes the connection. For TLS it half-closes the TCP
// socket underneath without close_notify, as receptorctl does.
func (c *Conn) closeWrite() error {
	conn := c.conn
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	cw, ok := conn.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("connection %T cannot half-close", conn)
	}
	return cw.CloseWrite()
}

var streamingRE = regexp.MustCompile(`^Streaming results for work unit (.+)$`)

// Results asks for a unit's results from startPos, half-closes and returns
// the raw stream; it ends when the server closes. Close the Conn to stop.
func (c *Conn) Results(ctx context.Context, unitID string, startPos int64) (io.Reader, error) {
	if err := c.WriteLine(ctx, "work results "+unitID+" "+strconv.FormatInt(startPos, 10)); err != nil {
		return nil, err
	}
	line, err := c.ReadLine(ctx)
	if err != nil {
		return nil, fmt.Errorf("read work results header: %w", err)
	}
	if err := replyError(line); err != nil {
		return nil, err
	}
	if streamingRE.FindStringSubmatch(line) == nil {
		return nil, fmt.Errorf("failed to get results: %q", truncate(line))
	}
	if err := c.closeWrite(); err != nil {
		return nil, fmt.Errorf("half-close after work results request: %w", err)
	}
	return c.br, nil
}

// Connect asks the node to bridge this session to service on node (tlsName
// "" = mesh default). On success the Conn's Read/Write carry the bridged
// stream; NewConn(ctx, conn) on it speaks to a remote control service.
func (c *Conn) Connect(ctx context.Context, node, service, tlsName string) (net.Conn, error) {
	if err := c.WriteLine(ctx, "connect "+node+" "+service+" "+tlsName); err != nil {
		return nil, err
	}
	line, err := c.ReadLine(ctx)
	if err != nil {
		return nil, fmt.Errorf("read connect reply: %w", err)
	}
	if err := replyError(line); err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "Connecting") {
		return nil, fmt.Errorf("connect %s %s: unexpected reply %q", node, service, truncate(line))
	}
	return bufferedConn{Conn: c.conn, r: c.br}, nil
}

// bufferedConn reads through the session's buffer so no bytes are lost.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// CloseWrite half-closes the underlying connection when it can.
func (b bufferedConn) CloseWrite() error {
	cw, ok := b.Conn.(interface{ CloseWrite() error })
	if !ok {
		return fmt.Errorf("connection %T cannot half-close", b.Conn)
	}
	return cw.CloseWrite()
}
