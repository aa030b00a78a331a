# bridge: one image, one config file, a state volume.
#
#   docker build -t bridge .
#   docker run -d --name bridge --read-only --tmpfs /tmp --stop-timeout 30 \
#     -v /srv/bridge/config.yaml:/etc/bridge/config.yaml:ro -v bridge-state:/app/state \
#     -e IMAP_PASSWORD=… -e SMTP_PASSWORD=… -e ODOO_PASSWORD=… -e BRIDGE_SECRET=… bridge
#
# The config names state.dir: /app/state (an absolute path: relative ones resolve against the
# config file's folder, /etc/bridge, which is read-only) and http.host: 0.0.0.0, http.port: 8080
# (the HEALTHCHECK below and the probes of deploy/ use that port). scripts/container-smoke.sh
# builds this file and runs the image read-only against the package's stand-ins.
#
# BASE: Debian bookworm's slim Python 3.11, pinned by digest: the multi-arch index of
# python:3.11-slim-bookworm as docker-library/repo-info recorded it on 2026-08-25 (Python
# 3.11.16; repos/python/remote/3.11-slim-bookworm.md there). Bookworm, not the moving 3.11-slim
# (now trixie), so the OS under the venv changes only with an edit here. The digest was read from
# that record, not pulled (no registry is reachable where this was written): the release
# process checks and refreshes it, e.g.
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # → Digest: sha256:…
# (Renovate/Dependabot can keep it current). Any base with `python3 -m venv` works: the smoke
# test on a machine with no registry passes --build-arg BASE=localhost/debian-python:bookworm,
# a debootstrap'ed bookworm (scripts/container-base.sh). deploy/dovecot.Dockerfile (the compose
# trial's Dovecot) repeats this default: refresh both (tests/unit/test_deploy_manifests.py checks).
ARG BASE=python:3.11-slim-bookworm@sha256:0bee7276f83efd4a1ee05bbbf4281d95ed28e079220a9457f25a93e3f1e3c31b

# --- stage 1: the package and its dependencies in a venv ---------------------------------------
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
# A regular (non-editable) install: the templates, the sandbox seed and the login-intent model
# are package-data and land in site-packages/bridge/; the source tree stays in this stage. pip
# and setuptools are not needed at run time. The build fails if the package data is missing.
# Then the bytecode, so the read-only image never needs to write __pycache__/: unchecked-hash
# .pyc files are used as they are, whatever mtimes the copy into stage 2 leaves.
RUN /opt/venv/bin/pip install --no-compile . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && rm -rf /opt/venv/share \
 && /opt/venv/bin/python -P -c "import bridge, pathlib; p = pathlib.Path(bridge.__file__).parent; \
assert sorted(p.glob('templates/*.j2')), 'templates missing'; \
assert sorted(p.glob('models/*.json.gz')), 'model missing'; \
assert sorted(p.glob('sandbox/*.yaml')), 'sandbox seed missing'" \
 && /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib

# --- stage 2: runtime ----------------------------------------------------------------------------
FROM ${BASE}
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only (the .pyc files are prebuilt above).
# HOME=/tmp: nothing in the bridge writes to $HOME, but a library that does finds the tmpfs.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp

# The one non-root user, uid/gid 10001 (deploy/ runs it with runAsUser/user: 10001). No login
# shell, no home of its own. /app/state is the volume; /etc/bridge takes the mounted config.
# The official python images ship the standard library without .pyc files; on a read-only root
# every start (and the email parser's spawned process) would compile what it imports again, so
# compile it here (test suites, Tk, IDLE and the base's own site-packages left out).
RUN groupadd --gid 10001 bridge \
 && useradd --no-log-init --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
      --shell /usr/sbin/nologin bridge \
 && mkdir -p /app/state /etc/bridge \
 && chown 10001:10001 /app/state \
 && chmod 0750 /app/state \
 && python3 -m compileall -q -j 0 \
      -x '/(site-packages|dist-packages|test|tests|idlelib|tkinter|turtledemo|lib2to3|ensurepip)/' \
      "$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"

COPY --from=build /opt/venv /opt/venv

# The state folder (sqlite journal, outbox, ticket records, OAuth tokens): a new named volume
# starts as a copy of this folder, owned by uid 10001, so the non-root bridge can write it.
VOLUME ["/app/state"]
WORKDIR /app
# /healthz, /readyz, /metrics, /webhook/ticket (http.port in the config).
EXPOSE 8080
USER 10001:10001

# Liveness only (/readyz is 503 during a server outage, worth an alert, not a restart). No curl
# in a slim image: Python's urllib, run inside the container against 127.0.0.1:8080; http.host
# 0.0.0.0 also lets the host's and Kubernetes' probes in.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]

# SIGTERM (the default stop signal) makes the bridge finish or park its jobs within
# bridge.shutdown_budget_seconds (default 10 s) and exit 0: give it a stop timeout above that
# (Docker's default, 10 s, is not: --stop-timeout, stop_grace_period, terminationGracePeriodSeconds).
# The bridge handles SIGTERM itself as PID 1; --init / init: true is still fine.
ENTRYPOINT ["bridge"]
CMD ["run", "--config", "/etc/bridge/config.yaml"]
