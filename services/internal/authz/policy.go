package authz

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Default per-principal limits, generous enough for a busy automation
// controller submitting through one node.
const (
	DefaultMaxUnits = 2000    // concurrent unfinished units
	DefaultMaxStdin = 1 << 30 // bytes of stdin per submission
	// MinTokenLen is the shortest bearer token accepted in configuration.
	MinTokenLen = 16
)

// Rule grants Role to the principals it names.
type Rule struct {
	Role Role
	// Principals are patterns in Principal.String form; a name of "*"
	// matches every principal of that kind ("node:*", "cert:*", "uid:*").
	Principals []string
	// Token, when set, is a bearer token secret; presenting it makes the
	// caller the principal "token:"+TokenName, which this rule grants.
	Token     string
	TokenName string
	// MaxUnits and MaxStdin override the default limits of the principals
	// this rule matches; 0 keeps the default.
	MaxUnits int
	MaxStdin int64
}

// Limits bound what one principal may hold at once.
type Limits struct {
	MaxUnits int   // concurrent unfinished units; 0 = unlimited
	MaxStdin int64 // bytes of stdin per submission; 0 = unlimited
}

// Options configure a Policy.
type Options struct {
	Rules []Rule
	// SelfNodeID: certificates naming this node are its own other half
	// (a split router and work agent share the node's identity) and are
	// admin.
	SelfNodeID string
	Logger     *slog.Logger
}

// Policy answers who may do what. It is immutable once built and safe for
// concurrent use.
type Policy struct {
	rules  []rule
	tokens []token
	self   string
	log    *slog.Logger
	// denials counts refusals by action and face (metrics.go).
	denials denialCounts
}

type rule struct {
	role     Role
	match    []pattern
	maxUnits int
	maxStdin int64
}

type pattern struct {
	kind Kind
	name string // "*" for any
}

type token struct {
	sum  [sha256.Size]byte
	name string
}

// implicitRules apply to a kind of principal that no configured rule
// mentions: unix-socket peers are admin, as upstream (the socket's file
// permissions decide who connects), and mesh nodes are operators, so
// remote work between nodes works as upstream. Naming any principal of a
// kind in a rule replaces that kind's implicit rule: the configuration
// then says everything about that kind.
var implicitRules = []Rule{
	{Role: RoleAdmin, Principals: []string{"uid:*"}},
	{Role: RoleOperator, Principals: []string{"node:*"}},
}

// New checks and compiles the rules.
func New(opts Options) (*Policy, error) {
	p := &Policy{self: opts.SelfNodeID, log: opts.Logger}
	if p.log == nil {
		p.log = slog.Default()
	}
	mentioned := map[Kind]bool{}
	for i, r := range opts.Rules {
		compiled, err := compile(r)
		if err != nil {
			return nil, fmt.Errorf("access rule %d: %w", i+1, err)
		}
		for _, m := range compiled.match {
			mentioned[m.kind] = true
		}
		if r.Token != "" {
			if len(r.Token) < MinTokenLen {
				return nil, fmt.Errorf("access rule %d: token %q is shorter than %d characters", i+1, r.TokenName, MinTokenLen)
			}
			if r.TokenName == "" {
				return nil, fmt.Errorf("access rule %d: a token needs a name", i+1)
			}
			sum := sha256.Sum256([]byte(r.Token))
			for _, t := range p.tokens {
				if subtle.ConstantTimeCompare(t.sum[:], sum[:]) == 1 {
					return nil, fmt.Errorf("access rule %d: token %q is the same secret as token %q", i+1, r.TokenName, t.name)
				}
			}
			p.tokens = append(p.tokens, token{sum: sum, name: r.TokenName})
			compiled.match = append(compiled.match, pattern{kind: KindToken, name: r.TokenName})
		}
		p.rules = append(p.rules, compiled)
	}
	for _, r := range implicitRules {
		compiled, err := compile(r)
		if err != nil {
			return nil, err
		}
		if !mentioned[compiled.match[0].kind] {
			p.rules = append(p.rules, compiled)
		}
	}
	return p, nil
}

func compile(r Rule) (rule, error) {
	if r.Role <= RoleNone || r.Role > RoleAdmin {
		return rule{}, fmt.Errorf("role %v cannot be granted", r.Role)
	}
	if len(r.Principals) == 0 && r.Token == "" {
		return rule{}, errors.New("names no principal and no token")
	}
	if r.MaxUnits < 0 || r.MaxStdin < 0 {
		return rule{}, errors.New("limits cannot be negative")
	}
	out := rule{role: r.Role, maxUnits: r.MaxUnits, maxStdin: r.MaxStdin}
	for _, s := range r.Principals {
		pr, err := ParsePrincipal(strings.TrimSpace(s))
		if err != nil {
			return rule{}, err
		}
		if pr.Kind == KindInternal {
			return rule{}, fmt.Errorf("principal %q: the internal principal is not configurable", s)
		}
		out.match = append(out.match, pattern{kind: pr.Kind, name: pr.Name})
	}
	return out, nil
}

