#!/usr/bin/env bash
# Runs every fuzz target in the module for a short time (FUZZTIME, default 3s).
# Plain `go test` already runs each target's seed corpus; this explores a
# little beyond it on every `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-3s}
status=0
while IFS= read -r file; do
  pkg="./$(dirname "$file")"
  for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "fuzz $pkg $target ($FUZZTIME)"
    if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >/tmp/fuzz.$$.log 2>&1; then
      cat /tmp/fuzz.$$.log
      status=1
    fi
  done
done < <(git ls-files '*_test.go' | xargs -r grep -l '^func Fuzz' | sort)
rm -f /tmp/fuzz.$$.log
exit $status
