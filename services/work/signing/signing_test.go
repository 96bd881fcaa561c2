package signing

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type keyFiles struct {
	priv, pkcs8, pub string
	key              *rsa.PrivateKey
}

func writeKeys(t *testing.T) keyFiles {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	k := keyFiles{
		priv:  filepath.Join(dir, "signing.pem"),
		pkcs8: filepath.Join(dir, "signing8.pem"),
		pub:   filepath.Join(dir, "verify.pem"),
		key:   key,
	}
	write := func(path, typ string, der []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(k.priv, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(key))
	p8, _ := x509.MarshalPKCS8PrivateKey(key)
	write(k.pkcs8, "PRIVATE KEY", p8)
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	write(k.pub, "PUBLIC KEY", pub)
	return k
}

func TestSignClaimsGolden(t *testing.T) {
	k := writeKeys(t)
	s, err := NewSigner(k.priv, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Lifetime() != DefaultLifetime {
		t.Fatalf("default lifetime = %v", s.Lifetime())
	}
	now := time.Unix(1700000000, 0)
	s.now = func() time.Time { return now }
	tok, err := s.Sign("nodeb")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", tok)
	}
	dec := func(p string) string {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if h := dec(parts[0]); h != `{"alg":"RS512","typ":"JWT"}` {
		t.Fatalf("header = %s", h)
	}
	if c := dec(parts[1]); c != `{"aud":["nodeb"],"exp":1700000300}` {
		t.Fatalf("claims = %s", c)
	}
}

func TestSignVerify(t *testing.T) {
	k := writeKeys(t)
	now := time.Unix(1700000000, 0)
	sign := func(path string, lifetime time.Duration, aud string, at time.Time) string {
		s, err := NewSigner(path, lifetime)
		if err != nil {
			t.Fatal(err)
		}
		s.now = func() time.Time { return at }
		tok, err := s.Sign(aud)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	hmac, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{Audience: jwt.ClaimStrings{"nodeb"}}).SignedString([]byte("k"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.RegisteredClaims{Audience: jwt.ClaimStrings{"nodeb"}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	foreign, _ := jwt.NewWithClaims(jwt.SigningMethodRS512, jwt.RegisteredClaims{Audience: jwt.ClaimStrings{"nodeb"}}).SignedString(other)
	ps256, _ := jwt.NewWithClaims(jwt.SigningMethodPS256, jwt.RegisteredClaims{Audience: jwt.ClaimStrings{"nodeb"},
		ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}).SignedString(k.key)
	// claims signs arbitrary time claims for nodeb; nil times are left out.
	claims := func(exp, iat, nbf *time.Time) string {
		c := jwt.RegisteredClaims{Audience: jwt.ClaimStrings{"nodeb"}}
		if exp != nil {
			c.ExpiresAt = jwt.NewNumericDate(*exp)
		}
		if iat != nil {
			c.IssuedAt = jwt.NewNumericDate(*iat)
		}
		if nbf != nil {
			c.NotBefore = jwt.NewNumericDate(*nbf)
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodRS512, c).SignedString(k.key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }

	tests := []struct {
		name    string
		token   string
		leeway  time.Duration
		wantErr string // exact text or prefix ending in "*"
	}{
		{"valid pkcs1", sign(k.priv, time.Minute, "nodeb", now), 0, ""},
		{"valid pkcs8", sign(k.pkcs8, time.Minute, "nodeb", now), 0, ""},
		{"ps256 accepted", ps256, 0, ""},
		{"empty", "", 0, "could not verify signature: signature is empty"},
		{"wrong audience", sign(k.priv, time.Minute, "nodec", now), 0, "token audience did not match node ID"},
		{"expired", sign(k.priv, time.Minute, "nodeb", now.Add(-2*time.Minute)), 0,
			"could not verify signature: token has invalid claims: token is expired (allowed clock skew 0s)"},
		{"expired within leeway", sign(k.priv, time.Minute, "nodeb", now.Add(-2*time.Minute)), 2 * time.Minute, ""},
		{"hmac rejected", hmac, 0, "could not verify signature: *"},
		{"none rejected", none, 0, "could not verify signature: *"},
		{"foreign key", foreign, 0, "could not verify signature: token signature is invalid: crypto/rsa: verification error"},
		{"garbage", "abc", 0, "could not verify signature: token is malformed*"},

		// Time rules: exp required, bounded lifetime, small skew.
		{"default signer lifetime", sign(k.priv, 0, "nodeb", now), 0, ""},
		{"no exp", claims(nil, nil, nil), 0, "could not verify signature: token has invalid claims: token has no expiration (exp)"},
		{"no exp with iat", claims(nil, at(0), nil), 0, "could not verify signature: token has invalid claims: token has no expiration (exp)"},
		{"lifetime from iat at the maximum", claims(at(time.Hour-time.Minute), at(-time.Minute), nil), 0, ""},
		{"lifetime from iat over the maximum", claims(at(time.Hour), at(-time.Second), nil), 0,
			"could not verify signature: token has invalid claims: token lifetime exceeds the maximum (1h0m1s > 1h0m0s)"},
		{"lifetime from now within skew", claims(at(time.Hour+59*time.Second), nil, nil), 0, ""},
		{"lifetime from now over the maximum", claims(at(2*time.Hour), nil, nil), 0,
			"could not verify signature: token has invalid claims: token lifetime exceeds the maximum (2h0m0s > 1h0m0s)"},
		{"iat in the future within skew", claims(at(time.Minute), at(30*time.Second), nil), 0, ""},
		{"iat in the future beyond skew", claims(at(5*time.Minute), at(2*time.Minute), nil), 0,
			"could not verify signature: token has invalid claims: token used before issued (allowed clock skew 1m0s)"},
		{"nbf in the future within skew", claims(at(time.Minute), nil, at(59*time.Second)), 0, ""},
		{"nbf in the future beyond skew", claims(at(5*time.Minute), nil, at(61*time.Second)), 0,
			"could not verify signature: token has invalid claims: token is not valid yet (allowed clock skew 1m0s)"},
		{"far-future iat cannot stretch the lifetime", claims(at(10*time.Hour), at(9*time.Hour+30*time.Minute), nil), 0,
			"could not verify signature: token has invalid claims: token used before issued (allowed clock skew 1m0s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewVerifier(k.pub, tt.leeway)
			if err != nil {
				t.Fatal(err)
			}
			v.now = func() time.Time { return now }
			err = v.Verify(tt.token, "nodeb")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Verify: %v", err)
			case tt.wantErr == "":
			case err == nil:
				t.Fatalf("Verify succeeded, want %q", tt.wantErr)
			case strings.HasSuffix(tt.wantErr, "*"):
				if !strings.HasPrefix(err.Error(), strings.TrimSuffix(tt.wantErr, "*")) {
					t.Fatalf("Verify error %q, want prefix %q", err, tt.wantErr)
				}
			case err.Error() != tt.wantErr:
				t.Fatalf("Verify error %q, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestLimits: SetLimits changes the maximum lifetime and skew, and a
// signer never issues tokens longer than verifiers accept.
func TestLimits(t *testing.T) {
	k := writeKeys(t)
	now := time.Unix(1700000000, 0)
	s, err := NewSigner(k.priv, 10*time.Hour+30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if s.Lifetime() != DefaultMaxLifetime {
		t.Fatalf("signer lifetime %v, want it lowered to %v", s.Lifetime(), DefaultMaxLifetime)
	}
	s.now = func() time.Time { return now }
	tok, err := s.Sign("nodeb")
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(k.pub, 0)
	if err != nil {
		t.Fatal(err)
	}
	v.now = func() time.Time { return now }
	if err := v.Verify(tok, "nodeb"); err != nil {
		t.Fatalf("a token of the lowered lifetime: %v", err)
	}
	v.SetLimits(Limits{MaxLifetime: 10 * time.Minute, Skew: time.Second})
	if err := v.Verify(tok, "nodeb"); !errors.Is(err, ErrLifetimeLimit) {
		t.Fatalf("a 1 h token against a 10 min limit: %v, want ErrLifetimeLimit", err)
	}
}

// FuzzVerify signs arbitrary time claims and checks that an accepted token
// obeys the time rules.
func FuzzVerify(f *testing.F) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	path := filepath.Join(dir, "verify.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	f.Add(`{"aud":["nodeb"],"exp":1700000300}`)
	f.Add(`{"aud":["nodeb"]}`)
	f.Add(`{"aud":"nodeb","exp":1700003600,"iat":1700000000}`)
	f.Add(`{"aud":["nodeb"],"exp":1800000000,"iat":1799999000}`)
	f.Add(`{"aud":["nodeb"],"exp":1700000060,"nbf":1700000059}`)
	f.Add(`{"aud":["nodeb"],"exp":1.7e9,"iat":-1e300}`)
	f.Add(`{"aud":["nodeb"],"exp":"1700000300"}`)
	f.Fuzz(func(t *testing.T, payload string) {
		// A compact JWS over the raw payload, so malformed claims get in.
		signing := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS512","typ":"JWT"}`)) + "." +
			base64.RawURLEncoding.EncodeToString([]byte(payload))
		sig, err := jwt.SigningMethodRS512.Sign(signing, key)
		if err != nil {
			t.Fatal(err)
		}
		v, err := NewVerifier(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		v.now = func() time.Time { return now }
		tok := signing + "." + base64.RawURLEncoding.EncodeToString(sig)
		if v.Verify(tok, "nodeb") != nil {
			return
		}
		var c jwt.RegisteredClaims
		if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil {
			t.Fatalf("accepted claims %s do not parse: %v", payload, err)
		}
		if c.ExpiresAt == nil || now.After(c.ExpiresAt.Time) {
			t.Fatalf("accepted %s: exp missing or past", payload)
		}
		from, slack := now, DefaultSkew
		if c.IssuedAt != nil {
			from, slack = c.IssuedAt.Time, 0
			if c.IssuedAt.After(now.Add(DefaultSkew)) {
				t.Fatalf("accepted %s: iat in the future", payload)
			}
		}
		if c.NotBefore != nil && c.NotBefore.After(now.Add(DefaultSkew)) {
			t.Fatalf("accepted %s: nbf in the future", payload)
		}
		if c.ExpiresAt.Sub(from) > DefaultMaxLifetime+slack {
			t.Fatalf("accepted %s: lifetime %v", payload, c.ExpiresAt.Sub(from))
		}
	})
}

func TestNilVerifierAndSigner(t *testing.T) {
	var v *Verifier
	if err := v.Verify("x", "n"); !errors.Is(err, ErrVerifyKeyMissing) || err.Error() != "could not verify signature: verifying key not specified" {
		t.Fatalf("nil verifier: %v", err)
	}
	var s *Signer
	if _, err := s.Sign("n"); err == nil || err.Error() != "cannot sign work: signing key is empty" {
		t.Fatalf("nil signer: %v", err)
	}
}

func TestKeysCheckedForExistenceOnlyAtStartup(t *testing.T) {
	dir := t.TempDir()
	openssh := filepath.Join(dir, "id_rsa")
	// An OpenSSH key, as the receptorctl test mesh configures: startup
	// must accept it; first use must fail clearly.
	if err := os.WriteFile(openssh, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(openssh, time.Minute)
	if err != nil {
		t.Fatalf("NewSigner on an unparsable existing key: %v", err)
	}
	if _, err := s.Sign("n"); err == nil || !strings.HasPrefix(err.Error(), "could not load signing key file: ") {
		t.Fatalf("Sign with an OpenSSH key: %v", err)
	}
	v, err := NewVerifier(openssh, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify("a.b.c", "n"); err == nil || !strings.HasPrefix(err.Error(), "could not load verifying key file: ") {
		t.Fatalf("Verify with an OpenSSH key: %v", err)
	}
	missing := filepath.Join(dir, "missing.pem")
	if _, err := NewSigner(missing, 0); err == nil || err.Error() != missing+" does not exist" {
		t.Fatalf("NewSigner(missing) = %v", err)
	}
	if _, err := NewVerifier(missing, 0); err == nil {
		t.Fatal("NewVerifier(missing) succeeded")
	}
}

func TestTwoPEMBlocksRejected(t *testing.T) {
	k := writeKeys(t)
	b1, _ := os.ReadFile(k.priv)
	both := filepath.Join(t.TempDir(), "both.pem")
	_ = os.WriteFile(both, append(b1, b1...), 0o600)
	s, err := NewSigner(both, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign("n"); err == nil || !strings.Contains(err.Error(), "more than one PEM block") {
		t.Fatalf("Sign with two PEM blocks: %v", err)
	}
}

// TestReasonAndSkew: each time rule reports its reason, and SkewError says
// by how much the token missed.
func TestReasonAndSkew(t *testing.T) {
	k := writeKeys(t)
	now := time.Unix(1700000000, 0)
	s, err := NewSigner(k.priv, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	key, err := s.loadKey()
	if err != nil {
		t.Fatal(err)
	}
	sign := func(c jwt.RegisteredClaims) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodRS512, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	v, err := NewVerifier(k.pub, 0)
	if err != nil {
		t.Fatal(err)
	}
	v.now = func() time.Time { return now }
	at := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(now.Add(d)) }
	aud := jwt.ClaimStrings{"nodeb"}
	for _, c := range []struct {
		name   string
		token  string
		reason string
		skew   time.Duration // 0: no SkewError
	}{
		{"expired 90 s ago", sign(jwt.RegisteredClaims{Audience: aud, ExpiresAt: at(-90 * time.Second)}), "expired", 90 * time.Second},
		{"nbf in 10 min", sign(jwt.RegisteredClaims{Audience: aud, ExpiresAt: at(20 * time.Minute), NotBefore: at(10 * time.Minute)}), "not_yet_valid", 10 * time.Minute},
		{"iat in 2 h", sign(jwt.RegisteredClaims{Audience: aud, ExpiresAt: at(150 * time.Minute), IssuedAt: at(2 * time.Hour)}), "issued_in_future", 2 * time.Hour},
		{"no exp", sign(jwt.RegisteredClaims{Audience: aud}), "no_expiration", 0},
		{"other node", sign(jwt.RegisteredClaims{Audience: jwt.ClaimStrings{"nodec"}, ExpiresAt: at(time.Minute)}), "audience", 0},
		{"garbage", "not.a.token", "invalid", 0},
		{"empty", "", "missing", 0},
	} {
		err := v.Verify(c.token, "nodeb")
		if got := Reason(err); got != c.reason {
			t.Errorf("%s: reason %q (%v), want %q", c.name, got, err, c.reason)
		}
		var se *SkewError
		switch {
		case c.skew == 0 && errors.As(err, &se):
			t.Errorf("%s: unexpected SkewError %v", c.name, se.Skew)
		case c.skew != 0 && (!errors.As(err, &se) || se.Skew != c.skew):
			t.Errorf("%s: %v, want a SkewError of %v", c.name, err, c.skew)
		}
	}
	if Reason(nil) != "" {
		t.Error("Reason(nil) is not empty")
	}
	var nilV *Verifier
	if r := Reason(nilV.Verify("x", "nodeb")); r != "no_key" {
		t.Errorf("nil verifier: reason %q", r)
	}
}
