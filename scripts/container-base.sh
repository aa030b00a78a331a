#!/usr/bin/env bash
# A stand-in for the Dockerfile's base image where no container registry can be reached: a
# debootstrap'ed Debian bookworm (minbase) with python3 (3.11) and python3-venv, imported into
# the local image store as localhost/debian-python:bookworm. Only for test builds
# (scripts/container-smoke.sh with BASE=localhost/debian-python:bookworm); releases build on the
# pinned python:3.11-slim-bookworm of the Dockerfile.
#
#   sudo scripts/container-base.sh               # ENGINE=podman|docker, MIRROR=…, IMAGE=…, FORCE=1
#
# Needs root (debootstrap), debootstrap itself and a Debian mirror (MIRROR, default: the first
# deb URI of this machine's apt sources, else http://deb.debian.org/debian).
# CAs the host added locally (/usr/local/share/ca-certificates, e.g. a TLS-intercepting proxy's)
# are trusted in the stand-in as well, and PIP_CERT points pip at the system store, so the
# Dockerfile's `pip install` reaches PyPI through the same proxy the host uses.
set -euo pipefail

IMAGE=${IMAGE:-localhost/debian-python:bookworm}
SUITE=${SUITE:-bookworm}
FORCE=${FORCE:-0}

say() { printf 'container-base: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

if [ -z "${ENGINE:-}" ]; then
    if command -v podman >/dev/null 2>&1; then ENGINE=podman
    elif command -v docker >/dev/null 2>&1; then ENGINE=docker
    else die "no container engine: install podman (apt-get install podman) or docker"; fi
fi
# ENGINE_FLAGS: global flags for the engine (e.g. "--runtime runc" for podman), split on spaces.
# RUN_FLAGS: extra `run` flags for the check at the end (e.g. "--ulimit nofile=20000:20000").
read -r -a ENGINE_FLAGS <<<"${ENGINE_FLAGS:-}"
read -r -a RUN_FLAGS <<<"${RUN_FLAGS:-}"
engine() { "$ENGINE" "${ENGINE_FLAGS[@]}" "$@"; }

if [ "$FORCE" != 1 ] && engine image inspect "$IMAGE" >/dev/null 2>&1; then
    say "$IMAGE already exists (FORCE=1 builds it again)"
    exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root: debootstrap needs it"
command -v debootstrap >/dev/null 2>&1 || die "debootstrap missing: apt-get install debootstrap"

if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(grep -hsoE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+' \
                 /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
             | grep -v -- '-security' | head -n1 | awk '{print $NF}' || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

WORK=$(mktemp -d /tmp/container-base.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOTFS=$WORK/rootfs

say "debootstrap $SUITE from $MIRROR (minbase + python3, python3-venv, ca-certificates)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    say "trusting the host's local CAs: $(cd /usr/local/share/ca-certificates && echo *.crt)"
    cp /usr/local/share/ca-certificates/*.crt "$ROOTFS/usr/local/share/ca-certificates/"
    chroot "$ROOTFS" update-ca-certificates >/dev/null
fi

# What a slim image leaves out: apt lists and caches, docs, man pages.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*

say "importing into $ENGINE as $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | engine import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    - "$IMAGE" >/dev/null
engine run --rm "${RUN_FLAGS[@]}" "$IMAGE" python3 -c 'import sys, venv; print("base python", sys.version.split()[0])' 2>/dev/null \
    || say "(could not run the image as a check; it is imported)"
say "done: $IMAGE"
