// Package apierr is the one catalogue of the errors the gRPC and REST APIs
// return. Every error is a gRPC status whose message is the upstream Receptor
// error text without the "ERROR: " prefix, so the receptorctl shim can print
// it verbatim (proto/README.md); the code tells typed clients, and the REST
// gateway, what kind of failure it was. Handlers build errors only through
// these constructors so that codes and texts stay consistent across services.
package apierr

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// Domain is the ErrorInfo domain of the details this package attaches.
const Domain = "receptor.mesh"

// ErrorInfo reasons attached to statuses that carry machine-readable context.
const (
	ReasonNodeUnreachable = "NODE_UNREACHABLE"
	ReasonReloadFailed    = "RELOAD_FAILED"
	// ReasonPayloadTooLarge marks a request refused for its size alone;
	// the REST gateway answers it with HTTP 413.
	ReasonPayloadTooLarge = "PAYLOAD_TOO_LARGE"
)

// Texts of errors that have no parameters. They are upstream strings where
// upstream has one (docs/protocol.md §12.5).
const (
	textNoWorkAgent          = "no work agent is attached to this router; work commands need a running receptor-worker (work-agent entity)"
	textTimeout              = "timeout"
	textCancelled            = "user cancelled"
	textShutdown             = "netceptor shutdown"
	textClosing              = "work agent is closing"
	textWorkAgentUnavailable = "work agent unavailable"
	textStopping             = "server is stopping"
)

// NotFound is a lookup failure with its upstream text verbatim, such as
// the work agent's "unknown work unit <id>" and "unknown work type
// <type>": NotFound.
func NotFound(text string) error {
	return status.Error(codes.NotFound, text)
}

// UnknownTLSConfig names a tls-server or tls-client configuration that does
// not exist: NotFound "unknown TLS config <name>".
func UnknownTLSConfig(name string) error {
	return status.Error(codes.NotFound, "unknown TLS config "+name)
}

// UnknownConnection is an Accept of a connection ID that was never announced,
// has expired or was already taken: NotFound.
func UnknownConnection(id string) error {
	return status.Error(codes.NotFound, "unknown connection "+id)
}

// NoWorkAgent is any work operation on a router without a work agent:
// Unavailable, as the ControlService contract says, because attaching (or
// restarting) the agent fixes it without changing the request.
func NoWorkAgent() error {
	return status.Error(codes.Unavailable, textNoWorkAgent)
}

// WorkAgentUnreachable is a call that failed because the router cannot
// reach its work agent at addr: Unavailable "work agent unavailable: cannot
// reach <addr>: <the transport error's last part, e.g. connection
// refused>". A status that already says so passes unchanged, so the text
// is never wrapped twice. Retrying later succeeds once the agent is back
// (see Retryable).
func WorkAgentUnreachable(addr string, err error) error {
	msg := status.Convert(err).Message()
	if strings.HasPrefix(msg, textWorkAgentUnavailable) {
		return status.Error(codes.Unavailable, msg)
	}
	return status.Errorf(codes.Unavailable, "%s: cannot reach %s: %s", textWorkAgentUnavailable, addr, rootCause(msg))
}

// rootCause is the last part of a chain of "context: cause" texts, as gRPC
// transport errors are ("connection error: desc = \"transport: Error
// while dialing: dial unix /x: connect: connection refused\"").
func rootCause(msg string) string {
	msg = strings.TrimRight(msg, `"`)
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}

// Retryable reports whether text, an error text of a node's work
// request (the part after "ERROR: "), says that the node cannot run work
// for a while only: its work agent is unreachable or closing. Another
// node's remote work retries such submissions in the background.
func Retryable(text string) bool {
	return strings.HasPrefix(text, textWorkAgentUnavailable) || text == textClosing
}

// WorkAgentClosing is a unit watch cut short by the work agent shutting
// down: Unavailable "work agent is closing".
func WorkAgentClosing() error {
	return status.Error(codes.Unavailable, textClosing)
}

// ServerStopping is a streaming call cut short because its gRPC server is
// stopping: Unavailable "server is stopping", so that clients retry
// elsewhere or later as after a lost connection.
func ServerStopping() error {
	return status.Error(codes.Unavailable, textStopping)
}

// WorkUnavailable is a work failure towards another node, or of a work
// agent that is closed, with its text verbatim: Unavailable.
func WorkUnavailable(text string) error {
	return status.Error(codes.Unavailable, text)
}

// ServiceInUse is a bind or listen on a mesh service name that is taken or
// reserved: AlreadyExists "service <name> is already listening".
func ServiceInUse(service string) error {
	return status.Error(codes.AlreadyExists, "service "+service+" is already listening")
}

