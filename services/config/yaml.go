package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/knadh/koanf/v2"
	"gopkg.in/yaml.v2"
)

// parseV1 reads upstream's v1 form: a top-level list whose items are an
// entity name or a one-key map {entity: null | bare value | params}.
// It does not go through koanf: koanf holds maps, and v1 is an ordered list
// of possibly repeated entities.
func parseV1(path string, data []byte) ([]*rawEntity, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Source: path, Msg: fmt.Sprintf("config is larger than %d bytes", MaxFileSize)}
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Source: path, Msg: "invalid YAML", Err: err}
	}
	if doc == nil {
		return nil, nil
	}
	list, ok := doc.([]any)
	if !ok {
		return nil, &Error{Source: path, Msg: "config format invalid: the top level must be a list of entities"}
	}
	if len(list) > maxEntities {
		return nil, &Error{Source: path, Msg: fmt.Sprintf("too many entities (%d, at most %d)", len(list), maxEntities)}
	}
	ents := make([]*rawEntity, 0, len(list))
	for i, item := range list {
		src := srcPos{kind: srcFile, source: path, where: fmt.Sprintf("item %d", i+1)}
		var (
			name string
			val  any
		)
		switch x := item.(type) {
		case string:
			name = x
		case map[any]any:
			if len(x) != 1 {
				if len(x) == 0 {
					return nil, src.err("", "", "config format invalid: item has no name")
				}
				return nil, src.err("", "", "config format invalid: item has multiple names")
			}
			for k, v := range x {
				ks, ok := k.(string)
				if !ok {
					return nil, src.err("", "", "unknown entity %q", fmt.Sprint(k))
				}
				name, val = ks, v
			}
		default:
			return nil, src.err("", "", "config format invalid: item must be an entity name or a one-key map, got %s", describe(item))
		}
		// Entity names are exact (lower-case) in files, as upstream.
		spec := lookupEntity(name)
		if spec == nil {
			return nil, src.err("", "", "unknown entity %q", name)
		}
		e, err := entityFromValue(spec, val, src)
		if err != nil {
			return nil, err
		}
		ents = append(ents, e)
	}
	return ents, nil
}

// entityFromValue builds a raw entity from the YAML value under its name.
func entityFromValue(spec *entitySpec, val any, src srcPos) (*rawEntity, error) {
	e := &rawEntity{spec: spec, src: src}
	norm, err := normalize(val, 0)
	if err != nil {
		return nil, src.err(spec.name, "", "%v", err)
	}
	switch v := norm.(type) {
	case nil:
	case map[string]any:
		seen := map[string]string{}
		for _, k := range sortedKeys(v) {
			lk := strings.ToLower(k)
			if prev, dup := seen[lk]; dup {
				return nil, src.err(spec.name, "", "parameter %q given twice (as %q and %q)", lk, prev, k)
			}
			seen[lk] = k
			e.params = append(e.params, rawParam{key: k, value: v[k]})
		}
	case string:
		if spec.bare == nil {
			return nil, src.err(spec.name, "", "command does not allow bare values (got %q)", v)
		}
		e.params = append(e.params, rawParam{key: spec.bare.name, value: v})
	case []any:
		return nil, src.err(spec.name, "", "parameters must be a map or a bare value, got a list")
	default:
		if spec.bare == nil {
			return nil, src.err(spec.name, "", "command does not allow bare values (got %s)", describe(v))
		}
		// Upstream requires bare values in files to be strings.
		return nil, src.err(spec.name, "", "bare value must be a string, got %s (use the map form)", describe(v))
	}
	return e, nil
}

// yamlParser is a koanf.Parser with YAML 1.1 semantics (yes/no booleans,
// leading-zero octal), matching upstream's yaml.v2-based loader.
type yamlParser struct{}

func (yamlParser) Unmarshal(b []byte) (map[string]any, error) {
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	if doc == nil {
		return map[string]any{}, nil
	}
	n, err := normalize(doc, 0)
	if err != nil {
		return nil, err
	}
	m, ok := n.(map[string]any)
	if !ok {
		return nil, errNotMap
	}
	return m, nil
}

func (yamlParser) Marshal(m map[string]any) ([]byte, error) { return yaml.Marshal(m) }

// bytesProvider is a koanf.Provider over bytes already read.
type bytesProvider []byte

func (b bytesProvider) ReadBytes() ([]byte, error) { return b, nil }
func (b bytesProvider) Read() (map[string]any, error) {
	return nil, errors.New("bytesProvider needs a parser")
}

