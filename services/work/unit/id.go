package unit

import (
	"crypto/rand"
	"fmt"
	"math/big"
)

const (
	idAlphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	// IDLength is the length of generated unit IDs (docs/protocol.md §13.2).
	IDLength = 8
	// MaxIDLength bounds IDs we accept from users and other nodes.
	MaxIDLength = 64
)

// NewID returns a random 8-character alphanumeric unit ID.
func NewID() (string, error) {
	b := make([]byte, IDLength)
	max := big.NewInt(int64(len(idAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generating unit ID: %w", err)
		}
		b[i] = idAlphabet[n.Int64()]
	}
	return string(b), nil
}

// ValidID reports whether id can name a unit: 1 to 64 ASCII letters and
// digits. Upstream peers extract IDs with [a-zA-Z0-9]+, and the restriction
// keeps every ID a plain directory name inside the data directory.
func ValidID(id string) bool {
	if id == "" || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
