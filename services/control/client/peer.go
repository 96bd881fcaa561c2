package client

// Peer sessions: the requests the work agent makes to another node's
// control service for remote work (docs/protocol.md §14), sent and
// judged as an upstream node does. Replies are read as raw lines ("\n"
// included, at most MaxPeerReplyBytes), and connection errors come back as
// the connection reports them unless a method says otherwise, so that the
// caller can word them as upstream does.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
)

// MaxPeerReplyBytes bounds one reply line from another node's control
// service.
const MaxPeerReplyBytes = 1 << 20

// Greet starts a session with node's control service on an established
// stream (a mesh connection to its "control" service): it reads the
// greeting and, like upstream, only checks that the line contains node.
// ctx bounds the wait. On error the caller closes conn.
func Greet(ctx context.Context, conn net.Conn, node string) (*Conn, error) {
	c := &Conn{conn: conn, br: bufio.NewReader(conn), nodeID: node, maxReply: MaxPeerReplyBytes}
	line, err := c.readRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading greeting from %s: %w", node, err)
	}
	if !strings.Contains(line, node) {
		return nil, fmt.Errorf("while expecting node ID %s, got message: %s", node, strings.TrimRight(line, "\n"))
	}
	return c, nil
}

// ReadReply reads one reply line as sent, "\n" included. With an error it
// returns what was read of the line, which may be a whole reply whose
// newline was lost when the peer closed.
func (c *Conn) ReadReply(ctx context.Context) (string, error) {
	return c.readRaw(ctx)
}

var unitIDRE = regexp.MustCompile(`with ID ([a-zA-Z0-9]+)\.`)

// StartSubmit sends a JSON work submit (members: node, worktype, tlsclient,
// signature and the work params; command and subcommand are added) and
// returns the unit ID of the "Work unit created with ID <id>." reply. Any
// other reply fails with upstream's "could not parse response: <line>"
// (for an "ERROR: " line the error wraps a *RemoteError with the remote's
// text, so callers can tell what the remote said); connection errors are worded as upstream's
// "write error sending to <node>" and "read error reading from <node>".
// Send the payload next with SendPayload, then read the final reply with
// ReadReply.
func (c *Conn) StartSubmit(ctx context.Context, members map[string]string) (string, error) {
	req, err := submitRequest(members)
	if err != nil {
		return "", err
	}
	if err := c.writeRaw(ctx, req+"\n"); err != nil {
		return "", fmt.Errorf("write error sending to %s: %w", c.nodeID, err)
	}
	line, err := c.readRaw(ctx)
	if err != nil {
		return "", fmt.Errorf("read error reading from %s: %w", c.nodeID, err)
	}
	m := unitIDRE.FindStringSubmatch(line)
	if text, ok := strings.CutPrefix(line, "ERROR: "); ok && m == nil {
		return "", fmt.Errorf("could not parse response: ERROR: %w", &RemoteError{Message: strings.TrimRight(text, "\n")})
	}
	if m == nil {
		return "", fmt.Errorf("could not parse response: %s", strings.TrimRight(line, "\n"))
	}
	return m[1], nil
}

// WorkStatus sends the text command "work status <unitID>" and returns the
// reply line as sent: a JSON status, or an "ERROR: " line. The session
// stays usable for further requests.
func (c *Conn) WorkStatus(ctx context.Context, unitID string) (string, error) {
	if err := c.writeRaw(ctx, "work status "+unitID+"\n"); err != nil {
		return "", err
	}
	return c.readRaw(ctx)
}

// ResultsFrom asks for a unit's results from byte startPos as upstream
// nodes do (a JSON request whose startpos is a number, signed when
// signature is not ""), half-closes once the "Streaming results" reply is
// in (a failed half-close is ignored, as upstream does) and returns the
// stream, which ends when the remote closes it. Any other reply fails with
// "results of remote unit <id>: <reply>". Close the Conn to stop.
func (c *Conn) ResultsFrom(ctx context.Context, unitID string, startPos int64, signature string) (io.Reader, error) {
	// startpos must be a JSON number (upstream rejects strings).
	req := fmt.Sprintf(`{"command":"work","subcommand":"results","unitid":%q,"startpos":%d`, unitID, startPos)
	if signature != "" {
		req += fmt.Sprintf(`,"signature":%q`, signature)
	}
	if err := c.writeRaw(ctx, req+"}\n"); err != nil {
		return nil, err
	}
	line, err := c.readRaw(ctx)
	if err != nil {
		return nil, err
	}
	if !strings.Contains(line, "Streaming results") {
		return nil, fmt.Errorf("results of remote unit %s: %s", unitID, strings.TrimSpace(line))
	}
	_ = c.closeWrite()
	return c.br, nil
}

// CancelWork sends a JSON work cancel (release: work release) for unitID,
// signed when signature is not "", and returns the reply line as sent
// (see ReadReply for what comes with an error).
func (c *Conn) CancelWork(ctx context.Context, unitID string, release bool, signature string) (string, error) {
	sub := "cancel"
	if release {
		sub = "release"
	}
	req := map[string]string{"command": "work", "subcommand": sub, "unitid": unitID}
	if signature != "" {
		req["signature"] = signature
	}
	b, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	if err := c.writeRaw(ctx, string(b)+"\n"); err != nil {
		return "", err
	}
	return c.readRaw(ctx)
}
