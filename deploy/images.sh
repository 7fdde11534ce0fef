#!/usr/bin/env bash
# Builds the dxsync container image with podman from deploy/docker/Dockerfile, unchanged, on a
# machine without an image registry: the Dockerfile's bases (debian:12, debian:12-slim) are made
# once from Debian's archive with debootstrap and kept under the cache folder.
#
#   deploy/images.sh [TAG]      build TAG (default localhost/dxsync:dev); prints size and times
#
# Environment: DXSYNC_CACHE (default ~/.cache/dxsync): the base image's tarball and podman's
# configuration live in $DXSYNC_CACHE/containers. DXSYNC_DEBIAN_MIRROR (default
# http://deb.debian.org/debian). Needs root for debootstrap (once) and podman (rootful here).
#
# podman here: crun fails on this kernel's hybrid cgroups, so the runtime is runc; podman's
# default rlimits exceed the machine's hard limits, so they are set within them. Both go in a
# containers.conf of our own (CONTAINERS_CONF), never in /etc.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TAG=${1:-localhost/dxsync:dev}
CACHE=${DXSYNC_CACHE:-$HOME/.cache/dxsync}/containers
MIRROR=${DXSYNC_DEBIAN_MIRROR:-http://deb.debian.org/debian}
say() { printf '%s images %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
mkdir -p "$CACHE"

need=()
for p in podman runc debootstrap; do command -v "$p" >/dev/null || need+=("$p"); done
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# podman's configuration: runc, rlimits within the hard ones
nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] && nofile=1048576
[ "$nproc" = unlimited ] && nproc=4096
[ "$nproc" -gt 4096 ] && nproc=4096
cat >"$CACHE/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF=$CACHE/containers.conf

# The bases: debian:12 and debian:12-slim from one minbase bookworm root file system, without
# the downloaded packages; the slim one also without documentation, and told not to install
# any (as Debian's own slim images are).
full=$CACHE/debian-12.tar slim=$CACHE/debian-12-slim.tar
if [ ! -s "$full" ] || [ ! -s "$slim" ]; then
  t0=$SECONDS
  say "debootstrap bookworm (minbase) from $MIRROR"
  rootfs=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  tar -C "$rootfs" -cf "$full.part" . && mv "$full.part" "$full"
  rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
    >"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
  tar -C "$rootfs" -cf "$slim.part" . && mv "$slim.part" "$slim"
  rm -rf "$rootfs"
  trap - EXIT
  podman rmi -f docker.io/library/debian:12 docker.io/library/debian:12-slim >/dev/null 2>&1 || true
  say "base root file systems made in $((SECONDS - t0)) s (debian:12 $(du -h "$full" | cut -f1), slim $(du -h "$slim" | cut -f1))"
fi
if ! podman image exists docker.io/library/debian:12 || ! podman image exists docker.io/library/debian:12-slim; then
  podman import -q "$full" docker.io/library/debian:12 >/dev/null
  podman import -q "$slim" docker.io/library/debian:12-slim >/dev/null
  say "imported as debian:12 and debian:12-slim"
fi

t0=$SECONDS
say "podman build --format docker (HEALTHCHECK kept) -f deploy/docker/Dockerfile -t $TAG"
podman build -q --format docker -f "$ROOT/deploy/docker/Dockerfile" -t "$TAG" "$ROOT" >/dev/null
size=$(podman image inspect "$TAG" --format '{{.Size}}')
say "built $TAG in $((SECONDS - t0)) s: $((size / 1000000)) MB"
echo "$TAG $size"
