#!/usr/bin/env bash
# Installs Debian's dovecot-imapd for the integration tests; does nothing when Dovecot is already there.
# The tests start their own private instances, so the system service is never started.
set -euo pipefail

if command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; then
    echo "dovecot already installed: $(command -v dovecot || echo /usr/sbin/dovecot)"
    exit 0
fi

fail() {
    echo "install-dovecot.sh: $*" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found; install Dovecot 2.3 (dovecot-imapd) by hand"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    fail "not root and sudo is missing; run as root: apt-get install dovecot-imapd"
fi

# policy-rc.d exit 101 tells the package scripts not to start services; keep an existing one.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
fi

apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q dovecot-imapd
}

echo "installing dovecot-imapd with apt-get"
if ! apt_install; then
    echo "install failed; refreshing package lists and retrying"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || fail "apt-get update failed"
    apt_install || fail "apt-get install dovecot-imapd failed"
fi

[ -x /usr/sbin/dovecot ] || command -v dovecot >/dev/null 2>&1 || fail "dovecot-imapd installed but no dovecot binary found"
echo "dovecot installed: $(/usr/sbin/dovecot --version 2>/dev/null || dovecot --version)"
