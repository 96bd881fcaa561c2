package command

import (
	"errors"
	"fmt"

	"github.com/google/shlex"
)

// MaxParamsLength bounds the combined parameter string of one unit.
const MaxParamsLength = 1 << 20

// ErrExtraParams is returned when a user supplies params to a work type
// without allowruntimeparams (upstream's exact text).
var ErrExtraParams = errors.New("extra params provided but not allowed")

// SplitParams splits a parameter string into arguments the way upstream
// does: POSIX-shell-like words with single and double quotes and
// backslashes, no expansion, '#' at a word start begins a comment (Google
// shlex semantics, the library upstream uses).
func SplitParams(s string) ([]string, error) {
	if len(s) > MaxParamsLength {
		return nil, fmt.Errorf("splitting params: %d bytes exceeds the limit of %d", len(s), MaxParamsLength)
	}
	args, err := shlex.Split(s)
	if err != nil {
		return nil, fmt.Errorf("splitting params %q: %w", s, err)
	}
	return args, nil
}

// CombineParams joins the configured params and the user's runtime params
// with one space, omitting empty parts (docs/protocol.md §13.10).
func CombineParams(configured, runtime string, allowRuntime bool) (string, error) {
	if runtime != "" && !allowRuntime {
		return "", ErrExtraParams
	}
	switch {
	case configured == "":
		return runtime, nil
	case runtime == "":
		return configured, nil
	}
	combined := configured + " " + runtime
	if len(combined) > MaxParamsLength {
		return "", fmt.Errorf("params of %d bytes exceed the limit of %d", len(combined), MaxParamsLength)
	}
	return combined, nil
}
