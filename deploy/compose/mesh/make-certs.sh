#!/bin/sh
# Makes the certificates of the three-node mesh (compose.yaml) in ./certs,
# with receptor's own certificate commands:
#   ca.crt, ca.key                 the mesh's CA (--cert-init)
#   NODE.key, NODE.csr, NODE.crt   per node: a request naming the node ID
#                                  and the DNS name compose gives the
#                                  service (--cert-makereq), signed by the
#                                  CA (--cert-signreq)
# An existing CA is kept; node certificates are made anew.
#
#   RECEPTOR=/path/to/receptor ./make-certs.sh   (default: receptor on PATH, else ../../../bin/receptor)
#
# The image runs as uid 1000, which must be able to read the keys: as root,
# this script gives them to uid 1000 (mode 0600); with rootless podman run
# `podman unshare chown 1000:1000 certs/*.key` afterwards.
set -eu
cd "$(dirname "$0")"
receptor=${RECEPTOR:-$(command -v receptor || echo ../../../bin/receptor)}
if [ ! -x "$receptor" ]; then
  echo "make-certs.sh: no receptor binary (set RECEPTOR, or run make build at the repository root)" >&2
  exit 1
fi

umask 077
mkdir -p certs
if [ ! -f certs/ca.crt ]; then
  "$receptor" --cert-init commonname="receptor compose mesh CA" bits=2048 \
    outcert=certs/ca.crt outkey=certs/ca.key
fi
for node in controller hop execution; do
  "$receptor" --cert-makereq commonname="$node" nodeid="$node" dnsname="$node" bits=2048 \
    outreq="certs/$node.csr" outkey="certs/$node.key"
  "$receptor" --cert-signreq req="certs/$node.csr" cacert=certs/ca.crt cakey=certs/ca.key \
    outcert="certs/$node.crt" verify=true
done
chmod 0644 certs/ca.crt certs/*.crt
if [ "$(id -u)" = 0 ]; then
  chown 1000:1000 certs/controller.key certs/hop.key certs/execution.key
else
  echo "make-certs.sh: the containers' user (uid 1000) must read the keys:" >&2
  echo "  podman unshare chown 1000:1000 certs/*.key    (rootless podman)" >&2
  echo "  sudo chown 1000:1000 certs/*.key              (docker, rootful podman)" >&2
fi
echo "make-certs.sh: certificates in $(pwd)/certs"
