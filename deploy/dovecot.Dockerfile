# The Dovecot of the compose trial (deploy/compose.yaml, service `dovecot`); build context: the
# repository root (its .dockerignore lets in only pyproject.toml, README.md and bridge/).
#
# The package's sandbox Dovecot (bridge.sandbox.dovecot) drives Debian's Dovecot 2.3 binary,
# which the bridge image does not have, so this service gets its own small image: the same
# Python base plus dovecot-imapd plus the package. It runs as root inside its container, the
# way the sandbox is used on the test machines: Dovecot itself starts as root and runs its mail
# processes as an unprivileged user the sandbox creates (bridgemail). One mailbox,
# support / support-pw, maildirs under /tmp (gone with the container).
#
# BASE: the bridge Dockerfile's base, pinned to bookworm: the sandbox writes Dovecot 2.3
# configuration, and python:3.11-slim now follows Debian trixie, whose Dovecot 2.4 reads a
# different syntax. The digest is the Dockerfile's (tests/unit/test_deploy_manifests.py keeps
# the two equal); `BASE=… compose build` overrides both, e.g. with the debootstrap'ed
# localhost/debian-python:bookworm of scripts/container-base.sh where no registry is reachable.
# The package goes into a venv: a Debian base's own python3 refuses `pip install` (PEP 668),
# and the venv's `python` is the one the compose file's commands name.
ARG BASE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b
FROM ${BASE}
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN pip install --no-compile .
