package authz

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"strings"
	"testing"

	"github.com/receptor-mesh/receptor/services/testkit"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustPolicy(t testing.TB, rules ...Rule) *Policy {
	t.Helper()
	p, err := New(Options{Rules: rules, SelfNodeID: "self", Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRoles(t *testing.T) {
	for a := ActionStatus; a < actionEnd; a++ {
		// The web view's files are the one public action (role.go).
		if RoleNone.Allows(a) != (a == ActionWebView) {
			t.Errorf("none allows %v = %v", a, RoleNone.Allows(a))
		}
		if !RoleAdmin.Allows(a) {
			t.Errorf("admin does not allow %v", a)
		}
	}
	for _, tc := range []struct {
		r    Role
		a    Action
		want bool
	}{
		{RoleReader, ActionWorkRead, true}, {RoleReader, ActionWorkSubmit, false},
		{RoleOperator, ActionWorkSubmit, true}, {RoleOperator, ActionWorkRelease, true},
		{RoleOperator, ActionSignWork, false}, {RoleOperator, ActionReload, false},
		{RoleOperator, ActionConnect, false}, {RoleOperator, ActionMeshSocket, false},
		{RoleAdmin, Action(0), false}, {RoleAdmin, actionEnd, false},
	} {
		if got := tc.r.Allows(tc.a); got != tc.want {
			t.Errorf("%v allows %v = %v, want %v", tc.r, tc.a, got, tc.want)
		}
	}
}

func TestRoleOf(t *testing.T) {
	def := mustPolicy(t)
	cfg := mustPolicy(t,
		Rule{Role: RoleReader, Principals: []string{"node:*", "cert:dash"}},
		Rule{Role: RoleOperator, Principals: []string{"node:awx"}},
		Rule{Role: RoleReader, Principals: []string{"uid:1000"}},
		Rule{Role: RoleOperator, Token: "0123456789abcdef-ci", TokenName: "ci"},
	)
	for _, tc := range []struct {
		p    *Policy
		pr   string
		want Role
	}{
		{def, "uid:0", RoleAdmin}, {def, "uid:1000", RoleAdmin}, // upstream: the socket decides
		{def, "node:any", RoleOperator}, // remote work between nodes
		{def, "cert:any", RoleNone}, {def, "anonymous", RoleNone}, {def, "token:x", RoleNone},
		{def, "cert:self", RoleAdmin}, // the node's own other half
		{cfg, "node:hop", RoleReader}, {cfg, "node:awx", RoleOperator},
		{cfg, "cert:dash", RoleReader}, {cfg, "cert:dash2", RoleNone},
		{cfg, "uid:1000", RoleReader}, {cfg, "uid:0", RoleNone}, // naming a uid replaces the implicit rule
		{cfg, "token:ci", RoleOperator},
	} {
		pr, err := ParsePrincipal(tc.pr)
		if err != nil {
			t.Fatal(err)
		}
		if got := tc.p.RoleOf(pr); got != tc.want {
			t.Errorf("RoleOf(%s) = %v, want %v", tc.pr, got, tc.want)
		}
	}
	if got := def.RoleOf(Internal); got != RoleAdmin {
		t.Errorf("internal: %v", got)
	}
}

func TestCheckErrors(t *testing.T) {
	p := mustPolicy(t)
	var d *DeniedError
	err := p.Check(Anonymous, ActionStatus, "test")
	if !errors.As(err, &d) || !d.IsUnauthenticated() || !strings.Contains(err.Error(), "authentication required") {
		t.Errorf("anonymous: %v", err)
	}
	err = p.Check(Principal{Kind: KindNode, Name: "b"}, ActionSignWork, "test")
	if !errors.As(err, &d) || d.IsUnauthenticated() || err.Error() != "permission denied: node:b (role operator) may not signwork" {
		t.Errorf("node signwork: %v", err)
	}
	if err := p.Check(Principal{Kind: KindNode, Name: "b"}, ActionWorkSubmit, "test"); err != nil {
		t.Errorf("node submit: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, r := range []Rule{
		{Role: RoleNone, Principals: []string{"node:a"}},
		{Role: RoleAdmin},
		{Role: RoleAdmin, Principals: []string{"internal:self"}},
		{Role: RoleAdmin, Principals: []string{"bogus:x"}},
		{Role: RoleAdmin, Principals: []string{"node:"}},
		{Role: RoleAdmin, Token: "short", TokenName: "t"},
		{Role: RoleAdmin, Token: "long-enough-token-1234", TokenName: ""},
		{Role: RoleAdmin, Principals: []string{"node:a"}, MaxUnits: -1},
	} {
		if _, err := New(Options{Rules: []Rule{r}, Logger: quiet()}); err == nil {
			t.Errorf("New accepted %+v", r)
		}
	}
	dup := Rule{Role: RoleReader, Token: "long-enough-token-1234", TokenName: "a"}
	dup2 := dup
	dup2.TokenName = "b"
	if _, err := New(Options{Rules: []Rule{dup, dup2}, Logger: quiet()}); err == nil {
		t.Error("New accepted one secret for two tokens")
	}
}

func TestLimits(t *testing.T) {
	p := mustPolicy(t,
		Rule{Role: RoleOperator, Principals: []string{"node:*"}, MaxUnits: 50},
		Rule{Role: RoleOperator, Principals: []string{"node:small"}, MaxUnits: 5, MaxStdin: 1024},
	)
	if l := p.Limits(Principal{Kind: KindNode, Name: "x"}); l.MaxUnits != 50 || l.MaxStdin != DefaultMaxStdin {
		t.Errorf("node:x limits %+v", l)
	}
	if l := p.Limits(Principal{Kind: KindNode, Name: "small"}); l.MaxUnits != 5 || l.MaxStdin != 1024 {
		t.Errorf("node:small limits %+v", l)
	}
	if l := p.Limits(Internal); l != (Limits{}) {
		t.Errorf("internal limits %+v", l)
	}
	if l := p.Limits(Principal{Kind: KindUnix, Name: "0"}); l.MaxUnits != DefaultMaxUnits {
		t.Errorf("uid:0 limits %+v", l)
	}
}

func TestTrustsOrigin(t *testing.T) {
	p := mustPolicy(t)
	for pr, want := range map[Principal]bool{
		Internal: true, {Kind: KindUnix, Name: "0"}: true, {Kind: KindCert, Name: "self"}: true,
		{Kind: KindCert, Name: "other"}: false, {Kind: KindNode, Name: "self"}: false,
		{Kind: KindToken, Name: "http-gateway"}: false, Anonymous: false,
	} {
		if got := p.TrustsOrigin(pr); got != want {
			t.Errorf("TrustsOrigin(%s) = %v", pr, got)
		}
	}
}

func selfSigned(t testing.TB, cn string, dns []string) *x509.Certificate {
	t.Helper()
	return testkit.SelfSigned(t, testkit.IssueOptions{CommonName: cn, DNSNames: dns}).X509
}

func TestFromCertificate(t *testing.T) {
	if p, ok := FromCertificate(selfSigned(t, "cn", []string{"dns.example"})); !ok || p.String() != "cert:dns.example" {
		t.Errorf("DNS name first: %v %v", p, ok)
	}
	if p, ok := FromCertificate(selfSigned(t, "cn", nil)); !ok || p.String() != "cert:cn" {
		t.Errorf("CN: %v %v", p, ok)
	}
	if _, ok := FromCertificate(selfSigned(t, "", nil)); ok {
		t.Error("a certificate naming nothing named a principal")
	}
}

// FuzzPrincipal: whatever string a relay or a rule carries, parsing never
// panics, round-trips, and never yields the internal principal's role to
// a configured rule.
func FuzzPrincipal(f *testing.F) {
	for _, s := range []string{"uid:0", "cert:a", "node:*", "token:x", "anonymous", "internal:self", ":", "node:a:b", "uid:\x00"} {
		f.Add(s)
	}
	p := mustPolicy(f, Rule{Role: RoleReader, Principals: []string{"node:*"}})
	f.Fuzz(func(t *testing.T, s string) {
		pr, err := ParsePrincipal(s)
		if err != nil {
			return
		}
		back, err := ParsePrincipal(pr.String())
		if err != nil || back != pr {
			t.Fatalf("%q -> %v -> %v %v", s, pr, back, err)
		}
		if _, err := New(Options{Rules: []Rule{{Role: RoleAdmin, Principals: []string{s}}}, Logger: quiet()}); err == nil && pr.Kind == KindInternal {
			t.Fatalf("a rule granted the internal principal %q", s)
		}
		_ = p.RoleOf(pr)
	})
}

// FuzzToken: only the configured secret maps to its principal.
func FuzzToken(f *testing.F) {
	const secret = "the-real-secret-0123456789"
	f.Add(secret)
	f.Add("")
	f.Add("the-real-secret-012345678")
	f.Add("Bearer the-real-secret-0123456789")
	p := mustPolicy(f, Rule{Role: RoleAdmin, Token: secret, TokenName: "admin"})
	f.Fuzz(func(t *testing.T, s string) {
		pr, ok := p.Token(s)
		if ok != (s == secret) {
			t.Fatalf("Token(%q) = %v %v", s, pr, ok)
		}
	})
}

// FuzzCertificateName: any certificate names at most one principal, of
// kind cert, that parses back.
func FuzzCertificateName(f *testing.F) {
	f.Add("node-a", "dns.example")
	f.Add("", "")
	f.Add("a:b", "*")
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cn, dns string) {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}}
		if dns != "" {
			tmpl.DNSNames = []string{dns}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			return
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		pr, ok := FromCertificate(c)
		if !ok {
			return
		}
		if pr.Kind != KindCert || pr.Name == "" {
			t.Fatalf("certificate %q/%q named %v", cn, dns, pr)
		}
		if back, err := ParsePrincipal(pr.String()); err != nil || back != pr {
			t.Fatalf("%v does not parse back: %v %v", pr, back, err)
		}
	})
}
