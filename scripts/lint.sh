#!/usr/bin/env bash
# The project's static checks, in one place: `make lint` and .ci/run both run
# this script, so the list is kept once.
#
#   1. go mod tidy -diff     go.mod and go.sum are tidy
#   2. gofmt                 every tracked .go file outside gen/ is formatted
#   3. go vet ./...
#   4. buf lint              the protos follow buf's rules
#   5. gen/ check            gen/ is what proto/ and web/ generate (scripts/generate.sh
#                            check; the web view's bundle needs node and npm)
#
# buf and the protoc plugins are built from the Go module proxy by
# scripts/generate.sh (pinned in tools/go.mod). If they cannot be built, this
# script fails: a skipped check would pass silently.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '== %s\n' "$*"; }

step "go mod tidy -diff"
if ! go mod tidy -diff; then
  echo "go.mod/go.sum are not tidy; run 'go mod tidy' and commit" >&2
  exit 1
fi

step "gofmt"
unformatted=$(git ls-files -z -- '*.go' ':!:gen/**' | xargs -0 -r gofmt -l)
if [[ -n "$unformatted" ]]; then
  echo "gofmt needed (run 'gofmt -w' on these files):" >&2
  echo "$unformatted" >&2
  exit 1
fi

step "go vet ./..."
go vet ./...

step "install buf and the protoc plugins"
if ! ./scripts/generate.sh install; then
  echo "could not build buf from the Go module proxy (scripts/generate.sh install); failing" >&2
  exit 1
fi

step "buf lint"
./scripts/generate.sh lint

step "gen/ up to date with proto/ and web/"
./scripts/generate.sh check

echo "lint: all checks passed"
