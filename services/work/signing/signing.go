// Package signing creates and checks the JWTs that authorise remote work
// requests: RS512, claims {"aud":[<target node>],"exp":<unix>}.
//
// Verification requires exp and refuses long-lived tokens: a token may live
// at most Limits.MaxLifetime, counted from iat when present, else from now.
// A stolen token is thus useful for a bounded time only.
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
// tokenexpiration (upstream crashes instead; quirk Q5 of docs/protocol.md §15.1).
const DefaultLifetime = 5 * time.Minute

// Defaults for Limits.
const (
	// DefaultMaxLifetime is the longest token lifetime a Verifier accepts
	// and the longest a Signer issues.
	DefaultMaxLifetime = time.Hour
	// DefaultSkew is the clock difference tolerated for iat, nbf and the
	// lifetime measured from now.
	DefaultSkew = 60 * time.Second
)

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
// valid for lifetime (0 means DefaultLifetime). A lifetime over
// DefaultMaxLifetime is lowered to it, since verifiers refuse longer ones;
// compare Lifetime with the requested one to report it.
func NewSigner(keyPath string, lifetime time.Duration) (*Signer, error) {
	if err := mustExist(keyPath); err != nil {
		return nil, err
	}
	if lifetime <= 0 {
		lifetime = DefaultLifetime
	}
	lifetime = min(lifetime, DefaultMaxLifetime)
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

// Limits bound the tokens a Verifier accepts. Zero fields take the
// defaults.
type Limits struct {
	// MaxLifetime bounds exp - iat, or exp - now for a token without iat.
	MaxLifetime time.Duration
	// Skew is the clock difference tolerated for iat and nbf in the
	// future, and added to MaxLifetime when the lifetime is measured from
	// now.
	Skew time.Duration
}

// Verifier checks tokens with an RSA public key.
type Verifier struct {
	path   string
	leeway time.Duration
	limits Limits
	now    func() time.Time

	mu  sync.Mutex
	key *rsa.PublicKey
}

// NewVerifier checks that keyPath exists and returns a verifier that allows
// leeway of clock skew on exp (upstream allows none) and the default Limits.
func NewVerifier(keyPath string, leeway time.Duration) (*Verifier, error) {
	if err := mustExist(keyPath); err != nil {
		return nil, err
	}
	if leeway < 0 {
		return nil, fmt.Errorf("work verification leeway %v is negative", leeway)
	}
	v := &Verifier{path: keyPath, leeway: leeway, now: time.Now}
	v.SetLimits(Limits{})
	return v, nil
}

// SetLimits replaces the verifier's limits; call it before the first
// Verify.
func (v *Verifier) SetLimits(l Limits) {
	if l.MaxLifetime <= 0 {
		l.MaxLifetime = DefaultMaxLifetime
	}
	if l.Skew <= 0 {
		l.Skew = DefaultSkew
	}
	v.limits = l
}

// Errors of the token time rules. Expired, not-yet-valid and issued-in-the-
// future tokens report the jwt package's errors.
var (
	ErrNoExpiration  = errors.New("token has no expiration (exp)")
	ErrLifetimeLimit = errors.New("token lifetime exceeds the maximum")
)

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
	// The time claims are checked below, with separate tolerances.
	parsed, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods(acceptedAlgs), jwt.WithoutClaimsValidation())
	if err != nil {
		return fmt.Errorf("could not verify signature: %w", err)
	}
	if err := v.checkTimes(&claims); err != nil {
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

// checkTimes applies the time rules: exp is required and not past (with
// leeway); iat and nbf, when present, are not in the future (with Skew);
// the lifetime, exp - iat or else exp - now, is at most MaxLifetime (plus
// Skew when measured from now, as the signer's clock may run ahead).
func (v *Verifier) checkTimes(c *jwt.RegisteredClaims) error {
	now := v.now()
	invalid := func(err error, detail string) error {
		return fmt.Errorf("%w: %w%s", jwt.ErrTokenInvalidClaims, err, detail)
	}
	if c.ExpiresAt == nil {
		return invalid(ErrNoExpiration, "")
	}
	exp := c.ExpiresAt.Time
	if now.After(exp.Add(v.leeway)) {
		return &SkewError{invalid(jwt.ErrTokenExpired, fmt.Sprintf(" (allowed clock skew %v)", v.leeway)), now.Sub(exp)}
	}
	if c.NotBefore != nil && c.NotBefore.After(now.Add(v.limits.Skew)) {
		return &SkewError{invalid(jwt.ErrTokenNotValidYet, fmt.Sprintf(" (allowed clock skew %v)", v.limits.Skew)), c.NotBefore.Sub(now)}
	}
	from, slack := now, v.limits.Skew
	if c.IssuedAt != nil {
		if c.IssuedAt.After(now.Add(v.limits.Skew)) {
			return &SkewError{invalid(jwt.ErrTokenUsedBeforeIssued, fmt.Sprintf(" (allowed clock skew %v)", v.limits.Skew)), c.IssuedAt.Sub(now)}
		}
		from, slack = c.IssuedAt.Time, 0
	}
	if life := exp.Sub(from); life > v.limits.MaxLifetime+slack {
		return invalid(ErrLifetimeLimit, fmt.Sprintf(" (%v > %v)", life.Round(time.Second), v.limits.MaxLifetime))
	}
	return nil
}

// SkewError is a token refused for its time: expired (exp past, beyond the
// leeway), or not valid yet (nbf or iat in the future, beyond Skew). Its
// text is the wrapped error's; Skew says by how much the token missed:
// the time since exp, or until nbf or iat. A large value is most often a
// clock difference between the signing and the verifying node.
type SkewError struct {
	err  error
	Skew time.Duration
}

func (e *SkewError) Error() string { return e.err.Error() }
func (e *SkewError) Unwrap() error { return e.err }

// Reason names the rule a Verify error broke, for metrics: missing (no
// signature), no_key (no verification key), expired, not_yet_valid (nbf in
// the future), issued_in_future (iat), no_expiration, lifetime, audience,
// or invalid (malformed token, wrong key or algorithm, unreadable key).
// It returns "" for nil.
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrSignatureEmpty):
		return "missing"
	case errors.Is(err, ErrVerifyKeyMissing):
		return "no_key"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not_yet_valid"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "issued_in_future"
	case errors.Is(err, ErrNoExpiration):
		return "no_expiration"
	case errors.Is(err, ErrLifetimeLimit):
		return "lifetime"
	case errors.Is(err, ErrAudienceMismatch):
		return "audience"
	}
	return "invalid"
}

// Reasons lists every value of Reason but "".
var Reasons = []string{"missing", "no_key", "expired", "not_yet_valid", "issued_in_future", "no_expiration", "lifetime", "audience", "invalid"}

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
