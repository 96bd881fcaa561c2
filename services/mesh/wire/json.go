package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// The structs below have no json tags on purpose: upstream marshals
// untagged structs, so the keys are the Go field names in field order
// (docs/protocol.md §4.3). Decoding through encoding/json gives upstream's leniency
// (case-insensitive keys, unknown keys ignored, exact uint64).

// RoutingUpdate is the body of a type-1 message (docs/protocol.md §4.4).
type RoutingUpdate struct {
	NodeID             string
	UpdateID           string
	UpdateEpoch        uint64
	UpdateSequence     uint64
	Connections        map[string]float64
	ForwardingNode     string
	SuspectedDuplicate uint64
}

// WorkCommand is one element of an advertisement's WorkCommands.
type WorkCommand struct {
	WorkType string
	Secure   bool
}

// Advertisement is the body of a type-2 message (docs/protocol.md §4.5).
type Advertisement struct {
	NodeID       string
	Service      string
	Time         time.Time
	ConnType     byte
	Tags         map[string]string
	WorkCommands []WorkCommand
	Cancel       bool
}

// UnreachablePayload is the payload of a data message to service unreach
// (docs/protocol.md §8.3).
type UnreachablePayload struct {
	FromNode    string
	ToNode      string
	FromService string
	ToService   string
	Problem     string
}

func encodeTyped(t Type, v any, what string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(byte(t))
	// json.Marshal escapes <, >, & like upstream; Encoder would add a newline.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", what, err)
	}
	buf.Write(b)
	if buf.Len() > MaxMessageSize {
		return nil, fmt.Errorf("encode %s of %d bytes: %w", what, buf.Len(), ErrTooLarge)
	}
	return buf.Bytes(), nil
}

func decodeTyped(msg []byte, t Type, v any, what string) error {
	if len(msg) == 0 {
		return ErrEmpty
	}
	if Type(msg[0]) != t {
		return fmt.Errorf("decode %s from message type %d: %w", what, msg[0], ErrWrongType)
	}
	if err := json.Unmarshal(msg[1:], v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	return nil
}

// EncodeRoute returns the complete type-1 message for u.
func EncodeRoute(u *RoutingUpdate) ([]byte, error) {
	return encodeTyped(TypeRoute, u, "routing update")
}

// DecodeRoute parses a complete type-1 message.
func DecodeRoute(msg []byte) (*RoutingUpdate, error) {
	u := new(RoutingUpdate)
	if err := decodeTyped(msg, TypeRoute, u, "routing update"); err != nil {
		return nil, err
	}
	return u, nil
}

// EncodeAd returns the complete type-2 message for a.
func EncodeAd(a *Advertisement) ([]byte, error) {
	return encodeTyped(TypeServiceAd, a, "service advertisement")
}

// DecodeAd parses a complete type-2 message.
func DecodeAd(msg []byte) (*Advertisement, error) {
	a := new(Advertisement)
	if err := decodeTyped(msg, TypeServiceAd, a, "service advertisement"); err != nil {
		return nil, err
	}
	return a, nil
}

// EncodeUnreachable returns the JSON payload of an unreachable message.
func EncodeUnreachable(u *UnreachablePayload) ([]byte, error) {
	b, err := json.Marshal(u)
	if err != nil {
		return nil, fmt.Errorf("encode unreachable: %w", err)
	}
	return b, nil
}

// DecodeUnreachable parses an unreachable payload.
func DecodeUnreachable(payload []byte) (*UnreachablePayload, error) {
	u := new(UnreachablePayload)
	if err := json.Unmarshal(payload, u); err != nil {
		return nil, fmt.Errorf("decode unreachable payload: %w", err)
	}
	return u, nil
}