// InvalidArgument rejects one field of a request. The message is
// "invalid <field>: <problem>"; the field is also attached as a BadRequest
// field violation for typed clients.
func InvalidArgument(field, problem string) error {
	st := status.New(codes.InvalidArgument, "invalid "+field+": "+problem)
	return withDetails(st, &errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: problem}},
	})
}

// BadRequest rejects a request with an upstream text verbatim, for the
// errors upstream reports without naming a field (e.g. "ttl option is
// intended for remote work only"): InvalidArgument.
func BadRequest(text string) error {
	return status.Error(codes.InvalidArgument, text)
}

// TooLarge rejects a payload over a bound (datagram, chunk, stdin):
// InvalidArgument, as the MeshService contract says.
func TooLarge(what string, size, limit int) error {
	return InvalidArgument(what, fmt.Sprintf("%d bytes exceeds the limit of %d bytes", size, limit))
}

// StdinTooLarge is CreateWork's inline stdin over its limit:
// InvalidArgument "stdin of <size> bytes exceeds the <limit> limit of
// CreateWork; send larger input with the SubmitWork stream", with a
// BadRequest field violation for stdin and the ErrorInfo reason
// ReasonPayloadTooLarge (HTTP 413 on REST).
func StdinTooLarge(size, limit int) error {
	return PayloadTooLarge("stdin", fmt.Sprintf("stdin of %d bytes exceeds the %s limit of CreateWork; send larger input with the SubmitWork stream", size, byteSize(limit)))
}

// PayloadTooLarge refuses a request for the size of one field (or of the
// whole request, field ""): InvalidArgument with text verbatim, a BadRequest
// field violation when field is set, and the ErrorInfo reason
// ReasonPayloadTooLarge, which the REST gateway answers with HTTP 413.
func PayloadTooLarge(field, text string) error {
	st := status.New(codes.InvalidArgument, text)
	info := &errdetails.ErrorInfo{Reason: ReasonPayloadTooLarge, Domain: Domain}
	if field == "" {
		return withDetails(st, info)
	}
	return withDetails(st, &errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: text}},
	}, info)
}

// IsPayloadTooLarge reports whether err was built by PayloadTooLarge.
func IsPayloadTooLarge(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == ReasonPayloadTooLarge && info.GetDomain() == Domain {
			return true
		}
	}
	return false
}

// byteSize writes a limit in MiB or KiB when it is a whole number of them.
func byteSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + " KiB"
	}
	return strconv.Itoa(n) + " bytes"
}

// SignatureRejected is a failed work-signature rule with its upstream text
// (e.g. "could not verify signature: signature is empty"): PermissionDenied.
func SignatureRejected(text string) error {
	return status.Error(codes.PermissionDenied, text)
}

// Unauthenticated is a request without acceptable credentials, with a text
// saying what to present: Unauthenticated (HTTP 401).
func Unauthenticated(text string) error {
	return status.Error(codes.Unauthenticated, text)
}

// Unavailable is a transport failure towards a node. The message is err's
// text (already the upstream wording, e.g. "no route to node" or
// "write error sending to nodeb: ..."); the node travels as ErrorInfo
// metadata so the text stays verbatim.
func Unavailable(node string, err error) error {
	return nodeError(codes.Unavailable, node, errText(err))
}

// MeshFailure maps a mesh-level failure text (ping, traceroute, dial) to a
// status: "timeout" is DeadlineExceeded, "user cancelled" is Canceled, a
// firewall block is PermissionDenied, anything else (no route, service
// unknown, message expired, shutdown) is Unavailable. The text is kept
// verbatim.
func MeshFailure(node, text string) error {
	code := codes.Unavailable
	switch text {
	case textTimeout:
		code = codes.DeadlineExceeded
	case textCancelled:
		code = codes.Canceled
	case "blocked by firewall":
		code = codes.PermissionDenied
	}
	return nodeError(code, node, text)
}

// Timeout is a mesh operation towards node that timed out:
// DeadlineExceeded "timeout" (MeshFailure).
func Timeout(node string) error { return MeshFailure(node, textTimeout) }

// Cancelled is a mesh operation towards node that its caller cancelled:
// Canceled "user cancelled" (MeshFailure).
func Cancelled(node string) error { return MeshFailure(node, textCancelled) }

// Shutdown is a mesh operation refused because the node is stopping:
// Unavailable "netceptor shutdown" (MeshFailure; no node details when node
// is "").
func Shutdown(node string) error { return MeshFailure(node, textShutdown) }

