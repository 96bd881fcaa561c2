// Package signing creates and checks the JWTs that authorise remote work
// requests (spec §5.3): RS512, claims {"aud":[<target node>],"exp":<unix>}.
//
// Key files are only checked for existence when configured: the receptorctl
// test mesh configures OpenSSH-format keys that are never used, and must
// still start. Keys are parsed on first use, with errors that say so.
package signing

import (
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultLifetime is the token lifetime when work-signing has no
// tokenexpiration (upstream crashes instead; quirk Q5).
const DefaultLifetime = 5 * time.Minute

// maxKeyFile bounds key files; an RSA key PEM is a few KiB.
const maxKeyFile = 1 << 20

// Errors of the signature rule, with upstream's exact texts.
var (
	ErrSigningKeyEmpty  = errors.New("cannot sign work: signing key is empty")
	ErrSignatureEmpty   = errors.New("could not verify signature: signature is empty")
	ErrVerifyKeyMissing = errors.New("could not verify signature: verifying key not specified")
	ErrTokenInvalid     = errors.New("token not valid")
	ErrAudienceMismatch = errors.New("token audience did not match node ID")
)

// Signer signs work requests with an RSA private key.
type Signer struct {
	path     string
	lifetime time.Duration
	now      func() time.Time

	mu  sync.Mutex
	key *rsa.PrivateKey
}

// NewSigner checks that keyPath exists and returns a signer issuing tokens
// valid for lifetime (0 means DefaultLifetime).
func NewSigner(keyPath string, lifetime time.Duration) (*Signer, error) {
	if err := mustExist(keyPath); err != nil {
		return nil, err
	}
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	return &Signer{path: keyPath, lifetime: lifetime, now: time.Now}, nil
}

// Lifetime is how long issued tokens stay valid.
func (s *Signer) Lifetime() time.Duration { return s.lifetime }

// Sign returns a token for requests to node audience.
func (s *Signer) Sign(audience string) (string, error) {
	if s == nil {
		return "", ErrSigningKeyEmpty
	}
	key, err := s.loadKey()
	if err != nil {
		return "", err
	}
	claims := jwt.RegisteredClaims{
		Audience:  jwt.ClaimStrings{audience},
		ExpiresAt: jwt.NewNumericDate(s.now().Add(s.lifetime)),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodRS512, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("signing work for %s: %w", audience, err)
	}
	return tok, nil
}

func (s *Signer) loadKey() (*rsa.PrivateKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	b, err := readPEM(s.path)
	if err == nil {
		s.key, err = jwt.ParseRSAPrivateKeyFromPEM(b)
	}
	if err != nil {
		return nil, fmt.Errorf("could not load signing key file: %w", err)
	}
	return s.key, nil
}

// Verifier checks tokens with an RSA public key.
type Verifier struct {
	path   string
	leeway time.Duration
	now    func() time.Time

	mu  sync.Mutex
	key *rsa.PublicKey
}

// NewVerifier checks that keyPath exists and returns a verifier that allows
// leeway of clock skew on exp/nbf/iat (upstream allows none).
func NewVerifier(keyPath string, leeway time.Duration) (*Verifier, error) {
	if err := mustExist(keyPath); err != nil {
		return nil, err
	}
	if leeway < 0 {
		return nil, fmt.Errorf("work verification leeway %v is negative", leeway)
	}
	return &Verifier{path: keyPath, leeway: leeway, now: time.Now}, nil
}

// acceptedAlgs are the RSA algorithms upstream's unpinned check accepts;
// none and HMAC are rejected.
var acceptedAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// Verify checks that token is valid and addressed to nodeID. A nil
// verifier means no verification key is configured.
func (v *Verifier) Verify(token, nodeID string) error {
	if token == "" {
		return ErrSignatureEmpty
	}
	if v == nil {
		return ErrVerifyKeyMissing
	}
	key, err := v.loadKey()
	if err != nil {
		return err
	}
	var claims jwt.RegisteredClaims
	parsed, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods(acceptedAlgs), jwt.WithLeeway(v.leeway), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.now))
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) || errors.Is(err, jwt.ErrTokenNotValidYet) ||
			errors.Is(err, jwt.ErrTokenUsedBeforeIssued) {
			return fmt.Errorf("could not verify signature: %w (allowed clock skew %v)", err, v.leeway)
		}
		return fmt.Errorf("could not verify signature: %w", err)
	}
	if !parsed.Valid {
		return ErrTokenInvalid
	}
	if !slices.Contains(claims.Audience, nodeID) {
		return ErrAudienceMismatch
	}
	return nil
}

func (v *Verifier) loadKey() (*rsa.PublicKey, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.key != nil {
		return v.key, nil
	}
	b, err := readPEM(v.path)
	if err == nil {
		v.key, err = jwt.ParseRSAPublicKeyFromPEM(b)
	}
	if err != nil {
		return nil, fmt.Errorf("could not load verifying key file: %w", err)
	}
	return v.key, nil
}

func mustExist(path string) error {
	if path == "" {
		return errors.New("key file name is empty")
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s does not exist", path)
	}
	return nil
}

// readPEM reads a key file that must hold exactly one PEM block.
func readPEM(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s: key file larger than %d bytes", path, maxKeyFile)
	}
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM data found", path)
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, fmt.Errorf("%s: more than one PEM block", path)
	}
	return b, nil
}
