#!/usr/bin/env bash
# Builds (or finds in the cache) the programs of the kubernetes work type's
# end-to-end tests and prints the environment `make test-k8s` passes to them:
#   RECEPTOR_KUBE_APISERVER  kube-apiserver v1.37.2 (module tools/kube)
#   RECEPTOR_KUBENODE        the test node (module tools/kubenode)
#   RECEPTOR_KUBE_ETCD       etcd (Debian's etcd-server package)
# The binaries live outside the repository, in
# ${RECEPTOR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/receptor-test}/kube;
# a cold kube-apiserver build takes about 10 minutes on 2 idle cores (much
# longer on a busy machine), a cached one a few seconds (go's build cache).
set -euo pipefail
cd "$(dirname "$0")/.."
cache="${RECEPTOR_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/receptor-test}/kube"
mkdir -p "$cache"
version=v1.37.2
apiserver="$cache/kube-apiserver-$version"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37"
if [[ ! -x "$apiserver" || tools/kube/go.sum -nt "$apiserver" ]]; then
  echo "building kube-apiserver $version into $apiserver (slow the first time)" >&2
  (cd tools/kube && nice -n "${KUBE_BUILD_NICE:-15}" go build -p "${KUBE_BUILD_P:-1}" -trimpath -ldflags "$ldflags" -o "$apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$apiserver.tmp" "$apiserver"
fi
# The node is small: rebuild it every time (seconds with a warm cache).
(cd tools/kubenode && go build -o "$cache/kubenode" .)
etcd=$(command -v etcd || true)
if [[ -z "$etcd" ]]; then
  echo "etcd not found: apt-get install -y etcd-server" >&2
  exit 1
fi
echo "RECEPTOR_KUBE_APISERVER=$apiserver RECEPTOR_KUBENODE=$cache/kubenode RECEPTOR_KUBE_ETCD=$etcd"
