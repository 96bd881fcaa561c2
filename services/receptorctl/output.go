package receptorctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v2"
)

// Output formats (-o). The default ("") is the Python receptorctl's text;
// "table" is that text where it is already a table and a table where the
// Python client prints JSON (work list); "json" and "yaml" print the
// reply values (decodeJSON shapes): one object per verb, or, for a verb
// that streams (ping, traceroute, work results), one compact JSON object
// per line or one YAML document per item.

func (a *app) machine() bool { return a.output == "json" || a.output == "yaml" }

// emit writes one value (stream: an item of a stream) to stdout.
func (a *app) emit(v any, stream bool) error {
	return a.writeValue(a.stdio.Out, v, stream)
}

func (a *app) writeValue(w io.Writer, v any, stream bool) error {
	switch a.output {
	case "yaml":
		b, err := yaml.Marshal(yamlValue(v))
		if err != nil {
			return err
		}
		if stream {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		_, err = w.Write(b)
		return err
	default:
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		if !stream {
			enc.SetIndent("", "  ")
		}
		return enc.Encode(v)
	}
}

// yamlValue turns json.Numbers into YAML numbers (yaml.v2 would quote
// them as strings).
func yamlValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return string(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = yamlValue(e)
		}
		return out
	case map[string]any:
		out := make(yaml.MapSlice, 0, len(x))
		for _, k := range sortedKeys(x) {
			out = append(out, yaml.MapItem{Key: k, Value: yamlValue(x[k])})
		}
		return out
	}
	return v
}

// println writes a line of text output.
func (a *app) println(s string) { fmt.Fprintln(a.stdio.Out, s) }

// table writes rows with aligned columns, headers first.
func (a *app) table(headers []string, rows [][]string) {
	tw := tabwriter.NewWriter(a.stdio.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

// str is a reply value as text (strings bare, numbers as sent).
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return string(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// num is a reply value as an integer (0 when it is none).
func num(v any) int64 {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return int64(f)
	case float64:
		return int64(x)
	case int64:
		return x
	case int:
		return int64(x)
	}
	return 0
}
