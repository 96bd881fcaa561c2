#!/usr/bin/env bash
# Regenerates gen/ from proto/ with buf and local protoc plugins, and the
# web view's bundle gen/webui/assets from web/ with esbuild.
#
# Usage: scripts/generate.sh [generate|lint|check|install|web]
#   generate (default)  install the tools, regenerate gen/ from scratch, buf lint, web
#   lint                install buf only, buf lint
#   check               generate, then fail if gen/ differs from what git has
#   install             only build the tools (CI uses it to learn whether buf can be had)
#   web                 only the web view: npm ci in web/ (package-lock.json), then
#                       web/build.mjs (esbuild) writes gen/webui/assets
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

# The web view's packages come from the npm registry at the versions of
# web/package-lock.json (npm ci never changes the lock file); install
# scripts are not run (esbuild's only checks its binary). Needs node and
# npm; the Go build does not (the bundle is committed).
web() {
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "generate.sh web: node and npm are needed to bundle the web view (apt-get install nodejs npm)" >&2
    return 1
  fi
  npm ci --prefix web --ignore-scripts --no-audit --no-fund --loglevel=error
  node web/build.mjs
}

mode=${1:-generate}
case "$mode" in
  generate)
    generate
    web
    ;;
  web)
    web
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
    web
    changes=$(git status --porcelain -- gen/)
    if [[ -n "$changes" ]]; then
      echo "gen/ is not up to date with proto/; run ./scripts/generate.sh and commit:" >&2
      echo "$changes" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: $0 [generate|lint|check|install|web]" >&2
    exit 2
    ;;
esac
