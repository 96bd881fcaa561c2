package command

import (
	"strings"
	"testing"
)

// maxFuzzParams bounds the params of one input: work params are a command
// line, and short inputs keep each execution (and the fuzzer's
// minimization of new inputs) cheap. Only the length check of SplitParams
// looks at longer strings.
const maxFuzzParams = 256

// FuzzSplitParams checks the shell-like splitting of work params (user
// input of `work submit`): errors say what failed, and re-quoting every
// word and splitting again gives the same words.
func FuzzSplitParams(f *testing.F) {
	for _, s := range []string{"", "a b", `"x y" 'z'`, `a\ b`, `"unterminated`, "# c\nd", "\xff\xfe", `'it''s'`, `-c "echo \"hi\""`, `trailing\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzParams {
			return
		}
		args, err := SplitParams(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "splitting params ") {
				t.Fatalf("SplitParams(%q) error %q does not say what failed", s, err)
			}
			return
		}
		// Re-quoting every word and splitting again is the identity.
		quoted := make([]string, len(args))
		for i, a := range args {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		again, err := SplitParams(strings.Join(quoted, " "))
		if err != nil {
			t.Fatalf("re-split of %q: %v", quoted, err)
		}
		if len(again) != len(args) {
			t.Fatalf("re-split of %q = %q, want %q", quoted, again, args)
		}
		for i := range args {
			if again[i] != args[i] {
				t.Fatalf("re-split of %q = %q, want %q", quoted, again, args)
			}
		}
	})
}
