package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Request is one parsed control command. The concrete types are the
// *Request structs of this file.
type Request interface{ command() string }

// PingRequest is "ping <target>".
type PingRequest struct{ Target string }

// TracerouteRequest is "traceroute <target>".
type TracerouteRequest struct{ Target string }

// StatusRequest is "status"; with Selected, only Fields are returned
// (unknown names are skipped).
type StatusRequest struct {
	Selected bool
	Fields   []string
}

// ConnectRequest is "connect <node> <service> [<tls>]".
type ConnectRequest struct{ Node, Service, TLS string }

// ReloadRequest is "reload".
type ReloadRequest struct{}

// WorkListRequest is "work list [<unitid>]". HasUnitID distinguishes an
// empty ID (which upstream looks up, and fails) from no ID.
type WorkListRequest struct {
	UnitID    string
	HasUnitID bool
}

// WorkStatusRequest is "work status <unitid>".
type WorkStatusRequest struct{ UnitID string }

// WorkCancelRequest is "work cancel <unitid>".
type WorkCancelRequest struct{ UnitID, Signature string }

// WorkReleaseRequest is "work release|force-release <unitid>".
type WorkReleaseRequest struct {
	UnitID, Signature string
	Force             bool
}

// WorkResultsRequest is "work results <unitid> [<startpos>]".
type WorkResultsRequest struct {
	UnitID    string
	StartPos  int64
	Signature string
}

func (PingRequest) command() string        { return "ping" }
func (TracerouteRequest) command() string  { return "traceroute" }
func (StatusRequest) command() string      { return "status" }
func (ConnectRequest) command() string     { return "connect" }
func (ReloadRequest) command() string      { return "reload" }
func (WorkSubmitRequest) command() string  { return "work" }
func (WorkListRequest) command() string    { return "work" }
func (WorkStatusRequest) command() string  { return "work" }
func (WorkCancelRequest) command() string  { return "work" }
func (WorkReleaseRequest) command() string { return "work" }
func (WorkResultsRequest) command() string { return "work" }

// ErrUnknownCommand is the reply to a command name that is not registered.
var ErrUnknownCommand = errors.New("Unknown command") //nolint:staticcheck // exact wire text

// errBadCommand is upstream's reply to an unknown or empty work subcommand.
var errBadCommand = errors.New("bad command")

// JSONRequestError is a JSON line that could not be turned into a command
// (malformed, no command member, or a non-string command). Upstream replies
// with two lines: this error, then "ERROR: Unknown command" (quirk Q1 of docs/protocol.md §15.1).
type JSONRequestError struct{ Err error }

func (e *JSONRequestError) Error() string { return e.Err.Error() }
func (e *JSONRequestError) Unwrap() error { return e.Err }

// ParseRequest parses one request line (without its "\n"; "\r" already
// removed). Errors carry upstream's exact texts; a *JSONRequestError needs
// the extra "Unknown command" line (see ErrorReply).
func ParseRequest(line string) (Request, error) {
	if strings.HasPrefix(line, "{") {
		return parseJSON(line)
	}
	cmd, params, _ := strings.Cut(line, " ")
	switch strings.ToLower(cmd) {
	case "ping":
		if params == "" {
			return nil, errors.New("no ping target")
		}
		return PingRequest{Target: params}, nil
	case "traceroute":
		if params == "" {
			return nil, errors.New("no traceroute target")
		}
		return TracerouteRequest{Target: params}, nil
	case "status":
		if params != "" {
			return nil, errors.New("status command does not take parameters")
		}
		return StatusRequest{}, nil
	case "connect":
		return parseConnectText(params)
	case "reload":
		return ReloadRequest{}, nil
	case "work":
		return parseWorkText(params)
	}
	return nil, ErrUnknownCommand
}

func parseConnectText(params string) (Request, error) {
	// Split on every single space: receptorctl sends a trailing space when
	// it has no TLS name, which makes an empty third token.
	tokens := strings.Split(params, " ")
	if len(tokens) < 2 {
		return nil, errors.New("no connect target")
	}
	if len(tokens) > 3 {
		return nil, errors.New("too many parameters")
	}
	r := ConnectRequest{Node: tokens[0], Service: tokens[1]}
	if len(tokens) == 3 {
		r.TLS = tokens[2]
	}
	return r, nil
}

