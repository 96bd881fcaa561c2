#!/usr/bin/env bash
# Regenerates gen/ from proto/ with buf and local protoc plugins.
#
# Usage: scripts/generate.sh [generate|lint|check|install]
#   generate (default)  install the tools, regenerate gen/ from scratch, buf lint
#   lint                install buf only, buf lint
#   check               generate, then fail if gen/ differs from what git has
#   install             only build the tools (CI uses it to learn whether buf can be had)
#
# Works offline: the tools are Go programs pinned in tools/go.mod and built
# from the Go module proxy into .tools/bin (gitignored); a second run only
# relinks, so it is fast. Nothing is fetched from the buf registry.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bin="$root/.tools/bin"
buf_pkg=github.com/bufbuild/buf/cmd/buf
plugin_pkgs=(
  google.golang.org/protobuf/cmd/protoc-gen-go
  google.golang.org/grpc/cmd/protoc-gen-go-grpc
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2
)

install_tools() {
  mkdir -p "$bin"
  # GOWORK=off: the tools module must resolve its own versions, never the
  # main module's or a workspace's.
  GOWORK=off GOBIN="$bin" go install -C tools "$@"
}

# The plugins are found on PATH by buf (local: entries in buf.gen.yaml); ours
# come first so a different system-wide version is never used.
export PATH="$bin:$PATH"

generate() {
  install_tools "$buf_pkg" "${plugin_pkgs[@]}"
  # From scratch, so files of deleted protos do not linger. gen/openapi keeps
  # its hand-written Go wrapper; only the generated JSON is removed.
  rm -rf gen/go
  rm -f gen/openapi/*.json
  buf generate
  buf lint
}

mode=${1:-generate}
case "$mode" in
  generate)
    generate
    ;;
  lint)
    install_tools "$buf_pkg"
    buf lint
    ;;
  install)
    install_tools "$buf_pkg" "${plugin_pkgs[@]}"
    ;;
  check)
    generate
    changes=$(git status --porcelain -- gen/)
    if [[ -n "$changes" ]]; then
      echo "gen/ is not up to date with proto/; run ./scripts/generate.sh and commit:" >&2
      echo "$changes" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 [generate|lint|check|install]" >&2
    exit 2
    ;;
esac
