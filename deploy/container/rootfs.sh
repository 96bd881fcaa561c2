#!/bin/sh
# Lays out the files of the runtime image under OUT, from the static
# binaries in BIN (what `make build` writes, CGO_ENABLED=0):
#
#   OUT/rootfs/   the image's tree, all owned by root
#   OUT/empty/    an empty directory; the Containerfile copies it to
#                 /var/lib/receptor and /run/receptor owned by the image's
#                 user (COPY --chown), so no step here needs to chown
#
# Used by the Containerfile's build stage and by scripts/image.sh
# (`make image`), so both images have the same contents.
#
#   deploy/container/rootfs.sh BIN OUT
set -eu
bin=${1:?usage: rootfs.sh BIN OUT}
out=${2:?usage: rootfs.sh BIN OUT}
here=$(cd "$(dirname "$0")" && pwd)

for b in receptor receptor-runner receptor-router receptor-worker receptor-probe receptorctl; do
  if [ ! -x "$bin/$b" ]; then
    echo "rootfs.sh: $bin/$b is missing (run make build)" >&2
    exit 1
  fi
done

umask 022
rm -rf "$out/rootfs" "$out/empty"
mkdir -p "$out/rootfs/usr/bin" "$out/rootfs/etc/receptor" "$out/rootfs/var/lib" \
  "$out/rootfs/run" "$out/rootfs/tmp" "$out/rootfs/etc/ssl/certs" "$out/empty"
chmod 1777 "$out/rootfs/tmp"
# The datadir and socket directory: only their owner may write (the node
# refuses directories others may write, docs/security.md).
chmod 0750 "$out/empty"

# receptor is the entrypoint; receptor-runner must sit beside it (the work
# agent starts it to run command units); receptor-router and
# receptor-worker run the split deployment from the same image;
# receptor-probe checks their gRPC health (Kubernetes exec probes);
# receptorctl talks to the node from inside (podman exec), as in upstream's image.
for b in receptor receptor-runner receptor-router receptor-worker receptor-probe receptorctl; do
  cp "$bin/$b" "$out/rootfs/usr/bin/$b"
  chmod 0755 "$out/rootfs/usr/bin/$b"
done

cp "$here/receptor.conf" "$out/rootfs/etc/receptor/receptor.conf"
chmod 0644 "$out/rootfs/etc/receptor/receptor.conf"

# The image's one user, uid/gid 1000 (the Containerfile's USER).
cat > "$out/rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
receptor:x:1000:1000:receptor:/var/lib/receptor:/sbin/nologin
PASSWD
cat > "$out/rootfs/etc/group" <<'GROUP'
root:x:0:
receptor:x:1000:
GROUP

# System roots for wss:// peers without a tls entity, when the machine
# building the image has them.
for ca in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
  if [ -f "$ca" ]; then
    cp "$ca" "$out/rootfs/etc/ssl/certs/ca-certificates.crt"
    break
  fi
done
