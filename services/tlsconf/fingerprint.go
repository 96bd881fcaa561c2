package tlsconf

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// maxFingerprintText bounds one configured fingerprint: 64 bytes as hex with
// a colon between every byte is 191 characters.
const maxFingerprintText = 256

// ParseFingerprint decodes one pinned certificate fingerprint: hex digits,
// colons allowed anywhere, 32 (SHA-256) or 64 (SHA-512) bytes. The error
// texts are upstream's.
func ParseFingerprint(s string) ([]byte, error) {
	if len(s) > maxFingerprintText {
		return nil, errors.New("error decoding fingerprint")
	}
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil {
		return nil, errors.New("error decoding fingerprint")
	}
	if len(b) != sha256.Size && len(b) != sha512.Size {
		return nil, errors.New("fingerprints must be 32 or 64 bytes for sha256 or sha512")
	}
	return b, nil
}

// ParseFingerprints decodes a pinnedservercert/pinnedclientcert list.
func ParseFingerprints(list []string) ([][]byte, error) {
	out := make([][]byte, 0, len(list))
	for _, s := range list {
		b, err := ParseFingerprint(s)
		if err != nil {
			return nil, fmt.Errorf("error decoding fingerprints: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}

// Fingerprint formats the SHA-256 digest of a DER certificate the way the
// pin options accept it (colon-separated upper-case hex, as openssl prints).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// checkPins reports whether the leaf DER matches one of the pins; the digest
// is chosen by pin length (docs/protocol.md §9.3 step 2).
func checkPins(leafDER []byte, pins [][]byte) error {
	if len(pins) == 0 {
		return nil
	}
	for _, pin := range pins {
		var sum []byte
		switch len(pin) {
		case sha256.Size224:
			s := sha256.Sum224(leafDER)
			sum = s[:]
		case sha256.Size:
			s := sha256.Sum256(leafDER)
			sum = s[:]
		case sha512.Size384:
			s := sha512.Sum384(leafDER)
			sum = s[:]
		case sha512.Size:
			s := sha512.Sum512(leafDER)
			sum = s[:]
		default:
			return errors.New("RVF failed: pinned certificate must be sha224, sha256, sha384 or sha512")
		}
		if bytes.Equal(pin, sum) {
			return nil
		}
	}
	return errors.New("RVF failed: presented certificate does not match any pinned fingerprint")
}
