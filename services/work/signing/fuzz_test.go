package signing

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fuzzKey is a small RSA key: signing each input must stay cheap.
type fuzzKey struct {
	key    *rsa.PrivateKey
	pubPEM []byte
	path   string // the public key file
}

func newFuzzKey(f *testing.F) fuzzKey {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	k := fuzzKey{key: key, pubPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
		path: filepath.Join(f.TempDir(), "verify.pem")}
	if err := os.WriteFile(k.path, k.pubPEM, 0o600); err != nil {
		f.Fatal(err)
	}
	return k
}

const fuzzNow = 1700000000

// fuzzSigs are the ways FuzzVerifyToken signs: the RSA algorithms
// Verify accepts, the HMAC confusion (the public key as the secret), none,
// and arbitrary bytes.
var fuzzSigs = []string{"RS512", "RS256", "PS256", "HS512", "none", "garbage"}

// FuzzVerifyToken checks the verification wrapper around the JWT library
// with arbitrary headers, claims and signatures: a token is accepted only
// when it is signed with the verifying key by an RSA algorithm that its
// header names, and it is addressed to the node with an exp; every
// refusal is one of the documented errors, with upstream's texts.
func FuzzVerifyToken(f *testing.F) {
	k := newFuzzKey(f)
	claims := `{"aud":["nodeb"],"exp":1700000300}`
	for i, alg := range fuzzSigs {
		f.Add(`{"alg":"`+alg+`","typ":"JWT"}`, claims, uint8(i), "")
	}
	f.Add(`{"alg":"RS256","typ":"JWT"}`, claims, uint8(0), "")                 // header and signature disagree
	f.Add(`{"alg":"RS512"}`, `{"aud":"nodec","exp":1700000300}`, uint8(0), "") // another node
	f.Add(`{"alg":"RS512","kid":{}}`, `{"aud":["nodeb"]}`, uint8(0), "")
	f.Add(`{"alg":"RS512"}`, claims, uint8(6), "a.b.c")
	f.Add(`{"alg":"RS512"}`, claims, uint8(6), "")
	v, err := NewVerifier(k.path, 0)
	if err != nil {
		f.Fatal(err)
	}
	v.now = func() time.Time { return time.Unix(fuzzNow, 0) }
	f.Fuzz(func(t *testing.T, header, payload string, mode uint8, raw string) {
		signingInput := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(payload))
		var token, how string
		if int(mode) >= len(fuzzSigs) {
			token, how = raw, "raw" // arbitrary token text
		} else {
			how = fuzzSigs[mode]
			var sig []byte
			switch how {
			case "RS512", "RS256", "PS256":
				if sig, err = jwt.GetSigningMethod(how).Sign(signingInput, k.key); err != nil {
					t.Fatal(err)
				}
			case "HS512":
				if sig, err = jwt.SigningMethodHS512.Sign(signingInput, k.pubPEM); err != nil {
					t.Fatal(err)
				}
			case "garbage":
				sig = []byte(raw)
			}
			token = signingInput + "." + base64.RawURLEncoding.EncodeToString(sig)
		}
		err := v.Verify(token, "nodeb")
		if err == nil {
			var h struct {
				Alg string `json:"alg"`
			}
			rsaSigned := how == "RS512" || how == "RS256" || how == "PS256"
			if !rsaSigned || json.Unmarshal([]byte(header), &h) != nil || h.Alg != how {
				t.Fatalf("accepted a token signed by %s whose header is %s", how, header)
			}
			var c jwt.RegisteredClaims
			if _, _, perr := jwt.NewParser().ParseUnverified(token, &c); perr != nil || c.ExpiresAt == nil ||
				!strings.Contains(","+strings.Join(c.Audience, ",")+",", ",nodeb,") {
				t.Fatalf("accepted claims %s: %v", payload, perr)
			}
			return
		}
		switch {
		case token == "" && errors.Is(err, ErrSignatureEmpty):
		case errors.Is(err, ErrTokenInvalid), errors.Is(err, ErrAudienceMismatch):
		case strings.HasPrefix(err.Error(), "could not verify signature: "):
		default:
			t.Fatalf("Verify(%q) = %v, not a documented refusal", token, err)
		}
	})
}

// FuzzVerifierKeyFile writes arbitrary verifying key files (a config
// input) and verifies a good token with them: the key is used only when
// the file holds exactly one PEM block, with the matching public key;
// otherwise Verify says the key file could not be loaded or the signature
// does not verify, and never panics.
func FuzzVerifierKeyFile(f *testing.F) {
	k := newFuzzKey(f)
	f.Add(k.pubPEM)
	f.Add(append(append([]byte{}, k.pubPEM...), k.pubPEM...))
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Add([]byte("ssh-rsa AAAAB3NzaC1yc2E= user@host\n"))
	f.Add([]byte{})
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS512, jwt.MapClaims{"aud": []string{"nodeb"}, "exp": fuzzNow + 300}).SignedString(k.key)
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "key.pem")
	f.Fuzz(func(t *testing.T, file []byte) {
		if len(file) > 64<<10 {
			return
		}
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		v, err := NewVerifier(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		v.now = func() time.Time { return time.Unix(fuzzNow, 0) }
		err = v.Verify(tok, "nodeb")
		block, rest := pem.Decode(file)
		if err == nil {
			if next, _ := pem.Decode(rest); block == nil || next != nil {
				t.Fatalf("a key file that is not exactly one PEM block was used: %q", file)
			}
			return
		}
		if !strings.HasPrefix(err.Error(), "could not load verifying key file: ") &&
			!strings.HasPrefix(err.Error(), "could not verify signature: ") {
			t.Fatalf("Verify with key file %q: %v", file, err)
		}
	})
}