func parseWorkText(params string) (Request, error) {
	tokens := strings.Split(params, " ")
	sub := strings.ToLower(tokens[0])
	switch sub {
	case "submit":
		if len(tokens) < 3 {
			return nil, errors.New("work submit requires a target node and work type")
		}
		r := WorkSubmitRequest{Node: tokens[1], WorkType: tokens[2], Params: map[string]string{}}
		if len(tokens) > 3 {
			r.Params["params"] = strings.Join(tokens[3:], " ")
		}
		return r, nil
	case "list":
		if len(tokens) > 1 {
			return WorkListRequest{UnitID: tokens[1], HasUnitID: true}, nil
		}
		return WorkListRequest{}, nil
	case "status", "cancel", "release", "force-release":
		if len(tokens) < 2 {
			return nil, fmt.Errorf("work %s requires a unit ID", sub)
		}
		if len(tokens) > 2 {
			return nil, fmt.Errorf("work %s does not take parameters after the unit ID", sub)
		}
		return unitRequest(sub, tokens[1], ""), nil
	case "results":
		if len(tokens) < 2 {
			return nil, errors.New("work results requires a unit ID")
		}
		if len(tokens) > 3 {
			return nil, errors.New("work results only takes a unit ID and optional start position")
		}
		r := WorkResultsRequest{UnitID: tokens[1]}
		if len(tokens) > 2 {
			pos, err := strconv.ParseInt(tokens[2], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("error converting start position to integer: %w", err)
			}
			r.StartPos = pos
		}
		return r, nil
	}
	return nil, errBadCommand
}

func unitRequest(sub, unitID, signature string) Request {
	switch sub {
	case "status":
		return WorkStatusRequest{UnitID: unitID}
	case "cancel":
		return WorkCancelRequest{UnitID: unitID, Signature: signature}
	default:
		return WorkReleaseRequest{UnitID: unitID, Signature: signature, Force: sub == "force-release"}
	}
}

func parseJSON(line string) (Request, error) {
	var obj map[string]any
	if err := json.Unmarshal([]byte(line), &obj); err != nil {
		return nil, &JSONRequestError{Err: err}
	}
	cmdAny, ok := obj["command"]
	if !ok {
		return nil, &JSONRequestError{Err: errors.New("JSON did not contain a command")}
	}
	cmd, ok := cmdAny.(string)
	if !ok {
		return nil, &JSONRequestError{Err: errors.New("command must be a string")}
	}
	// JSON command names are matched case-sensitively, unlike text ones.
	switch cmd {
	case "ping":
		t, err := jsonTarget(obj, "ping")
		return PingRequest{Target: t}, err
	case "traceroute":
		t, err := jsonTarget(obj, "traceroute")
		return TracerouteRequest{Target: t}, err
	case "status":
		return parseStatusJSON(obj)
	case "connect":
		return parseConnectJSON(obj)
	case "reload":
		return ReloadRequest{}, nil
	case "work":
		return parseWorkJSON(obj)
	}
	return nil, ErrUnknownCommand
}

func jsonTarget(obj map[string]any, cmd string) (string, error) {
	v, ok := obj["target"]
	if !ok {
		return "", fmt.Errorf("no %s target", cmd)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%s target must be string", cmd)
	}
	return s, nil
}

func parseStatusJSON(obj map[string]any) (Request, error) {
	v, ok := obj["requested_fields"]
	if !ok {
		return StatusRequest{}, nil
	}
	list, ok := v.([]any)
	if !ok {
		// Upstream crashes here (quirk Q2 of docs/protocol.md §15.1); this wording is ours.
		return nil, errors.New("requested_fields must be a list of strings")
	}
	r := StatusRequest{Selected: true, Fields: make([]string, 0, len(list))}
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return nil, errors.New("each element of requested_fields must be a string")
		}
		r.Fields = append(r.Fields, s)
	}
	return r, nil
}

