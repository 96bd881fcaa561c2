// Package control is the receptorctl-compatible control protocol front end:
// it parses the line/JSON protocol of upstream Receptor's control service,
// runs sessions on Unix, TCP(+TLS) and mesh listeners, and renders replies
// byte for byte as upstream does (docs/protocol.md §12).
//
// The node's behaviour lives behind the Ops interface, which the router
// implements once for this protocol, the gRPC ControlService and REST.
//
// Deliberate deviations from upstream:
//   - request lines are bounded (Options.MaxLineBytes, default 1 MiB); a
//     longer line gets "ERROR: line too long" and the session is closed;
//   - concurrent sessions per listener are bounded (Options.MaxSessions);
//   - "status" with a non-list requested_fields answers
//     "ERROR: requested_fields must be a list of strings" (upstream crashes, quirk Q2 of docs/protocol.md §15.1);
//   - a JSON submit with several non-string members names the first in
//     sorted key order (upstream's choice depends on map iteration);
//   - a connect bridge half-closes each side when the other side's input
//     ends (upstream fully closes Unix/TCP clients), so no bytes in flight
//     are lost; a failed direction closes both.
package control

import (
	"context"
	"io"
	"net"
	"time"
)

// Ops is what a node does for control commands. The protocol layer parses,
// validates what upstream validates at parse time, calls one method and
// renders the result. Every error's Error() text is sent after "ERROR: ", so
// implementations return upstream's exact texts (docs/protocol.md §12.5).
type Ops interface {
	// NodeID is the local node ID, used in the greeting.
	NodeID() string

	// Status returns the full node status; the protocol layer selects the
	// requested fields.
	Status(ctx context.Context) (Status, error)

	// Ping pings node ("localhost", any case, is the local node). Failures
	// are reported in the result, not as an error (upstream replies
	// {"Error":...,"Success":false}).
	Ping(ctx context.Context, node string) PingResult

	// Traceroute returns the hops in order: index i is hop i.
	Traceroute(ctx context.Context, node string) ([]TraceHop, error)

	// Connect dials service on node over the mesh ("localhost" = own node)
	// with the named tls-client config ("" = mesh default). The returned
	// conn should implement CloseWrite so half-closes propagate.
	Connect(ctx context.Context, node, service, tlsClient string) (net.Conn, error)

	// Reload re-applies the configuration. A non-nil error's text must
	// already end in " ERRORCODE <n>"; it is sent as {"Error":...,"Success":false}.
	Reload(ctx context.Context) error

	// WorkSubmit validates req (signature, ttl, work type, params), allocates
	// the unit, calls created(unitID) (which writes the "Work unit created"
	// line; a non-nil return means the client is gone), then reads stdin to
	// EOF into the unit's stdin file and starts the unit. stdin is the
	// client connection: it must be read until EOF or error before
	// returning successfully. Pending=true means "Job Submitted".
	WorkSubmit(ctx context.Context, req WorkSubmitRequest, created func(unitID string) error, stdin io.Reader) (WorkSubmitResult, error)

	// WorkList returns the status of every known unit, keyed by unit ID.
	WorkList(ctx context.Context) (map[string]WorkStatus, error)

	// WorkStatus returns one unit's status ("unknown work unit <id>").
	WorkStatus(ctx context.Context, unitID string) (WorkStatus, error)

	// WorkResults checks the unit and the signature rule, then returns the
	// unit's stdout from offset; the reader ends (io.EOF) when the stream is
	// complete (docs/protocol.md §13.6). Closing it or cancelling ctx stops the stream.
	WorkResults(ctx context.Context, unitID string, offset int64, sig Signature) (io.ReadCloser, error)

	// WorkCancel cancels a unit; pending=true means the cancel was deferred
	// (reply key "cancel pending" instead of "cancelled").
	WorkCancel(ctx context.Context, unitID string, sig Signature) (pending bool, err error)

	// WorkRelease releases (force: force-releases) a unit; pending=true
	// gives "release pending" instead of "released".
	WorkRelease(ctx context.Context, unitID string, force bool, sig Signature) (pending bool, err error)
}

// WorkListRenderer may be implemented by an Ops to render the reply to a
// full `work list` itself, with the bytes WorkListReply would give for
// WorkList's result: the reply is the same for every caller and large (a
// few hundred bytes per unit), so an implementation can build it once for
// many concurrent sessions. The session writes the returned slice and
// never modifies it.
type WorkListRenderer interface {
	WorkListReply(ctx context.Context) ([]byte, error)
}

// Signature is what the signature rule (docs/protocol.md §14.3) needs from a request.
type Signature struct {
	JWT string // the request's "signature" member; "" when absent
	// Trusted is true for requests that came over the Unix socket: they are
	// never verified.
	Trusted bool
}

// WorkSubmitRequest is a parsed "work submit" (docs/protocol.md §12.4).
type WorkSubmitRequest struct {
	Node      string
	WorkType  string
	TLSClient string
	TTL       string
	SignWork  bool
	Signature Signature
	// Params are the work params: every member other than command,
	// subcommand, node, worktype, tlsclient, ttl, signwork and signature.
	// Never nil.
	Params map[string]string
}

// WorkSubmitResult is the outcome of a successful submit.
type WorkSubmitResult struct {
	UnitID  string
	Pending bool // remote start deferred: "Job Submitted"
}

// PingResult is one ping's outcome. Error == "" means success; a failed
// ping must carry a non-empty Error text (e.g. "timeout", "no route to node").
type PingResult struct {
	From  string
	Time  time.Duration
	Error string
}

// TraceHop is one traceroute entry. Error is "" unless the attempt failed
// with something other than an expiry in transit.
type TraceHop struct {
	From  string
	Time  time.Duration
	Error string
}

// Status is the node status reply (docs/protocol.md §12.3 status). Fields are listed in
// the sorted order upstream's map-shaped reply uses.
type Status struct {
	Advertisements       []Advertisement
	Connections          []Connection
	KnownConnectionCosts map[string]map[string]float64
	NodeID               string
	RoutingTable         map[string]string
	SystemCPUCount       int
	SystemMemoryMiB      int
	Version              string
}

// Connection is a direct mesh connection in Status.
type Connection struct {
	NodeID string
	Cost   float64
}

// Advertisement is a service advertisement in Status; member order is
// upstream's fixed struct order.
type Advertisement struct {
	NodeID       string
	Service      string
	Time         time.Time
	ConnType     uint8 // 0 datagram, 1 stream, 2 stream+TLS
	Tags         map[string]string
	WorkCommands []WorkCommand
}

// WorkCommand is one advertised work type.
type WorkCommand struct {
	WorkType string
	Secure   bool
}

// WorkStatus is a unit's status object (docs/protocol.md §13.5); members are in the
// sorted order upstream emits.
type WorkStatus struct {
	Detail string
	// ExtraData is marshalled with encoding/json: nil gives null; use a
	// struct with upstream's member order, a string, or json.RawMessage.
	ExtraData  any
	State      int
	StateName  string
	StdoutSize int64
	WorkType   string
}
