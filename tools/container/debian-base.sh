#!/usr/bin/env bash
# Build the Containerfile's base image from Debian's packages, for machines that cannot pull one
# from a container registry: a minimal bookworm with Python 3.11 and venv, as
# localhost/roomtrust/base:bookworm in buildah's vfs storage. Needs root, debootstrap and buildah.
set -euo pipefail
IMAGE="${1:-localhost/roomtrust/base:bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
STORAGE=(--storage-driver vfs)
if buildah "${STORAGE[@]}" inspect --type image "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE is already built"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log"; exit 1; }
# Trust what this machine trusts: its network may reach the package registries through a TLS
# proxy whose CA only the machine's own bundle holds.
cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
# Drop what an image does not need: apt's lists and caches, documentation, locales.
rm -rf "$work/rootfs"/var/lib/apt/lists/* "$work/rootfs"/var/cache/apt/* \
  "$work/rootfs"/usr/share/doc/* "$work/rootfs"/usr/share/man/* "$work/rootfs"/usr/share/locale/*
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
cat >"$work/Containerfile" <<'CF'
FROM scratch
ADD rootfs.tar /
CMD ["/usr/bin/python3"]
CF
buildah "${STORAGE[@]}" bud --quiet --isolation chroot -t "$IMAGE" -f "$work/Containerfile" "$work"
echo "$IMAGE built"
