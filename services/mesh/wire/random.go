package wire

import (
	"crypto/rand"
	"encoding/binary"
	"time"
)

// RandomName returns 8 crypto-random characters from [0-9a-zA-Z], the
// form of UpdateIDs and ephemeral service names (docs/protocol.md §2.4).
func RandomName() string {
	var b [8]byte
	for i := range b {
		b[i] = updateIDCharset[randUint64()%uint64(len(updateIDCharset))]
	}
	return string(b[:])
}

// NewEpoch returns unix_seconds × 2^24 + random[0, 2^24) (docs/protocol.md §2.3).
func NewEpoch(now time.Time) uint64 {
	return uint64(now.Unix())<<24 + randUint64()%(1<<24)
}

func randUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return binary.LittleEndian.Uint64(b[:])
}