func (m pattern) matches(p Principal) bool {
	return m.kind == p.Kind && (m.kind == KindAnonymous || m.name == "*" || m.name == p.Name)
}

// RoleOf is the highest role any rule grants p.
func (p *Policy) RoleOf(pr Principal) Role {
	if pr.Kind == KindInternal || p.isSelf(pr) {
		return RoleAdmin
	}
	best := RoleNone
	for _, r := range p.rules {
		if r.role > best && r.matchesAny(pr) {
			best = r.role
		}
	}
	return best
}

func (r rule) matchesAny(pr Principal) bool {
	for _, m := range r.match {
		if m.matches(pr) {
			return true
		}
	}
	return false
}

func (p *Policy) isSelf(pr Principal) bool {
	return pr.Kind == KindCert && p.self != "" && pr.Name == p.self
}

// Limits are the limits of pr: the smallest non-zero override among the
// rules that match it, else the defaults. The node's own halves have none.
func (p *Policy) Limits(pr Principal) Limits {
	if pr.Kind == KindInternal || p.isSelf(pr) {
		return Limits{}
	}
	l := Limits{MaxUnits: DefaultMaxUnits, MaxStdin: DefaultMaxStdin}
	units, stdin := 0, int64(0)
	for _, r := range p.rules {
		if !r.matchesAny(pr) {
			continue
		}
		if r.maxUnits > 0 && (units == 0 || r.maxUnits < units) {
			units = r.maxUnits
		}
		if r.maxStdin > 0 && (stdin == 0 || r.maxStdin < stdin) {
			stdin = r.maxStdin
		}
	}
	if units > 0 {
		l.MaxUnits = units
	}
	if stdin > 0 {
		l.MaxStdin = stdin
	}
	return l
}

// TrustsOrigin reports whether pr may speak for the caller it relays: only
// the node's own halves (in-process, a unix-socket peer, or a certificate
// naming this node) can tell the work agent that a request is local.
func (p *Policy) TrustsOrigin(pr Principal) bool {
	return pr.Kind == KindInternal || pr.Kind == KindUnix || p.isSelf(pr)
}

// Token returns the principal of a bearer token secret.
func (p *Policy) Token(secret string) (Principal, bool) {
	if secret == "" {
		return Principal{}, false
	}
	sum := sha256.Sum256([]byte(secret))
	found := -1
	for i, t := range p.tokens {
		// Compare against every token, so the time taken says nothing
		// about which one (or whether one) matched.
		if subtle.ConstantTimeCompare(t.sum[:], sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	return Principal{Kind: KindToken, Name: p.tokens[found].name}, true
}

// DeniedError is an authorization failure. Unauthenticated is set when the
// caller presented no identity at all (HTTP 401 rather than 403).
type DeniedError struct {
	Principal       Principal
	Role            Role
	Action          Action
	Unauthenticated bool
}

func (e *DeniedError) Error() string {
	if e.Unauthenticated {
		return fmt.Sprintf("authentication required: anonymous callers may not %s", e.Action)
	}
	return fmt.Sprintf("permission denied: %s (role %s) may not %s", e.Principal, e.Role, e.Action)
}

// IsUnauthenticated lets error catalogues tell 401 from 403 without
// importing this package.
func (e *DeniedError) IsUnauthenticated() bool { return e.Unauthenticated }

// Check is Authorize with the principal given.
func (p *Policy) Check(pr Principal, a Action, face string) error {
	role := p.RoleOf(pr)
	if role.Allows(a) {
		return nil
	}
	err := &DeniedError{Principal: pr, Role: role, Action: a, Unauthenticated: pr.Kind == KindAnonymous}
	p.denials.add(a, face)
	p.log.Warn("access denied", "principal", pr.String(), "role", role.String(), "action", a.String(), "face", face)
	return err
}

// Authorize decides whether the principal in ctx may perform a on face
// (named in the denial's log line: "control/unix", "grpc/tcp", "rest", ...).
func (p *Policy) Authorize(ctx context.Context, a Action, face string) error {
	return p.Check(FromContext(ctx), a, face)
}
