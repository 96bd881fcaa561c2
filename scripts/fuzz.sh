#!/usr/bin/env bash
# Runs the module's fuzz targets. One script, two modes, one target list:
#
#   scripts/fuzz.sh          short: every target for FUZZTIME (default 3s), as
#                            `make fuzz` and `make test` do. Plain `go test`
#                            already replays each target's seeds and its
#                            testdata/fuzz corpus; this explores a little beyond.
#   scripts/fuzz.sh long     long: every target for FUZZTIME_LONG (default 10m),
#                            as `make fuzz-long` does, then copies the inputs
#                            the fuzzer found interesting from the build cache
#                            ($GOCACHE/fuzz/<import path>/<Target>/, where Go
#                            keeps them) into <pkg>/testdata/fuzz/<Target>/, so
#                            that they are committed and replayed by every
#                            plain `go test`: the newest FUZZ_KEEP (default
#                            200) per target, none over 64 KiB.
#
# Selection (both modes):
#   FUZZ_PKGS     space-separated package directories, e.g.
#                 "./services/mesh/backends ./services/control/client";
#                 a trailing /... takes the packages below it
#   FUZZ_TARGETS  an extended regexp the target name must match, e.g.
#                 'FuzzReadFrame|FuzzGateway'
#   FUZZ_MINIMIZE -fuzzminimizetime: how long the fuzzer may shrink each new
#                 interesting input, during which it does not fuzz (default
#                 1s short, 10s long; the go command's own default is 60s)
#
# Per target it prints the executions, the new interesting inputs (from the
# fuzzer's last "fuzz: elapsed: ..., execs: N (...), new interesting: M"
# line) and whether a failure was found. It exits non-zero when one was: the
# failing input is in <pkg>/testdata/fuzz/<Target>/ (the go command writes it
# there), to commit with the fix as a regression input.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-short}
case "$mode" in
  short) fuzztime=${FUZZTIME:-3s} minimize=${FUZZ_MINIMIZE:-1s} ;;
  long) fuzztime=${FUZZTIME_LONG:-10m} minimize=${FUZZ_MINIMIZE:-10s} ;;
  *) echo "usage: $0 [short|long]" >&2; exit 2 ;;
esac
keep=${FUZZ_KEEP:-200}
maxsize=$((64 * 1024))

# list_targets prints "<package dir> <target>" for every fuzz target, in
# file order, restricted by FUZZ_PKGS and FUZZ_TARGETS.
list_targets() {
  local file dir target want p ok
  git ls-files --cached --others --exclude-standard -- '*_test.go' | sort -u | while IFS= read -r file; do
    [[ -f "$file" ]] || continue
    dir="./$(dirname "$file")"
    if [[ -n "${FUZZ_PKGS:-}" ]]; then
      ok=0
      for want in $FUZZ_PKGS; do
        p=${want%/}
        [[ "$p" == ./* || "$p" == . ]] || p="./$p"
        if [[ "$p" == */... ]]; then
          p=${p%/...}
          [[ "$dir" == "$p" || "$dir" == "$p"/* ]] && ok=1
        else
          [[ "$dir" == "$p" ]] && ok=1
        fi
      done
      ((ok)) || continue
    fi
    for target in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
      if [[ -n "${FUZZ_TARGETS:-}" ]] && ! [[ "$target" =~ ${FUZZ_TARGETS} ]]; then
        continue
      fi
      echo "$dir $target"
    done
  done
}

# keep_corpus copies the newest $keep cache corpus files of one target (at
# most 64 KiB each) into the package's testdata and prints how many were new.
keep_corpus() {
  local dir=$1 target=$2 cache dest n=0 f base
  cache="$(go env GOCACHE)/fuzz/$(go list "$dir")/$target"
  dest="$dir/testdata/fuzz/$target"
  if [[ -d "$cache" ]]; then
    while IFS= read -r f; do
      base=$(basename "$f")
      [[ -e "$dest/$base" ]] && continue
      mkdir -p "$dest"
      cp "$f" "$dest/$base"
      n=$((n + 1))
    done < <(find "$cache" -maxdepth 1 -type f -size -$((maxsize + 1))c -printf '%T@ %p\n' |
      sort -rn | head -n "$keep" | cut -d' ' -f2-)
  fi
  echo "$n"
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
found=()
ran=0
while read -r dir target; do
  ran=$((ran + 1))
  echo "fuzz $dir $target ($fuzztime)"
  result=ok
  # -timeout 0: go test's default 10 minute limit would end a long run
  # with a panic that looks like a finding.
  if ! go test -run '^$' -timeout 0 -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" "$dir" </dev/null >"$log" 2>&1; then
    # The Go fuzzer reports "context deadline exceeded" when -fuzztime
    # ends while it is still minimizing a new interesting input: that is
    # not a finding. A real one writes its failing input to testdata.
    if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
      result="ok (time ran out while minimizing a new input)"
    else
      cat "$log"
      result="FAILURE FOUND"
      found+=("$dir $target")
      status=1
    fi
  fi
  last=$(grep -E '^fuzz: elapsed: .*execs: [0-9]+' "$log" | tail -n 1 || true)
  execs=$(sed -nE 's/.*execs: ([0-9]+).*/\1/p' <<<"$last")
  fresh=$(sed -nE 's/.*new interesting: ([0-9]+).*/\1/p' <<<"$last")
  # The last line's rate covers its last interval only: divide by elapsed.
  secs=$(sed -nE 's/^fuzz: elapsed: ([0-9hms]+),.*/\1/p' <<<"$last" |
    awk '{ t = 0; n = ""; for (i = 1; i <= length($0); i++) { c = substr($0, i, 1);
      if (c ~ /[0-9]/) n = n c; else { t += n * (c == "h" ? 3600 : c == "m" ? 60 : 1); n = "" } } print t }')
  rate=?
  if [[ -n "$execs" && -n "$secs" && "$secs" -gt 0 ]]; then rate=$((execs / secs)); fi
  line="  execs: ${execs:-?} (${rate}/s over ${secs:-?}s), new interesting: ${fresh:-?}, $result"
  if [[ "$mode" == long ]]; then
    line+=", corpus files added to $dir/testdata/fuzz/$target: $(keep_corpus "$dir" "$target")"
  fi
  echo "$line"
done < <(list_targets)

if ((ran == 0)); then
  echo "no fuzz target matches FUZZ_PKGS='${FUZZ_PKGS:-}' FUZZ_TARGETS='${FUZZ_TARGETS:-}'" >&2
  exit 2
fi
if ((status)); then
  echo "failures found in: ${found[*]}" >&2
fi
exit $status
