package config

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// kind is the value type of a parameter, derived from its Go field type.
type kind int

const (
	kString kind = iota
	kInt
	kFloat
	kBool
	kStrings
	kFloatMap
	kAnyMap
	kRules
	kDuration
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	rulesType    = reflect.TypeFor[[]map[string]string]()
	stringsType  = reflect.TypeFor[[]string]()
	floatMapType = reflect.TypeFor[map[string]float64]()
	anyMapType   = reflect.TypeFor[map[string]any]()
)

func kindOf(t reflect.Type) (kind, bool) {
	switch {
	case t == durationType:
		return kDuration, true
	case t == rulesType:
		return kRules, true
	case t == stringsType:
		return kStrings, true
	case t == floatMapType:
		return kFloatMap, true
	case t == anyMapType:
		return kAnyMap, true
	}
	switch t.Kind() {
	case reflect.String:
		return kString, true
	case reflect.Int:
		return kInt, true
	case reflect.Float64:
		return kFloat, true
	case reflect.Bool:
		return kBool, true
	}
	return 0, false
}

func (k kind) String() string {
	return [...]string{"string", "int", "float", "bool", "list of strings", "map of node to float",
		"map", "list of maps", "duration"}[k]
}

// Bounds on what a single value may hold; configs are small, so anything
// larger is a mistake or an attack.
const (
	maxListLen  = 4096
	maxMapLen   = 4096
	maxValueLen = 1 << 20
)

// set converts raw (a YAML-decoded value or a command-line string) and
// stores it into field. With replace, list parameters are overwritten rather
// than appended to (used by environment overrides).
func set(k kind, field reflect.Value, raw any, replace bool) error {
	switch k {
	case kString:
		s, err := toString(raw)
		if err != nil {
			return err
		}
		field.SetString(s)
	case kInt:
		n, err := toInt(raw)
		if err != nil {
			return err
		}
		field.SetInt(int64(n))
	case kFloat:
		f, err := toFloat(raw)
		if err != nil {
			return err
		}
		field.SetFloat(f)
	case kBool:
		b, err := toBool(raw)
		if err != nil {
			return err
		}
		field.SetBool(b)
	case kDuration:
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("expected a duration such as \"30s\", got %s", describe(raw))
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a valid duration", s)
		}
		field.SetInt(int64(d))
	case kStrings:
		cur := field.Interface().([]string)
		if replace {
			cur = nil
		}
		l, err := toStrings(cur, raw)
		if err != nil {
			return err
		}
		field.Set(reflect.ValueOf(l))
	case kFloatMap:
		m, err := toFloatMap(raw)
		if err != nil {
			return err
		}
		field.Set(reflect.ValueOf(m))
	case kAnyMap:
		m, err := toAnyMap(raw)
		if err != nil {
			return err
		}
		field.Set(reflect.ValueOf(m))
	case kRules:
		r, err := toRules(raw)
		if err != nil {
			return err
		}
		field.Set(reflect.ValueOf(r))
	}
	return nil
}

// describe names a value's type for error messages.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "nothing"
	case string:
		return fmt.Sprintf("%q", x)
	case bool:
		return fmt.Sprintf("boolean %v", x)
	case int, int64, uint64, float64:
		return fmt.Sprintf("number %v", x)
	case []any:
		return "a list"
	case map[string]any, map[any]any:
		return "a map"
	}
	return fmt.Sprintf("%T", v)
}

func toString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		if len(x) > maxValueLen {
			return "", fmt.Errorf("value is longer than %d bytes", maxValueLen)
		}
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		// Upstream formats floats with %f when a string is expected.
		return fmt.Sprintf("%f", x), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("expected a string, got %s", describe(v))
}

func toInt(v any) (int, error) {
	switch x := v.(type) {
	case int:
		return x, nil
	case int64:
		return int(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("%d is out of range", x)
		}
		return int(x), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("%v is not an integer", x)
		}
		return int(x), nil
	case string:
		// Base 0: 0x.., 0o.., 0b.. and a leading 0 (octal) are honoured,
		// so permissions=0660 means 0o660 as upstream.
		n, err := strconv.ParseInt(x, 0, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return int(n), nil
	}
	return 0, fmt.Errorf("expected a number, got %s", describe(v))
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("%v is not a number", x)
		}
		return x, nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("expected a number, got %s", describe(v))
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		// Go's strconv.ParseBool words plus yes/no; lower-case y/n are not
		// accepted (YAML 1.1 turns unquoted y/n into booleans before this).
		switch x {
		case "1", "t", "T", "Y", "true", "TRUE", "True", "yes", "Yes", "YES":
			return true, nil
		case "0", "f", "F", "N", "false", "FALSE", "False", "no", "No", "NO":
			return false, nil
		}
		return false, fmt.Errorf("%q is not a boolean", x)
	}
	return false, fmt.Errorf("expected a boolean, got %s", describe(v))
}

