// Package wire encodes and decodes the four netceptor message types (data,
// routing update, service advertisement, reject) byte-for-byte as upstream
// Receptor does (docs/protocol.md §4).
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/minio/highwayhash"
)

// Type is the first byte of every backend message.
type Type byte

// Message types (docs/protocol.md §4.1).
const (
	TypeData      Type = 0
	TypeRoute     Type = 1
	TypeServiceAd Type = 2
	TypeReject    Type = 3
)

// Header and field sizes of a data message (docs/protocol.md §4.2).
const (
	DataHeaderLen   = 36
	MaxServiceLen   = 8
	DefaultHops     = 30
	MaxMessageSize  = 65535
	MaxDataPayload  = MaxMessageSize - DataHeaderLen
	updateIDCharset = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

// Errors returned by the decoders.
var (
	ErrEmpty       = errors.New("empty message")
	ErrWrongType   = errors.New("wrong message type")
	ErrShortHeader = errors.New("data message shorter than its 36-byte header")
	ErrServiceLen  = errors.New("service name longer than 8 bytes")
	ErrTooLarge    = errors.New("message exceeds 65535 bytes")
)

// hashKey is the all-zero 32-byte HighwayHash key upstream uses.
var hashKey = make([]byte, 32)

// HashName returns the 64-bit HighwayHash of name as carried (big-endian)
// in data headers (docs/protocol.md §2.2).
func HashName(name string) uint64 {
	h, err := highwayhash.New64(hashKey)
	if err != nil {
		// Only a key of the wrong length fails; ours is a constant 32 bytes.
		panic(fmt.Sprintf("highwayhash: %v", err))
	}
	_, _ = h.Write([]byte(name))
	return h.Sum64()
}

// MessageType returns the type byte of msg, or ErrEmpty.
func MessageType(msg []byte) (Type, error) {
	if len(msg) == 0 {
		return 0, ErrEmpty
	}
	return Type(msg[0]), nil
}

// DataHeader is the fixed header of a data message.
type DataHeader struct {
	HopsToLive  byte
	FromNode    uint64 // HashName of the source node
	ToNode      uint64 // HashName of the destination node
	FromService string
	ToService   string
}

// AppendData appends a complete data message (type byte, header, payload)
// to dst. Reserved bytes are written as zero.
func AppendData(dst []byte, h DataHeader, payload []byte) ([]byte, error) {
	if len(h.FromService) > MaxServiceLen {
		return dst, fmt.Errorf("encode data header: from service %q: %w", h.FromService, ErrServiceLen)
	}
	if len(h.ToService) > MaxServiceLen {
		return dst, fmt.Errorf("encode data header: to service %q: %w", h.ToService, ErrServiceLen)
	}
	if DataHeaderLen+len(payload) > MaxMessageSize {
		return dst, fmt.Errorf("encode data message with %d-byte payload: %w", len(payload), ErrTooLarge)
	}
	var hdr [DataHeaderLen]byte
	hdr[0] = byte(TypeData)
	hdr[1] = h.HopsToLive
	binary.BigEndian.PutUint64(hdr[4:12], h.FromNode)
	binary.BigEndian.PutUint64(hdr[12:20], h.ToNode)
	copy(hdr[20:28], h.FromService)
	copy(hdr[28:36], h.ToService)
	dst = append(dst, hdr[:]...)
	return append(dst, payload...), nil
}

// DecodeData parses a data message. The returned payload aliases msg.
func DecodeData(msg []byte) (DataHeader, []byte, error) {
	if len(msg) == 0 {
		return DataHeader{}, nil, ErrEmpty
	}
	if Type(msg[0]) != TypeData {
		return DataHeader{}, nil, fmt.Errorf("decode data message of type %d: %w", msg[0], ErrWrongType)
	}
	if len(msg) < DataHeaderLen {
		return DataHeader{}, nil, fmt.Errorf("decode data message of %d bytes: %w", len(msg), ErrShortHeader)
	}
	h := DataHeader{
		HopsToLive:  msg[1],
		FromNode:    binary.BigEndian.Uint64(msg[4:12]),
		ToNode:      binary.BigEndian.Uint64(msg[12:20]),
		FromService: trimService(msg[20:28]),
		ToService:   trimService(msg[28:36]),
	}
	return h, msg[DataHeaderLen:], nil
}

// trimService strips trailing NULs only; embedded NULs are kept (docs/protocol.md §4.2).
func trimService(b []byte) string {
	end := len(b)
	for end > 0 && b[end-1] == 0 {
		end--
	}
	return string(b[:end])
}

// Reject is the complete reject message: type 3 and the JSON of an empty
// string list.
var Reject = []byte{byte(TypeReject), '[', ']'}