// ContextEnded is a call cut short by its context; err is the context's
// error, or wraps it: Canceled, else DeadlineExceeded, with err's text (as
// status.FromContextError).
func ContextEnded(err error) error {
	code := codes.DeadlineExceeded
	if errors.Is(err, context.Canceled) {
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

// ReloadFailed is a failed configuration reload. The message is
// "<text> ERRORCODE <n>" as upstream (3: a non-reloadable entity changed;
// 4: no or unreadable configuration), which receptorctl turns into its exit
// code: FailedPrecondition, since the configuration must be fixed first.
func ReloadFailed(text string, errorCode int) error {
	st := status.New(codes.FailedPrecondition, fmt.Sprintf("%s ERRORCODE %d", text, errorCode))
	return withDetails(st, &errdetails.ErrorInfo{
		Reason:   ReasonReloadFailed,
		Domain:   Domain,
		Metadata: map[string]string{"errorcode": strconv.Itoa(errorCode)},
	})
}

// Denied is an authorization failure (an *authz.DeniedError, or any
// error saying why): Unauthenticated when the caller presented no
// identity (HTTP 401), PermissionDenied otherwise (HTTP 403). The text
// names the principal and the action.
func Denied(err error) error {
	code := codes.PermissionDenied
	var u interface{ IsUnauthenticated() bool }
	if errors.As(err, &u) && u.IsUnauthenticated() {
		code = codes.Unauthenticated
	}
	return status.Error(code, err.Error())
}

// LimitReached is a request over one of the caller's limits (concurrent
// units, input size): ResourceExhausted (HTTP 429).
func LimitReached(text string) error {
	return status.Error(codes.ResourceExhausted, text)
}

// WatcherTooSlow ends a watch (WatchMesh, WatchWork) whose client read
// too slowly for its bounded buffer of n events: ResourceExhausted, so the
// client knows to call again for a fresh snapshot.
func WatcherTooSlow(n int) error {
	return status.Error(codes.ResourceExhausted, fmt.Sprintf("watch ended: the client fell more than %d events behind; watch again for a fresh snapshot", n))
}

// Internal is a failure of our own code (a bug or a broken local resource):
// Internal, with err's text.
func Internal(err error) error {
	return status.Error(codes.Internal, "internal error: "+errText(err))
}

// Unclassified is a failure of no kind this catalogue knows, with its text
// verbatim (the work agent's own words): Internal.
func Unclassified(text string) error {
	return status.Error(codes.Internal, text)
}

// Text returns the upstream error text of err: the status message for a
// gRPC status, even wrapped (what the receptorctl shim prints after
// "ERROR: "), err.Error()
// for any other error, and "" for nil. Context errors map to the upstream
// words for them.
func Text(err error) string {
	if err == nil {
		return ""
	}
	// The status's own message, not status.FromError's, which prefixes the
	// text of wrapping errors: the shim must print the upstream text alone.
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus().Message()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return textTimeout
	case errors.Is(err, context.Canceled):
		return textCancelled
	}
	return err.Error()
}

// ReloadErrorCode extracts n from a reload failure's trailing
// " ERRORCODE <n>" (receptorctl's exit code). ok is false when the text has
// no such suffix.
func ReloadErrorCode(err error) (n int, ok bool) {
	text := Text(err)
	i := strings.LastIndex(text, " ERRORCODE ")
	if i < 0 {
		return 0, false
	}
	digits := text[i+len(" ERRORCODE "):]
	if digits == "" || len(digits) > 9 || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	n, err = strconv.Atoi(digits)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Node returns the node named in a status built by Unavailable or
// MeshFailure, and "" otherwise.
func Node(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == ReasonNodeUnreachable {
			return info.GetMetadata()["node"]
		}
	}
	return ""
}

func nodeError(code codes.Code, node, text string) error {
	st := status.New(code, text)
	if node == "" {
		return st.Err()
	}
	return withDetails(st, &errdetails.ErrorInfo{
		Reason:   ReasonNodeUnreachable,
		Domain:   Domain,
		Metadata: map[string]string{"node": node},
	})
}

// withDetails attaches details; the bare status is kept if they cannot be
// marshalled (they are our own well-formed messages, so this cannot happen in
// practice, and the status still carries the code and text).
func withDetails(st *status.Status, details ...protoadapt.MessageV1) error {
	if withD, err := st.WithDetails(details...); err == nil {
		return withD.Err()
	}
	return st.Err()
}

func errText(err error) string {
	if err == nil {
		return "unknown error"
	}
	return Text(err)
}