// v2Keys maps v2 top-level keys to entities; "version" is accepted as well.
var v2Keys = func() map[string]*entitySpec {
	m := make(map[string]*entitySpec, len(registry))
	for _, s := range registry {
		if !s.hidden {
			m[s.v2key] = s
		}
	}
	m["ip-routers"] = lookupEntity("ip-router") // a dashed alias of upstream's "iprouters"
	return m
}()

// parseV2 reads the v2 keyed form (top-level map, plural list keys) via
// koanf. Map order is lost, so entities come in registry order: node, TLS
// configs, backends, services, work types, API, matching the phases.
func parseV2(path string, data []byte) ([]*rawEntity, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Source: path, Msg: fmt.Sprintf("config is larger than %d bytes", MaxFileSize)}
	}
	k := koanf.New(".")
	if err := k.Load(bytesProvider(data), yamlParser{}); err != nil {
		if errors.Is(err, errNotMap) {
			return nil, &Error{Source: path, Msg: errNotMap.Error()}
		}
		return nil, &Error{Source: path, Msg: "invalid YAML", Err: err}
	}
	raw := k.Raw()
	top := map[string]any{}
	for _, key := range sortedKeys(raw) {
		lk := strings.ToLower(key)
		if _, dup := top[lk]; dup {
			return nil, &Error{Source: path, Msg: fmt.Sprintf("key %q given twice", lk)}
		}
		top[lk] = raw[key]
		if lk == "version" {
			continue
		}
		if v2Keys[lk] == nil {
			return nil, &Error{Source: path, Msg: fmt.Sprintf("unknown key %q", key)}
		}
	}
	if v, ok := top["version"]; ok && fmt.Sprint(v) != "2" {
		return nil, &Error{Source: path, Where: "version", Msg: fmt.Sprintf("%s is not supported (expected 2)", describe(v))}
	}
	var ents []*rawEntity
	seen := map[*entitySpec]bool{}
	for _, key := range sortedKeys(top) {
		if key != "version" {
			seen[v2Keys[key]] = true
		}
	}
	for _, spec := range registry {
		if !seen[spec] {
			continue
		}
		for _, key := range sortedKeys(top) {
			if key == "version" || v2Keys[key] != spec {
				continue
			}
			got, err := v2EntityList(path, key, spec, top[key])
			if err != nil {
				return nil, err
			}
			ents = append(ents, got...)
		}
	}
	if len(ents) > maxEntities {
		return nil, &Error{Source: path, Msg: fmt.Sprintf("too many entities (%d, at most %d)", len(ents), maxEntities)}
	}
	return ents, nil
}

func v2EntityList(path, key string, spec *entitySpec, val any) ([]*rawEntity, error) {
	src := srcPos{kind: srcFile, source: path, where: key}
	if spec.singleton || spec.exclusive {
		if b, ok := val.(bool); ok && len(spec.params) <= 1 && spec.bare == nil {
			// trace: true / local-only: true switch the entity on.
			if !b {
				return nil, nil
			}
			val = nil
		}
		if m, ok := val.(map[string]any); ok && spec.name == "local-only" {
			// v2 runs local-only only when local is true.
			if b, ok := m["local"].(bool); ok && !b {
				return nil, nil
			}
		}
		e, err := entityFromValue(spec, val, src)
		if err != nil {
			return nil, err
		}
		return []*rawEntity{v2Fixups(e)}, nil
	}
	if val == nil {
		return nil, nil
	}
	list, ok := val.([]any)
	if !ok {
		return nil, src.err("", "", "expected a list of %s entries, got %s", spec.name, describe(val))
	}
	out := make([]*rawEntity, 0, len(list))
	for i, item := range list {
		isrc := srcPos{kind: srcFile, source: path, where: fmt.Sprintf("%s[%d]", key, i)}
		if _, ok := item.(map[string]any); !ok && item != nil {
			return nil, isrc.err(spec.name, "", "expected a map of parameters, got %s", describe(item))
		}
		e, err := entityFromValue(spec, item, isrc)
		if err != nil {
			return nil, err
		}
		out = append(out, v2Fixups(e))
	}
	return out, nil
}

// v2Fixups applies upstream's v2 defaulting: a zero cost and an empty
// bindaddr mean the default, and peers always redial.
func v2Fixups(e *rawEntity) *rawEntity {
	kept := e.params[:0]
	for _, p := range e.params {
		switch strings.ToLower(p.key) {
		case "cost":
			if f, err := toFloat(p.value); err == nil && f == 0 {
				continue
			}
		case "bindaddr":
			if p.value == "" {
				continue
			}
		case "redial":
			if _, ok := e.spec.byName["redial"]; ok {
				continue
			}
		}
		kept = append(kept, p)
	}
	e.params = kept
	if _, ok := e.spec.byName["redial"]; ok {
		e.params = append(e.params, rawParam{key: "redial", value: true})
	}
	return e
}
