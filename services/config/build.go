package config

import (
	"fmt"
	"reflect"
	"strings"
)

// rawParam is one parameter as read, before conversion.
type rawParam struct {
	key     string // as written (matched case-insensitively)
	value   any    // string (CLI, env) or YAML-decoded value
	replace bool   // lists are replaced, not appended to (env overrides)
	src     *srcPos
}

// rawEntity is one entity as read from any source, in order of appearance.
type rawEntity struct {
	spec   *entitySpec
	params []rawParam
	src    srcPos
}

// maxEntities bounds the number of entities one configuration may hold.
const maxEntities = 10000

// builtEntity keeps a converted entity with its origin for cross-checks.
type builtEntity struct {
	spec *entitySpec
	val  reflect.Value // pointer to the entity struct
	src  srcPos
}

// build checks entity attributes, applies the environment and the implicit
// node, converts every entity into its typed struct and validates it all.
func (l *Loader) build(ents []*rawEntity, sources []string, env []string) (*Config, error) {
	if len(ents) > maxEntities {
		return nil, &Error{Msg: fmt.Sprintf("too many entities (%d, at most %d)", len(ents), maxEntities)}
	}
	for _, e := range ents {
		if e.spec.exclusive && len(ents) > 1 {
			return nil, e.src.err("", "", "cannot specify any other options with %s", e.spec.name)
		}
	}
	seen := map[string]bool{}
	for _, e := range ents {
		if !e.spec.singleton {
			continue
		}
		if seen[e.spec.name] {
			if e.src.kind == srcCLI {
				return nil, e.src.err("", "", "directive %q is only allowed once", e.spec.name)
			}
			return nil, e.src.err("", "", "only one %s directive is allowed", e.spec.name)
		}
		seen[e.spec.name] = true
	}
	exclusive := len(ents) == 1 && ents[0].spec.exclusive
	if !exclusive {
		var err error
		if ents, err = l.applyEnv(ents, env); err != nil {
			return nil, err
		}
		if !seen["node"] && !hasEntity(ents, "node") {
			ents = append([]*rawEntity{{spec: lookupEntity("node"), src: srcPos{kind: srcImplicit}}}, ents...)
		}
	}

	cfg := &Config{LogLevel: "info", Sources: sources}
	built := make([]builtEntity, 0, len(ents))
	for _, e := range ents {
		v, err := l.convert(e)
		if err != nil {
			return nil, err
		}
		idx := e.spec.add(cfg, v.Interface())
		source := e.src.source
		if e.src.kind == srcImplicit {
			source = "implicit"
		}
		cfg.Order = append(cfg.Order, EntityRef{Entity: e.spec.name, Index: idx, Source: source})
		built = append(built, builtEntity{spec: e.spec, val: v, src: e.src})
	}
	if err := crossCheck(cfg, built); err != nil {
		return nil, err
	}
	return cfg, nil
}

func hasEntity(ents []*rawEntity, name string) bool {
	for _, e := range ents {
		if e.spec.name == name {
			return true
		}
	}
	return false
}

// convert applies defaults and parameters to a new typed struct, checks
// required parameters and runs the entity's own validation.
func (l *Loader) convert(e *rawEntity) (reflect.Value, error) {
	s := e.spec
	v := reflect.New(s.typ)
	for _, p := range s.params {
		if p.def == "" {
			continue
		}
		if err := set(p.kind, v.Elem().Field(p.field), p.def, false); err != nil {
			// Defaults are part of the program, not input: a bad one is a bug
			// that the registry test catches.
			return v, e.src.err(s.name, p.name, "bad default %q: %v", p.def, err)
		}
	}
	given := map[string]bool{}
	for _, rp := range e.params {
		src := e.src
		if rp.src != nil {
			src = *rp.src
		}
		p := s.byName[strings.ToLower(rp.key)]
		if p == nil {
			return v, src.err(s.name, "", "unknown parameter %q", rp.key)
		}
		if rp.value == nil {
			continue // YAML "key:" with no value: treated as not given
		}
		if err := set(p.kind, v.Elem().Field(p.field), rp.value, rp.replace); err != nil {
			if p.parseErr != "" {
				return v, src.err(s.name, p.name, "%s", p.parseErr)
			}
			return v, src.err(s.name, p.name, "%v", err)
		}
		if p.svc {
			if sv := v.Elem().Field(p.field).String(); len(sv) > 8 {
				return v, src.err(s.name, p.name, "%q is longer than 8 bytes (mesh service names are at most 8 bytes)", sv)
			}
		}
		given[p.name] = true
	}
	var missing []string
	for _, p := range s.params {
		if p.required && !given[p.name] {
			missing = append(missing, p.name)
		}
	}
	switch len(missing) {
	case 0:
	case 1:
		return v, e.src.err(s.name, "", "required parameter missing: %s", missing[0])
	default:
		return v, e.src.err(s.name, "", "required parameters missing: %s", strings.Join(missing, ", "))
	}
	if c, ok := v.Interface().(interface{ validate(*Loader) error }); ok {
		if err := c.validate(l); err != nil {
			return v, attach(e.src, s.name, err)
		}
	}
	return v, nil
}

// crossCheck validates references between entities.
func crossCheck(cfg *Config, built []builtEntity) error {
	names := map[string]map[string]bool{"tls-server": {}, "tls-client": {}}
	for _, b := range built {
		if b.spec.name != "tls-server" && b.spec.name != "tls-client" {
			continue
		}
		n := b.val.Elem().FieldByName("Name").String()
		if names[b.spec.name][n] {
			return b.src.err(b.spec.name, "name", "duplicate TLS config name %q", n)
		}
		names[b.spec.name][n] = true
	}
	for _, b := range built {
		for _, p := range b.spec.params {
			if p.ref == "" {
				continue
			}
			if n := b.val.Elem().Field(p.field).String(); n != "" && !names[p.ref][n] {
				return b.src.err(b.spec.name, p.name, "unknown TLS config %s", n)
			}
		}
		if b.spec.name == "work-command" {
			wc := b.val.Interface().(*WorkCommand)
			if wc.VerifySignature && cfg.WorkVerification == nil {
				return b.src.err(b.spec.name, "", "VerifySignature for work command '%s' is true, but the work verification public key is not specified", wc.WorkType)
			}
		}
		if b.spec.name == "grpc-server" {
			g := b.val.Interface().(*GRPCServer)
			if g.TCPListen != "" && g.TLS == "" {
				return b.src.err(b.spec.name, "tls", "required with tcplisten: the TCP listener needs TLS with client certificates")
			}
		}
	}
	return nil
}
