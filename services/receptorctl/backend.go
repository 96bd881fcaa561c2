package receptorctl

import (
	"context"
	"io"
	"net"
)

// backend is one way of reaching a node: the receptorctl control protocol
// (socket.go: unix socket, TCP or TLS, upstream nodes too) or the gRPC
// ControlService (grpc.go). Replies are values in the shapes of the control
// protocol's JSON replies (decodeJSON: maps, slices, json.Number), whatever
// the backend, so that every verb formats one shape; the gRPC backend
// converts its messages to them.
type backend interface {
	// NodeVersion is the node's version (status Version).
	NodeVersion(ctx context.Context) (string, error)
	// Status is the status object (NodeID, Version, Connections, ...).
	Status(ctx context.Context) (map[string]any, error)
	// Ping sends one ping: {"Success":true,"From","Time","TimeStr"} or
	// {"Success":false,"Error"[,"From","Time","TimeStr"]}.
	Ping(ctx context.Context, node string) (map[string]any, error)
	// Traceroute returns {"<hop>":{"From","Time","TimeStr"[,"Error"]}}.
	Traceroute(ctx context.Context, node string) (map[string]any, error)
	// Reload returns {"Success":true} or {"Success":false,"Error"}.
	Reload(ctx context.Context) (map[string]any, error)
	// WorkList returns unit ID -> status object, of node ("" = this
	// node, reached through its control service with tlsClient) and of one
	// unit when unitID is set.
	WorkList(ctx context.Context, node, tlsClient, unitID string) (map[string]any, error)
	// WorkStatus is one unit's status object.
	WorkStatus(ctx context.Context, unitID string) (map[string]any, error)
	// Submit submits work and sends payload: {"result","unitid"}.
	Submit(ctx context.Context, req submitRequest, payload io.Reader) (map[string]any, error)
	// Results streams a unit's output from byte offset until the node ends
	// the stream.
	Results(ctx context.Context, unitID string, offset int64) (io.ReadCloser, error)
	// UnitOp runs op (cancel, release, force-release) on a unit and
	// returns the reply, e.g. {"released":"<id>"}.
	UnitOp(ctx context.Context, op, unitID string) (map[string]any, error)
	// Connect bridges to service on node; the connection can half-close
	// (CloseWrite).
	Connect(ctx context.Context, node, service, tlsClient string) (net.Conn, error)
	Close() error
}

// submitRequest is a work submit as receptorctl sends it.
type submitRequest struct {
	WorkType  string
	Node      string // "localhost" for this node
	TLSClient string
	TTL       string
	SignWork  bool
	Params    map[string]string // work params, e.g. "params"
}
