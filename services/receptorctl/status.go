package receptorctl

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
)

func init() { addVerb("", newStatusCmd) }

func newStatusCmd(a *app) *cobra.Command {
	var printJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the status of the Receptor network.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := a.ctx(cmd)
			be, _, err := a.backend(ctx)
			if err != nil {
				return err
			}
			st, err := be.Status(ctx)
			if err != nil {
				return err
			}
			switch {
			case printJSON:
				a.println(pyJSON(st))
				return nil
			case a.machine():
				return a.emit(st, false)
			}
			a.printStatus(st)
			return nil
		},
	}
	cmd.Flags().BoolVar(&printJSON, "json", false, "Print as JSON (the Python receptorctl's layout)")
	return cmd
}

// pad left-justifies s in width characters, as Python's f"{s:<width}".
func pad(s string, width int) string {
	if n := utf8.RuneCountInString(s); n < width {
		return s + strings.Repeat(" ", width-n)
	}
	return s
}

// pyStr is Python's str() of a reply value (numbers as Python re-prints
// them).
func pyStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return pyNumber(x)
	case nil, bool, []any, map[string]any:
		return pyRepr(x)
	}
	return fmt.Sprint(v)
}

// printStatus is the Python receptorctl's status report, line for line.
func (a *app) printStatus(src map[string]any) {
	st := make(map[string]any, len(src))
	for k, v := range src {
		st[k] = v
	}
	pop := func(k string) any { v := st[k]; delete(st, k); return v }
	a.println("Node ID: " + pyStr(pop("NodeID")))
	a.println("Version: " + pyStr(pop("Version")))
	a.println("System CPU Count: " + pyStr(pop("SystemCPUCount")))
	a.println("System Memory MiB: " + pyStr(pop("SystemMemoryMiB")))

	width := 12
	widen := func(s string) {
		if n := utf8.RuneCountInString(s); n > width {
			width = n
		}
	}
	conns, _ := pop("Connections").([]any)
	for _, c := range conns {
		if m, ok := c.(map[string]any); ok {
			widen(pyStr(m["NodeID"]))
		}
	}
	costs, _ := pop("KnownConnectionCosts").(map[string]any)
	for node := range costs {
		widen(node)
	}
	if len(conns) > 0 {
		a.println("")
		a.println(pad("Connection", width) + " Cost")
		for _, c := range conns {
			m, _ := c.(map[string]any)
			a.println(pad(pyStr(m["NodeID"]), width) + " " + pyStr(m["Cost"]))
		}
	}
	if len(costs) > 0 {
		a.println("")
		a.println(pad("Known Node", width) + " Known Connections")
		for _, node := range sortedKeys(costs) {
			var sb strings.Builder
			sb.WriteString(pad(node, width) + " ")
			peers, _ := costs[node].(map[string]any)
			for _, peer := range sortedKeys(peers) {
				sb.WriteString(peer + ": " + pyStr(peers[peer]) + " ")
			}
			a.println(sb.String())
		}
	}
	routes, _ := pop("RoutingTable").(map[string]any)
	if len(routes) > 0 {
		a.println("")
		a.println(pad("Route", width) + " Via")
		for _, node := range sortedKeys(routes) {
			a.println(pad(node, width) + " " + pyStr(routes[node]))
		}
	}
	ads, _ := pop("Advertisements").([]any)
	if len(ads) > 0 {
		a.println("")
		a.println(pad("Node", width) + " Service   Type       Last Seen             Tags")
		for _, x := range ads {
			ad, _ := x.(map[string]any)
			tags := "-"
			if ad["Tags"] != nil {
				tags = pyRepr(ad["Tags"])
			}
			a.println(pad(pyStr(ad["NodeID"]), width) + " " + pad(pyStr(ad["Service"]), 9) + " " +
				pad(connTypeName(ad["ConnType"]), 10) + " " + pad(lastSeen(ad["Time"]), 21) + " " + pad(tags, 16))
		}
		a.printWorkTypes(ads, width, "Work Types", false)
		a.printWorkTypes(ads, width, "Secure Work Types", true)
	}
	if len(st) > 0 {
		a.println("Additional data returned from Receptor:")
		a.println(pyJSON(st))
	}
}

func connTypeName(v any) string {
	switch num(v) {
	case 0:
		return "Datagram"
	case 1:
		return "Stream"
	case 2:
		return "StreamTLS"
	}
	return "Unknown"
}

// lastSeen is an advertisement time as "2006-01-02 15:04:05" in the
// time's own offset, as receptorctl prints it.
func lastSeen(v any) string {
	s := pyStr(v)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.Format(time.DateTime)
}

func (a *app) printWorkTypes(ads []any, width int, header string, secure bool) {
	printed := false
	seen := map[string]bool{}
	for _, x := range ads {
		ad, _ := x.(map[string]any)
		cmds, _ := ad["WorkCommands"].([]any)
		var types []string
		for _, c := range cmds {
			m, _ := c.(map[string]any)
			if s, _ := m["Secure"].(bool); s == secure {
				types = append(types, pyStr(m["WorkType"]))
			}
		}
		node := pyStr(ad["NodeID"])
		if len(types) == 0 || seen[node] {
			continue
		}
		seen[node] = true
		if !printed {
			a.println("")
			a.println(pad("Node", width) + " " + header)
			printed = true
		}
		a.println(pad(node, width) + " " + strings.Join(types, ", "))
	}
}
