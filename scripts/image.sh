#!/usr/bin/env bash
# `make image`: the runtime image of deploy/container/Containerfile, built
# from the static binaries in BIN (what `make build` wrote) instead of in a
# Go image, so no base image is pulled. Uses podman, else buildah.
#
#   BIN=bin IMAGE=localhost/receptor:latest VERSION=x scripts/image.sh
#
# Storage and runtime follow the usual containers files and variables
# (CONTAINERS_STORAGE_CONF, CONTAINERS_CONF): the image test builds into a
# temporary store that way.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$root/bin}
image=${IMAGE:-localhost/receptor:latest}
version=${VERSION:-0.0.0-dev}

if command -v podman >/dev/null; then
  tool=podman
elif command -v buildah >/dev/null; then
  tool=buildah
else
  echo "image.sh: neither podman nor buildah is installed (apt-get install podman or buildah)" >&2
  exit 1
fi

# The image has no C library: a dynamically linked binary would not start.
# Go writes the dynamic loader's path into binaries built with cgo.
for b in receptor receptor-runner receptor-router receptor-worker receptor-probe receptorctl; do
  if [[ -f "$bin/$b" ]] && LC_ALL=C grep -q -a -E '/lib(64)?/ld-(linux|musl)' "$bin/$b"; then
    echo "image.sh: $bin/$b is dynamically linked; rebuild it with 'make build' (CGO_ENABLED=0)" >&2
    exit 1
  fi
done

ctx=$(mktemp -d)
rootfs_image=localhost/receptor-rootfs:tmp-$$
cleanup() {
  rm -rf "$ctx"
  $tool rmi "$rootfs_image" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$root/deploy/container/rootfs.sh" "$bin" "$ctx"
printf 'FROM scratch\nCOPY rootfs /rootfs\nCOPY empty /empty\n' >"$ctx/Containerfile.rootfs"
$tool build --quiet -t "$rootfs_image" -f "$ctx/Containerfile.rootfs" "$ctx" >/dev/null
# The runtime stage copies only from the rootfs stage: the context is not read.
$tool build -t "$image" --build-arg ROOTFS="$rootfs_image" --build-arg VERSION="$version" \
  -f "$root/deploy/container/Containerfile" "$ctx"
echo "image.sh: built $image with $tool"
