package receptorctl

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/receptor-mesh/receptor/services/control/client"
)

// socketBackend speaks the receptorctl control protocol through the one
// control client. Like the Python receptorctl it keeps one session for
// the commands of an invocation (the version check, then the verb's
// commands); a session that a results stream, a submit or a bridge used up
// is replaced by a new one on the next command.
type socketBackend struct {
	address string
	tls     *tls.Config
	conn    *client.Conn // nil: dial on the next command
}

func newSocketBackend(address string, tlsConf *tls.Config) (*socketBackend, error) {
	network, addr, err := client.ParseAddress(address)
	if err != nil {
		return nil, usageError(fmt.Errorf("Invalid socket address %s", address)) //nolint:staticcheck // receptorctl's text
	}
	if network == "tls" && tlsConf == nil {
		return nil, usageError(fmt.Errorf("socket address %s is TLS: give --rootcas (and --cert/--key) or --config with --tls-client", address))
	}
	if network == "unix" {
		if _, err := os.Stat(addr); errors.Is(err, os.ErrNotExist) {
			return nil, withCode(ExitUnreachable, fmt.Errorf("Socket path does not exist: %s", addr)) //nolint:staticcheck // receptorctl's text
		}
	}
	return &socketBackend{address: address, tls: tlsConf}, nil
}

func (b *socketBackend) session(ctx context.Context) (*client.Conn, error) {
	if b.conn == nil {
		c, err := client.Dial(ctx, b.address, b.tls)
		if err != nil {
			return nil, err
		}
		b.conn = c
	}
	return b.conn, nil
}

// take hands the current session to the caller, who closes it.
func (b *socketBackend) take(ctx context.Context) (*client.Conn, error) {
	c, err := b.session(ctx)
	b.conn = nil
	return c, err
}

func (b *socketBackend) Close() error {
	if b.conn == nil {
		return nil
	}
	err := b.conn.Close()
	b.conn = nil
	return err
}

// command sends one command line and decodes its JSON object reply. A
// session that failed is dropped.
func (b *socketBackend) command(ctx context.Context, line string) (map[string]any, error) {
	c, err := b.session(ctx)
	if err != nil {
		return nil, err
	}
	return objectCommand(ctx, c, line, func() { _ = b.Close() })
}

func objectCommand(ctx context.Context, c *client.Conn, line string, drop func()) (map[string]any, error) {
	raw, err := c.Command(ctx, line)
	if err != nil {
		var re *client.RemoteError
		if !errors.As(err, &re) {
			drop()
		}
		return nil, err
	}
	v, err := decodeJSON(raw)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("reply to %q is not a JSON object", line)
	}
	return m, nil
}

func (b *socketBackend) NodeVersion(ctx context.Context) (string, error) {
	m, err := b.command(ctx, `{"command":"status","requested_fields":["Version"]}`)
	if err != nil {
		return "", err
	}
	v, ok := m["Version"].(string)
	if !ok {
		return "", fmt.Errorf("status reply has no Version")
	}
	return v, nil
}

func (b *socketBackend) Status(ctx context.Context) (map[string]any, error) {
	return b.command(ctx, "status")
}

func (b *socketBackend) Ping(ctx context.Context, node string) (map[string]any, error) {
	return b.command(ctx, "ping "+node)
}

func (b *socketBackend) Traceroute(ctx context.Context, node string) (map[string]any, error) {
	return b.command(ctx, "traceroute "+node)
}

func (b *socketBackend) Reload(ctx context.Context) (map[string]any, error) {
	return b.command(ctx, "reload")
}

func (b *socketBackend) WorkList(ctx context.Context, node, tlsClient, unitID string) (map[string]any, error) {
	line := "work list"
	if unitID != "" {
		line += " " + unitID
	}
	if node == "" {
		return b.command(ctx, line)
	}
	// As receptorctl: bridge this session to the node's control service
	// and speak the protocol to it.
	c, err := b.take(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	bridged, err := c.Connect(ctx, node, "control", tlsClient)
	if err != nil {
		return nil, err
	}
	remote, err := client.NewConn(ctx, bridged)
	if err != nil {
		return nil, err
	}
	return objectCommand(ctx, remote, line, func() {})
}

func (b *socketBackend) WorkStatus(ctx context.Context, unitID string) (map[string]any, error) {
	return b.command(ctx, "work status "+unitID)
}

func (b *socketBackend) Submit(ctx context.Context, req submitRequest, payload io.Reader) (map[string]any, error) {
	members := make(map[string]string, len(req.Params)+4)
	for k, v := range req.Params {
		members[k] = v
	}
	members["node"] = req.Node
	members["worktype"] = req.WorkType
	if req.TLSClient != "" {
		members["tlsclient"] = req.TLSClient
	}
	if req.TTL != "" {
		members["ttl"] = req.TTL
	}
	if req.SignWork {
		members["signwork"] = "true"
	}
	c, err := b.take(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res, err := c.SubmitWork(ctx, members, payload)
	if err != nil {
		return nil, err
	}
	return map[string]any{"result": res.Result, "unitid": res.UnitID}, nil
}

func (b *socketBackend) Results(ctx context.Context, unitID string, offset int64) (io.ReadCloser, error) {
	c, err := b.take(ctx)
	if err != nil {
		return nil, err
	}
	r, err := c.Results(ctx, unitID, offset)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return readCloser{Reader: r, close: c.Close}, nil
}

func (b *socketBackend) UnitOp(ctx context.Context, op, unitID string) (map[string]any, error) {
	return b.command(ctx, "work "+op+" "+unitID)
}

func (b *socketBackend) Connect(ctx context.Context, node, service, tlsClient string) (net.Conn, error) {
	c, err := b.take(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := c.Connect(ctx, node, service, tlsClient)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return conn, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// jsonNumber makes a json.Number of an integer, as decodeJSON would.
func jsonNumber(n int64) json.Number { return json.Number(fmt.Sprint(n)) }
