#!/usr/bin/env bash
# Installs Debian's chromium for the HTML report test (headless screenshots and DOM dumps);
# does nothing when it is already there. The test fails loudly without it, so `make test` runs this.
set -euo pipefail

found() {
    command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]
}

if found; then
    echo "chromium already installed: $(command -v chromium || echo /usr/bin/chromium)"
    exit 0
fi

fail() {
    echo "install-chromium.sh: $*" >&2
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found; install Debian's chromium package by hand"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    fail "not root and sudo is missing; run as root: apt-get install chromium"
fi

# fonts-dejavu-core: the glyphs of the report's text in a fresh image (no font: blank boxes).
apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        chromium fonts-dejavu-core
}

echo "installing chromium with apt-get"
if ! apt_install; then
    echo "install failed; refreshing package lists and retrying"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || fail "apt-get update failed"
    apt_install || fail "apt-get install chromium failed"
fi

found || fail "chromium installed but no chromium binary found"
echo "chromium installed: $(chromium --version 2>/dev/null || /usr/bin/chromium --version)"
