// Package firewall evaluates the mesh firewall rules against data messages.
package firewall

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Action is the verdict of a rule.
type Action int

// Verdicts. Accept is also the result when no rule matches.
const (
	Accept Action = iota
	Reject
	Drop
)

func (a Action) String() string {
	switch a {
	case Accept:
		return "accept"
	case Reject:
		return "reject"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Message is what the rules look at.
type Message struct {
	FromNode, ToNode, FromService, ToService string
}

type field int

const (
	fromNode field = iota
	toNode
	fromService
	toService
)

var fieldKeys = map[string]field{
	"fromnode": fromNode, "tonode": toNode, "fromservice": fromService, "toservice": toService,
}

type condition struct {
	field   field
	literal string
	re      *regexp.Regexp // nil for a literal match
}

func (c condition) match(m Message) bool {
	var v string
	switch c.field {
	case fromNode:
		v = m.FromNode
	case toNode:
		v = m.ToNode
	case fromService:
		v = m.FromService
	case toService:
		v = m.ToService
	}
	if c.re != nil {
		return c.re.MatchString(v)
	}
	return v == c.literal
}

// Rule is one parsed rule: all conditions must match.
type Rule struct {
	Action     Action
	conditions []condition
}

// Rules is an ordered rule list; the first matching rule decides.
type Rules []Rule

// Parse builds rules from configuration maps. Keys and the action value
// are case-insensitive. Deviation from upstream: a value starting with "/"
// that is not closed by "/" or does not compile is an error instead of
// being silently ignored.
//
// A regular expression must match the whole field: it is compiled as
// ^(?:re)$, so an alternation such as /a|b/ matches "a" or "b" but not
// "a-evil" (a bare ^a|b$ would match any value starting with "a").
func Parse(rules []map[string]string) (Rules, error) {
	out := make(Rules, 0, len(rules))
	for i, raw := range rules {
		var r Rule
		haveAction := false
		// Sorted keys make error messages deterministic.
		keys := make([]string, 0, len(raw))
		for k := range raw {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := raw[k]
			lk := strings.ToLower(k)
			if lk == "action" {
				switch strings.ToLower(v) {
				case "accept":
					r.Action = Accept
				case "reject":
					r.Action = Reject
				case "drop":
					r.Action = Drop
				default:
					return nil, fmt.Errorf("firewall rule %d: key %q: unknown action %q", i, k, v)
				}
				haveAction = true
				continue
			}
			f, ok := fieldKeys[lk]
			if !ok {
				return nil, fmt.Errorf("firewall rule %d: unknown key %q", i, k)
			}
			c := condition{field: f, literal: v}
			if strings.HasPrefix(v, "/") {
				if len(v) < 2 || !strings.HasSuffix(v, "/") {
					return nil, fmt.Errorf("firewall rule %d: key %q: regular expression %q is not closed by /", i, k, v)
				}
				re, err := regexp.Compile("^(?:" + v[1:len(v)-1] + ")$")
				if err != nil {
					return nil, fmt.Errorf("firewall rule %d: key %q: %w", i, k, err)
				}
				c.re = re
			}
			r.conditions = append(r.conditions, c)
		}
		if !haveAction {
			return nil, fmt.Errorf("firewall rule %d: missing key \"action\"", i)
		}
		out = append(out, r)
	}
	return out, nil
}

// Evaluate returns the action of the first rule matching m, or Accept.
func (rs Rules) Evaluate(m Message) Action {
	for _, r := range rs {
		matched := true
		for _, c := range r.conditions {
			if !c.match(m) {
				matched = false
				break
			}
		}
		if matched {
			return r.Action
		}
	}
	return Accept
}
