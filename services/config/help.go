package config

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteHelp writes the command-line help for binary: usage, then every
// entity of the registry by section with its parameters, types, defaults
// and meanings. embedded says whether binary has --embedded-config.
func WriteHelp(w io.Writer, binary string, embedded bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [--<entity> [<param>=<value> | <bare value>]...]...\n", binary)
	fmt.Fprintf(&b, "       %s --config <file> | -c <file>   (v1 YAML list or v2 map; repeatable, mixed with entities)\n", binary)
	fmt.Fprintf(&b, "       %s --config-v2 --config <file>   (v2 keyed YAML form, watched: a change reloads)\n", binary)
	fmt.Fprintf(&b, "       %s validate [<file>...] [<options above>]   (check what %s would start with, then exit)\n", binary, binary)
	if embedded {
		fmt.Fprintf(&b, "       %s --embedded-config             (a local node from the built-in example configuration)\n", binary)
	}
	fmt.Fprintf(&b, "       %s --help | -h | --version\n\n", binary)
	b.WriteString("SIGHUP and the control command reload re-read every -c file and the command line (backends and\n")
	b.WriteString("certificates change in place; other entities need a restart).\n\n")
	b.WriteString("Entity and parameter names are case-insensitive on the command line. Booleans accept\n")
	b.WriteString("1/t/T/Y/true/yes (and 0/f/F/N/false/no); integers accept 0x, 0o and leading-0 octal;\n")
	b.WriteString("lists take repeated params or a JSON array; maps take a JSON object.\n")
	fmt.Fprintf(&b, "Environment overrides: %s<ENTITY>[_<N>]_<PARAM>, e.g. RECEPTOR_NODE_ID=a.\n", EnvPrefix)
	for _, sec := range sections {
		fmt.Fprintf(&b, "\n%s:\n", sec)
		for _, s := range registry {
			if s.section != sec || s.hidden {
				continue
			}
			var flags []string
			if s.required {
				flags = append(flags, "required")
			}
			if s.singleton {
				flags = append(flags, "only once")
			}
			if s.exclusive {
				flags = append(flags, "exclusive")
			}
			line := "  --" + s.name
			if len(flags) > 0 {
				line += " (" + strings.Join(flags, ", ") + ")"
			}
			fmt.Fprintf(&b, "%-40s %s\n", line, s.help)
			for _, p := range s.params {
				fmt.Fprintf(&b, "      %-36s %s\n", p.name+"=<"+p.kind.String()+">", paramHelp(p))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func paramHelp(p *paramSpec) string {
	h := p.help
	var notes []string
	if p.required {
		notes = append(notes, "required")
	}
	if p.bare {
		notes = append(notes, "bare value")
	}
	if p.def != "" {
		notes = append(notes, "default: "+p.def)
	}
	if len(notes) > 0 {
		h += " (" + strings.Join(notes, "; ") + ")"
	}
	return h
}

// WriteBashCompletion writes a bash completion script for binary that
// completes entity names and their parameters.
func WriteBashCompletion(w io.Writer, binary string) error {
	var ents []string
	cases := map[string]string{}
	for _, s := range registry {
		if s.hidden {
			continue
		}
		ents = append(ents, "--"+s.name)
		var ps []string
		for _, p := range s.params {
			ps = append(ps, p.name+"=")
		}
		cases[s.name] = strings.Join(ps, " ")
	}
	ents = append(ents, "--config", "--config-v2", "--help")
	fn := "_" + strings.NewReplacer("-", "_", ".", "_", "/", "_").Replace(binary) + "_complete"
	var b strings.Builder
	fmt.Fprintf(&b, "%s() {\n  local cur=\"${COMP_WORDS[COMP_CWORD]}\" ent=\"\" i\n", fn)
	b.WriteString("  for ((i=COMP_CWORD-1; i>0; i--)); do\n")
	b.WriteString("    if [[ ${COMP_WORDS[i]} == -* ]]; then ent=\"${COMP_WORDS[i]#-}\"; ent=\"${ent#-}\"; break; fi\n  done\n")
	b.WriteString("  if [[ $cur == -* || -z $ent ]]; then\n")
	fmt.Fprintf(&b, "    COMPREPLY=($(compgen -W %q -- \"$cur\")); return\n  fi\n", strings.Join(ents, " "))
	b.WriteString("  case \"${ent,,}\" in\n")
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "    %s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", n, cases[n])
	}
	b.WriteString("    config|c|config-v2) COMPREPLY=($(compgen -f -- \"$cur\")) ;;\n  esac\n}\n")
	fmt.Fprintf(&b, "complete -o nospace -F %s %s\n", fn, binary)
	_, err := io.WriteString(w, b.String())
	return err
}
