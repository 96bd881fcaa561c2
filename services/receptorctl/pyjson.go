package receptorctl

// The Python receptorctl prints JSON with json.dumps(indent=4,
// sort_keys=True) and advertisement tags with Python's repr of a dict. The
// default output reproduces both byte for byte, so that scripts reading it
// see no difference; values come from decodeJSON (numbers as json.Number).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decodeJSON decodes b keeping numbers as json.Number, so that integers of
// any size print as they came and floats can be printed as Python would.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// pyJSON is json.dumps(v, indent=4, sort_keys=True).
func pyJSON(v any) string {
	var sb strings.Builder
	writePyJSON(&sb, v, 0)
	return sb.String()
}

func writePyJSON(sb *strings.Builder, v any, depth int) {
	indent := func(d int) { sb.WriteString(strings.Repeat("    ", d)) }
	switch x := v.(type) {
	case nil:
		sb.WriteString("null")
	case bool:
		if x {
			sb.WriteString("true")
		} else {
			sb.WriteString("false")
		}
	case json.Number:
		sb.WriteString(pyNumber(x))
	case float64:
		sb.WriteString(pyFloat(x))
	case int:
		sb.WriteString(strconv.Itoa(x))
	case int64:
		sb.WriteString(strconv.FormatInt(x, 10))
	case string:
		sb.WriteString(pyJSONString(x))
	case []any:
		if len(x) == 0 {
			sb.WriteString("[]")
			return
		}
		sb.WriteString("[\n")
		for i, e := range x {
			indent(depth + 1)
			writePyJSON(sb, e, depth+1)
			if i < len(x)-1 {
				sb.WriteString(",")
			}
			sb.WriteString("\n")
		}
		indent(depth)
		sb.WriteString("]")
	case map[string]any:
		if len(x) == 0 {
			sb.WriteString("{}")
			return
		}
		keys := sortedKeys(x)
		sb.WriteString("{\n")
		for i, k := range keys {
			indent(depth + 1)
			sb.WriteString(pyJSONString(k))
			sb.WriteString(": ")
			writePyJSON(sb, x[k], depth+1)
			if i < len(keys)-1 {
				sb.WriteString(",")
			}
			sb.WriteString("\n")
		}
		indent(depth)
		sb.WriteString("}")
	default:
		fmt.Fprintf(sb, "%q", fmt.Sprint(x))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // byte order of UTF-8 is code point order, as Python sorts
	return keys
}

// pyNumber prints a JSON number as Python re-prints it after json.loads: an
// integer literal unchanged, anything else as a Python float.
func pyNumber(n json.Number) string {
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		return s
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return s
	}
	return pyFloat(f)
}

// pyFloat is Python's repr of a float: the shortest round-trip digits,
// positional for exponents -4..15 (with ".0" when integral), scientific
// ("1e-05", "1.5e+16") otherwise.
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expText, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expText)
	if exp >= -4 && exp < 16 {
		s := strconv.FormatFloat(f, 'f', -1, 64)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	sign := "+"
	if exp < 0 {
		sign, exp = "-", -exp
	}
	return fmt.Sprintf("%se%s%02d", mant, sign, exp)
}

// pyJSONString is a JSON string as Python writes it with ensure_ascii:
// non-ASCII as \uXXXX (surrogate pairs above U+FFFF).
func pyJSONString(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || (r >= 0x7f && r < 0x10000):
				if r == 0x7f {
					sb.WriteRune(r)
				} else {
					fmt.Fprintf(&sb, `\u%04x`, r)
				}
			case r >= 0x10000:
				r -= 0x10000
				fmt.Fprintf(&sb, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			default:
				sb.WriteRune(r)
			}
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// pyRepr is Python's repr of a value decoded from JSON (str(dict) of the
// advertisement tags): dicts in key order, strings quoted as Python does.
func pyRepr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case json.Number:
		return pyNumber(x)
	case string:
		return pyReprString(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		parts := make([]string, 0, len(x))
		for _, k := range sortedKeys(x) {
			parts = append(parts, pyReprString(k)+": "+pyRepr(x[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return fmt.Sprint(v)
}

// pyReprString is Python's repr of a str: single quotes unless the text has
// a single quote and no double quote; escapes for the quote, backslash and
// non-printable characters.
func pyReprString(s string) string {
	q := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = '"'
	}
	var sb strings.Builder
	sb.WriteByte(q)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == rune(q) || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == '\t':
			sb.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0:
			fmt.Fprintf(&sb, `\x%02x`, r)
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte(q)
	return sb.String()
}
