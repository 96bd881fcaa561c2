package config

import (
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"

	kenv "github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/v2"
)

// EnvPrefix starts every environment override (see the package doc).
const EnvPrefix = "RECEPTOR_"

// envOverride is one parsed RECEPTOR_* variable.
type envOverride struct {
	name  string // the variable name, for errors
	spec  *entitySpec
	index int
	param string // "" means the bare value, or the on/off switch of a parameterless entity
	value string
	order int // registry position, to apply entities in a stable order
}

var registryPos = func() map[*entitySpec]int {
	m := make(map[*entitySpec]int, len(registry))
	for i, s := range registry {
		m[s] = i
	}
	return m
}()

// envName is the variable-name form of an entity: "grpc-server" → "GRPC_SERVER".
func envName(s *entitySpec) string { return strings.ToUpper(strings.ReplaceAll(s.name, "-", "_")) }

// parseEnvName splits RECEPTOR_<ENTITY>[_<N>][_<PARAM>]. ok is false for
// variables that are not overrides (other RECEPTOR_* uses, such as the
// Kubernetes tuning variables or service links, are left alone).
func parseEnvName(name string) (o envOverride, ok bool) {
	rest, found := strings.CutPrefix(name, EnvPrefix)
	if !found {
		return o, false
	}
	var spec *entitySpec
	var tail string
	for _, s := range registry {
		if s.exclusive || s.hidden {
			continue
		}
		en := envName(s)
		if rest != en && !strings.HasPrefix(rest, en+"_") {
			continue
		}
		if spec == nil || len(en) > len(envName(spec)) {
			spec, tail = s, strings.TrimPrefix(strings.TrimPrefix(rest, en), "_")
		}
	}
	if spec == nil {
		return o, false
	}
	o = envOverride{name: name, spec: spec, order: registryPos[spec]}
	if idx, after, cut := strings.Cut(tail, "_"); cut && isDigits(idx) {
		n, err := strconv.Atoi(idx)
		if err != nil || n > maxEntities {
			return o, false
		}
		o.index, tail = n, after
	}
	if tail != "" && !isAlnum(tail) {
		return o, false
	}
	o.param = strings.ToLower(tail)
	return o, true
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

func isAlnum(s string) bool {
	for _, r := range s {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// readEnv collects the RECEPTOR_* overrides from env through koanf's env
// provider, in a stable order: by entity, then instance, then variable name.
func readEnv(env []string, log *slog.Logger) ([]envOverride, error) {
	k := koanf.New(".")
	p := kenv.Provider("", kenv.Opt{
		Prefix:      EnvPrefix,
		EnvironFunc: func() []string { return env },
	})
	if err := k.Load(p, nil); err != nil {
		return nil, &Error{Source: "environment", Msg: "cannot read environment", Err: err}
	}
	raw := k.Raw()
	var out []envOverride
	for _, name := range sortedKeys(raw) {
		o, ok := parseEnvName(name)
		if !ok {
			continue
		}
		o.value = fmt.Sprint(raw[name])
		if o.param != "" && o.spec.byName[o.param] == nil {
			// Not an error: Kubernetes service links (e.g. RECEPTOR_ROUTER_PORT
			// for a service named receptor-router) look like overrides.
			log.Warn("ignoring environment variable: not a parameter of the entity",
				"variable", name, "entity", o.spec.name, "parameter", o.param)
			continue
		}
		out = append(out, o)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].order != out[j].order {
			return out[i].order < out[j].order
		}
		return out[i].index < out[j].index
	})
	return out, nil
}

// applyEnv merges environment overrides into the entity list: parameters
// are appended after everything from files and the command line, so they
// win; missing instances are created at the end.
func (l *Loader) applyEnv(ents []*rawEntity, env []string) ([]*rawEntity, error) {
	if len(env) == 0 {
		return ents, nil
	}
	overrides, err := readEnv(env, l.log)
	if err != nil {
		return nil, err
	}
	for _, o := range overrides {
		src := srcPos{kind: srcEnv, source: "environment", where: o.name}
		var instances []*rawEntity
		for _, e := range ents {
			if e.spec == o.spec {
				instances = append(instances, e)
			}
		}
		if o.param == "" && o.spec.bare == nil {
			// An entity without a bare value (trace, local-only): a switch.
			on, err := toBool(o.value)
			if err != nil {
				return nil, src.err(o.spec.name, "", "%v", err)
			}
			if on && len(instances) == 0 {
				ents = append(ents, &rawEntity{spec: o.spec, src: src})
			}
			if !on {
				ents = removeEntity(ents, o.spec)
			}
			continue
		}
		param := o.param
		if param == "" {
			if o.spec.bare == nil {
				return nil, src.err(o.spec.name, "", "command does not allow bare values")
			}
			param = o.spec.bare.name
		}
		if o.spec.singleton && o.index > 0 {
			return nil, src.err(o.spec.name, "", "only one %s directive is allowed", o.spec.name)
		}
		var target *rawEntity
		switch {
		case o.index < len(instances):
			target = instances[o.index]
		case o.index == len(instances):
			target = &rawEntity{spec: o.spec, src: src}
			ents = append(ents, target)
		default:
			return nil, src.err(o.spec.name, "", "cannot override instance %d: only %d defined", o.index, len(instances))
		}
		psrc := src
		target.params = append(target.params, rawParam{key: param, value: o.value, replace: true, src: &psrc})
	}
	return ents, nil
}

func removeEntity(ents []*rawEntity, spec *entitySpec) []*rawEntity {
	out := ents[:0]
	for _, e := range ents {
		if e.spec != spec {
			out = append(out, e)
		}
	}
	return out
}