func parseConnectJSON(obj map[string]any) (Request, error) {
	var r ConnectRequest
	v, ok := obj["node"]
	if !ok {
		return nil, errors.New("no connect target node")
	}
	if r.Node, ok = v.(string); !ok {
		return nil, errors.New("connect target node must be string")
	}
	v, ok = obj["service"]
	if !ok {
		return nil, errors.New("no connect target service")
	}
	if r.Service, ok = v.(string); !ok {
		return nil, errors.New("connect target service must be string")
	}
	if v, ok = obj["tls"]; ok {
		if r.TLS, ok = v.(string); !ok {
			return nil, errors.New("connect tls name must be string")
		}
	}
	return r, nil
}

// stringField is upstream's strFromMap: "field <name> missing" / "field
// <name> must be a string".
func stringField(obj map[string]any, name string) (string, error) {
	v, ok := obj[name]
	if !ok {
		return "", fmt.Errorf("field %s missing", name)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("field %s must be a string", name)
	}
	return s, nil
}

// optionalString returns the member when it is a string, else "".
func optionalString(obj map[string]any, name string) (string, bool) {
	s, ok := obj[name].(string)
	return s, ok
}

// submitReserved are the submit members that are not work params.
var submitReserved = map[string]bool{
	"command": true, "subcommand": true, "node": true, "worktype": true,
	"tlsclient": true, "ttl": true, "signwork": true, "signature": true,
}

func parseWorkJSON(obj map[string]any) (Request, error) {
	subAny, err := stringField(obj, "subcommand")
	if err != nil {
		return nil, err
	}
	sub := strings.ToLower(subAny)
	switch sub {
	case "submit":
		return parseSubmitJSON(obj)
	case "list":
		id, ok := optionalString(obj, "unitid")
		return WorkListRequest{UnitID: id, HasUnitID: ok}, nil
	case "status", "cancel", "release", "force-release":
		id, err := stringField(obj, "unitid")
		if err != nil {
			return nil, err
		}
		sig, _ := optionalString(obj, "signature")
		return unitRequest(sub, id, sig), nil
	case "results":
		id, err := stringField(obj, "unitid")
		if err != nil {
			return nil, err
		}
		pos, err := intField(obj, "startpos")
		if err != nil {
			return nil, err
		}
		sig, _ := optionalString(obj, "signature")
		return WorkResultsRequest{UnitID: id, StartPos: pos, Signature: sig}, nil
	}
	return nil, errBadCommand
}

func parseSubmitJSON(obj map[string]any) (Request, error) {
	// Upstream reports whichever non-string member its map iteration meets
	// first; sorting makes our choice deterministic.
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := obj[k].(string); !ok {
			return nil, fmt.Errorf("submit parameters must all be strings and %s is not", k)
		}
	}
	node, err := stringField(obj, "node")
	if err != nil {
		return nil, err
	}
	workType, err := stringField(obj, "worktype")
	if err != nil {
		return nil, err
	}
	r := WorkSubmitRequest{Node: node, WorkType: workType, Params: map[string]string{}}
	r.TLSClient, _ = optionalString(obj, "tlsclient")
	r.TTL, _ = optionalString(obj, "ttl")
	signWork, _ := optionalString(obj, "signwork")
	r.SignWork = signWork == "true" // anything else silently means false
	r.Signature.JWT, _ = optionalString(obj, "signature")
	for _, k := range keys {
		if !submitReserved[k] {
			r.Params[k] = obj[k].(string)
		}
	}
	return r, nil
}

// intField is upstream's intFromMap: JSON numbers are truncated; a numeric
// string is rejected (quirk Q3 of docs/protocol.md §15.1); a non-numeric string gives strconv's error.
func intField(obj map[string]any, name string) (int64, error) {
	v, ok := obj[name]
	if !ok {
		return 0, fmt.Errorf("field %s missing", name)
	}
	switch x := v.(type) {
	case float64:
		// Clamp instead of relying on Go's implementation-defined
		// conversion of out-of-range floats.
		switch {
		case x >= math.MaxInt64:
			return math.MaxInt64, nil
		case x <= math.MinInt64:
			return math.MinInt64, nil
		}
		return int64(x), nil
	case string:
		if _, err := strconv.ParseInt(x, 10, 64); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("field %s value %s is not convertible to an int", name, fmtValue(v))
}

// fmtValue renders v as upstream's fmt "%s" of a decoded JSON value does.
func fmtValue(v any) string {
	return fmt.Sprintf("%s", v) //nolint:staticcheck // %s of non-strings is the upstream text
}
