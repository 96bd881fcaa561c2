package receptorctl

import (
	"strings"
	"testing"
)

// FuzzWorkParams: -a values, CMDPARAMS and --state values from the user
// never panic, and a parsed --state is always a known state.
func FuzzWorkParams(f *testing.F) {
	for _, s := range []string{"params=-x", "k=v", "=", "@", "k=@@x", "failed,Running", "node=x"} {
		f.Add(s, "arg")
	}
	f.Fuzz(func(t *testing.T, param, arg string) {
		if strings.Contains(param, "=@") && !strings.Contains(param, "=@@") {
			return // would read a file
		}
		_, _ = workParams([]string{param}, []string{arg}, submitRequest{})
		states, err := parseStates([]string{param, arg})
		if err == nil {
			for _, s := range states {
				found := false
				for _, n := range stateNames {
					found = found || n == s
				}
				if !found {
					t.Fatalf("parseStates gave %q", s)
				}
			}
		}
	})
}