func toStrings(cur []string, v any) ([]string, error) {
	switch x := v.(type) {
	case []any:
		if len(x) > maxListLen {
			return nil, fmt.Errorf("list has more than %d items", maxListLen)
		}
		out := make([]string, 0, len(x))
		for i, e := range x {
			s, err := toString(e)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i+1, err)
			}
			out = append(out, s)
		}
		return out, nil
	case string:
		if strings.HasPrefix(x, "[") {
			var l []string
			if err := json.Unmarshal([]byte(x), &l); err != nil {
				return nil, fmt.Errorf("%q is not a JSON list of strings", x)
			}
			if len(l) > maxListLen {
				return nil, fmt.Errorf("list has more than %d items", maxListLen)
			}
			return l, nil
		}
	}
	s, err := toString(v)
	if err != nil {
		return nil, err
	}
	if len(cur) >= maxListLen {
		return nil, fmt.Errorf("list has more than %d items", maxListLen)
	}
	return append(cur, s), nil
}

// decodeJSONObject accepts a JSON object given as a string (command line).
func decodeJSONObject(v any) (any, error) {
	s, ok := v.(string)
	if !ok {
		return v, nil
	}
	if !strings.HasPrefix(s, "{") {
		return nil, fmt.Errorf("expected a map, got %s", describe(v))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("%q is not a JSON object", s)
	}
	return m, nil
}

func toFloatMap(v any) (map[string]float64, error) {
	m, err := toAnyMap(v)
	if err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(m))
	for _, k := range sortedKeys(m) {
		f, err := toFloat(m[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = f
	}
	return out, nil
}

func toAnyMap(v any) (map[string]any, error) {
	v, err := decodeJSONObject(v)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("expected a map, got %s", describe(v))
	}
	if len(m) > maxMapLen {
		return nil, fmt.Errorf("map has more than %d entries", maxMapLen)
	}
	return m, nil
}

// firewallKeys are the keys a firewall rule may have (docs/protocol.md §8.6). Only
// the shape is checked here; the mesh package parses the semantics.
var firewallKeys = map[string]bool{"action": true, "fromnode": true, "tonode": true, "fromservice": true, "toservice": true}

func toRules(v any) ([]map[string]string, error) {
	if s, ok := v.(string); ok && strings.HasPrefix(s, "[") {
		var l []any
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			return nil, fmt.Errorf("%q is not a JSON list of rules", s)
		}
		v = l
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("expected a list of rules (maps), got %s", describe(v))
	}
	if len(l) > maxListLen {
		return nil, fmt.Errorf("list has more than %d rules", maxListLen)
	}
	out := make([]map[string]string, 0, len(l))
	for i, e := range l {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("rule %d: expected a map, got %s", i+1, describe(e))
		}
		r := make(map[string]string, len(m))
		for _, k := range sortedKeys(m) {
			lk := strings.ToLower(k)
			if !firewallKeys[lk] {
				return nil, fmt.Errorf("rule %d: unknown key %q", i+1, k)
			}
			s, ok := m[k].(string)
			if !ok {
				return nil, fmt.Errorf("rule %d: %s: expected a string, got %s", i+1, k, describe(m[k]))
			}
			if _, dup := r[lk]; dup {
				return nil, fmt.Errorf("rule %d: key %q given twice", i+1, k)
			}
			r[lk] = s
		}
		out = append(out, r)
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// normalize turns yaml.v2's map[any]any into map[string]any recursively, so
// every later stage sees one map type (and JSON-compatible plugin configs).
func normalize(v any, depth int) (any, error) {
	if depth > 64 {
		return nil, fmt.Errorf("value nested deeper than 64 levels")
	}
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks := fmt.Sprint(k)
			if k == nil {
				ks = ""
			}
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			m[ks] = n
		}
		return m, nil
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			m[k] = n
		}
		return m, nil
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			n, err := normalize(e, depth+1)
			if err != nil {
				return nil, err
			}
			l[i] = n
		}
		return l, nil
	}
	return v, nil
}
