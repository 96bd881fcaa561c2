package tlsconf

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"strings"
	"testing"
)

func TestParseFingerprint(t *testing.T) {
	h32 := strings.Repeat("ab", 32)
	h64 := strings.Repeat("0F", 64)
	colon32 := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	tests := []struct {
		in      string
		wantLen int
		wantErr string
	}{
		{h32, 32, ""},
		{h64, 64, ""},
		{colon32, 32, ""},
		{"::" + h32 + "::", 32, ""},
		{strings.Repeat("ab", 20), 0, "fingerprints must be 32 or 64 bytes for sha256 or sha512"},
		{strings.Repeat("ab", 48), 0, "fingerprints must be 32 or 64 bytes for sha256 or sha512"},
		{"", 0, "fingerprints must be 32 or 64 bytes for sha256 or sha512"},
		{strings.Repeat("zz", 32), 0, "error decoding fingerprint"},
		{h32 + "a", 0, "error decoding fingerprint"},
		{strings.Repeat(":", 1000) + h32, 0, "error decoding fingerprint"},
	}
	for _, tt := range tests {
		got, err := ParseFingerprint(tt.in)
		if errString(err) != tt.wantErr {
			t.Errorf("ParseFingerprint(%q) error %q, want %q", tt.in, errString(err), tt.wantErr)
			continue
		}
		if len(got) != tt.wantLen {
			t.Errorf("ParseFingerprint(%q) = %d bytes, want %d", tt.in, len(got), tt.wantLen)
		}
	}
	if got, _ := ParseFingerprint(colon32); hex.EncodeToString(got) != h32 {
		t.Errorf("colon form decoded to %x", got)
	}
}

func TestParseFingerprints(t *testing.T) {
	got, err := ParseFingerprints([]string{strings.Repeat("00", 32), strings.Repeat("11", 64)})
	if err != nil || len(got) != 2 {
		t.Fatalf("got %d pins, %v", len(got), err)
	}
	_, err = ParseFingerprints([]string{strings.Repeat("00", 32), "xyz"})
	if want := "error decoding fingerprints: error decoding fingerprint"; errString(err) != want {
		t.Errorf("error %q, want %q", errString(err), want)
	}
	if got, err := ParseFingerprints(nil); err != nil || len(got) != 0 {
		t.Errorf("nil list: %v %v", got, err)
	}
}

func TestCheckPins(t *testing.T) {
	der := []byte("pretend certificate")
	s224 := sha256.Sum224(der)
	s256 := sha256.Sum256(der)
	s384 := sha512.Sum384(der)
	s512 := sha512.Sum512(der)
	wrong := sha256.Sum256([]byte("other"))
	const noMatch = "RVF failed: presented certificate does not match any pinned fingerprint"
	tests := []struct {
		name    string
		pins    [][]byte
		wantErr string
	}{
		{"no pins", nil, ""},
		{"sha224", [][]byte{s224[:]}, ""},
		{"sha256", [][]byte{s256[:]}, ""},
		{"sha384", [][]byte{s384[:]}, ""},
		{"sha512", [][]byte{s512[:]}, ""},
		{"second pin matches", [][]byte{wrong[:], s512[:]}, ""},
		{"wrong", [][]byte{wrong[:]}, noMatch},
		{"bad length", [][]byte{{1, 2, 3}}, "RVF failed: pinned certificate must be sha224, sha256, sha384 or sha512"},
	}
	for _, tt := range tests {
		if got := errString(checkPins(der, tt.pins)); got != tt.wantErr {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.wantErr)
		}
	}
	if fp := Fingerprint(der); len(fp) != 95 || strings.ToUpper(fp) != fp {
		t.Errorf("Fingerprint = %q", fp)
	}
	if got, err := ParseFingerprint(Fingerprint(der)); err != nil || string(got) != string(s256[:]) {
		t.Errorf("Fingerprint does not parse back: %x %v", got, err)
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add(strings.Repeat("ab", 32))
	f.Add(strings.TrimSuffix(strings.Repeat("AB:", 64), ":"))
	f.Add("zz")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		if len(b) != 32 && len(b) != 64 {
			t.Fatalf("accepted %d-byte fingerprint from %q", len(b), s)
		}
		if !strings.EqualFold(hex.EncodeToString(b), strings.ReplaceAll(s, ":", "")) {
			t.Fatalf("%q decoded to %x", s, b)
		}
	})
}
