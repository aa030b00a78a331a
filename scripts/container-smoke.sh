#!/usr/bin/env bash
# Container smoke test: build the image from the Dockerfile, run it the way production does
# (read-only root filesystem, tmpfs /tmp, uid 10001, no capabilities, state on a named volume)
# against the package's stand-ins running on this host, and check
#   - the image: non-root user, HEALTHCHECK, templates inside the installed package;
#   - /readyz answers 200 and the image's own HEALTHCHECK command passes;
#   - one email APPENDed to Dovecot becomes a ticket in the Odoo stand-in and an
#     acknowledgement in the SMTP sink;
#   - SIGTERM: the container exits 0 within the shutdown budget plus a margin and logs
#     "bridge stopped in"; its state was written to the volume (nowhere else could it write).
#
#   scripts/container-smoke.sh                   # docker or podman, whichever is installed
#
# Environment:
#   ENGINE=docker|podman   the engine (default: docker if its daemon answers, else podman)
#   BASE=image             --build-arg BASE (e.g. localhost/debian-python:bookworm, from
#                          scripts/container-base.sh, where no registry can be reached)
#   IMAGE=bridge:smoke     the tag built and run;  SKIP_BUILD=1 runs an existing IMAGE
#   PYTHON=…               a Python with this repository's package for the stand-ins
#                          (default: .venv/bin/python, else python3)
#   HTTP_PORT=8080         the bridge's http.port (the HEALTHCHECK probes 8080: another port
#                          skips that check)
#   ENGINE_FLAGS, BUILD_FLAGS, RUN_FLAGS   extra flags (split on spaces) for the engine itself,
#                          `build` and `run`, e.g. for podman in a locked-down sandbox:
#                          ENGINE_FLAGS="--runtime runc" RUN_FLAGS="--ulimit nofile=20000:20000"
#   KEEP=1                 keep the work folder (logs, config) and print its path
#
# Needs: Linux with host networking (the container reaches the stand-ins on 127.0.0.1, so no
# plain-text transport leaves loopback and bridge.allow_insecure stays off), Dovecot 2.3
# (scripts/install-dovecot.sh), and the repository installed in PYTHON (e.g. make install).
# Exit status 0 when every check passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-bridge:smoke}
HTTP_PORT=${HTTP_PORT:-8080}
BUDGET=10                    # bridge.shutdown_budget_seconds in the config below
MARGIN=10                    # what an exit may take beyond the budget (interpreter exit, engine)
STOP_TIMEOUT=$((BUDGET + MARGIN))
READY_TIMEOUT=${READY_TIMEOUT:-90}
FLOW_TIMEOUT=${FLOW_TIMEOUT:-60}
NAME=bridge-smoke-$$
VOLUME=bridge-smoke-state-$$
read -r -a ENGINE_FLAGS <<<"${ENGINE_FLAGS:-}"
read -r -a BUILD_FLAGS <<<"${BUILD_FLAGS:-}"
read -r -a RUN_FLAGS <<<"${RUN_FLAGS:-}"

FAILED=0
pass() { printf 'PASS %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; FAILED=1; }
note() { printf '     %s\n' "$*"; }
die() { fail "$*"; exit 1; }    # the EXIT trap shows the logs and cleans up

# --- the engine -----------------------------------------------------------------------------
if [ -z "${ENGINE:-}" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then ENGINE=docker
    elif command -v podman >/dev/null 2>&1; then ENGINE=podman
    else die "no container engine: neither a docker daemon nor podman answers (set ENGINE)"; fi
fi
engine() { "$ENGINE" "${ENGINE_FLAGS[@]}" "$@"; }
engine info >/dev/null 2>&1 || die "$ENGINE info fails: $(engine info 2>&1 | tail -n 3)"
engine_version=$(engine version --format '{{.Client.Version}}' 2>/dev/null || echo '?')
pass "engine: $ENGINE $engine_version"

# --- the host side: Python with the package, Dovecot --------------------------------------------
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import bridge.sandbox.dovecot, bridge.sandbox.odoo, bridge.sandbox.smtp_sink' 2>/dev/null \
    || die "$PYTHON cannot import bridge.sandbox (install the repository: make install, or set PYTHON)"
"$PYTHON" -c 'import sys; from bridge.sandbox.dovecot import Dovecot; sys.exit(Dovecot.binary() is None)' \
    || die "Dovecot is missing on this host: scripts/install-dovecot.sh"
"$PYTHON" - "$HTTP_PORT" <<'EOF' || die "port $HTTP_PORT is taken on this host (the container shares its network): set HTTP_PORT"
import socket, sys
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[1])))
EOF

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bridge-smoke.XXXXXX")
PIDS=()
CONTAINER_STARTED=0

cleanup() {
    local status=$?
    set +e
    if [ "$CONTAINER_STARTED" = 1 ]; then
        if [ "$FAILED" != 0 ] || [ "$status" != 0 ]; then
            echo "---- container log (last 60 lines) ----"
            engine logs "$NAME" 2>&1 | tail -n 60
            echo "---------------------------------------"
        fi
        engine rm -f "$NAME" >/dev/null 2>&1
    fi
    engine volume rm -f "$VOLUME" >/dev/null 2>&1
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "work folder kept: $WORK"; else rm -rf "$WORK"; fi
    if [ "$FAILED" = 0 ] && [ "$status" = 0 ]; then echo "container smoke: PASS"; else echo "container smoke: FAIL"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { "$PYTHON" -c 'import time; print(f"{time.monotonic():.3f}")'; }
elapsed() { "$PYTHON" -c 'import sys, time; print(f"{time.monotonic() - float(sys.argv[1]):.1f}")' "$1"; }

# --- build ----------------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    build_args=(build -t "$IMAGE" -f "$REPO/Dockerfile")
    [ "$ENGINE" = podman ] && build_args+=(--format docker)   # OCI images drop HEALTHCHECK
    [ -n "${BASE:-}" ] && build_args+=(--build-arg "BASE=$BASE")
    started=$(now)
    if engine "${build_args[@]}" "${BUILD_FLAGS[@]}" "$REPO" >"$WORK/build.log" 2>&1; then
        pass "build $IMAGE${BASE:+ (BASE=$BASE)} in $(elapsed "$started")s"
    else
        tail -n 40 "$WORK/build.log"
        die "build failed (last lines above)"
    fi
fi
size=$(engine image inspect --format '{{.Size}}' "$IMAGE" 2>/dev/null || echo 0)
note "image size: $((size / 1000000)) MB"

# --- the image's configuration ------------------------------------------------------------------------
engine image inspect "$IMAGE" >"$WORK/image.json"
# Docker keeps HEALTHCHECK in .Config.Healthcheck, podman (--format docker) in .Healthcheck.
healthcheck_py='import json, sys
image = json.load(open(sys.argv[1]))[0]
cfg = image.get("Config") or {}
test = (cfg.get("Healthcheck") or image.get("Healthcheck") or {}).get("Test") or []'
"$PYTHON" - "$WORK/image.json" >"$WORK/image-checks.txt" <<EOF || true
$healthcheck_py
user = cfg.get("User") or ""
print("user", "ok" if user.split(":")[0] not in ("", "0", "root") else "bad", user or "(root)")
print("healthcheck", "ok" if test and test[0] in ("CMD", "CMD-SHELL") and "/healthz" in " ".join(test) else "bad",
      json.dumps(test))
print("volume", "ok" if "/app/state" in (cfg.get("Volumes") or {}) else "bad", json.dumps(cfg.get("Volumes")))
EOF
while read -r what verdict detail; do
    if [ "$verdict" = ok ]; then pass "image $what: $detail"; else fail "image $what: $detail"; fi
done <"$WORK/image-checks.txt"

if engine run --rm "${RUN_FLAGS[@]}" --read-only --tmpfs /tmp --user 10001:10001 --network none \
        --entrypoint python "$IMAGE" -c '
import pathlib, bridge
pkg = pathlib.Path(bridge.__file__).parent
templates = sorted(p.name for p in pkg.glob("templates/*.j2"))
assert "/site-packages/" in str(pkg), pkg
assert "ack.txt.j2" in templates and sorted(pkg.glob("models/*.json.gz")), templates
print(f"{len(templates)} templates in {pkg}/templates")' >"$WORK/templates.txt" 2>&1; then
    pass "templates inside the installed package: $(tail -n 1 "$WORK/templates.txt")"
else
    fail "templates check: $(tail -n 3 "$WORK/templates.txt")"
fi

# --- stand-ins on the host ------------------------------------------------------------------------
# Each prints "ready <url>" once it listens; the SMTP sink then prints "received <Message-ID> to=…".
start_standin() {  # name module
    (cd "$WORK" && exec "$PYTHON" -u -m "$2" --port 0) >"$WORK/$1.out" 2>"$WORK/$1.err" &
    PIDS+=($!)
}
start_standin dovecot bridge.sandbox.dovecot
start_standin odoo bridge.sandbox.odoo
start_standin smtp bridge.sandbox.smtp_sink
deadline=$((SECONDS + 30))
for which in dovecot odoo smtp; do
    until grep -q '^ready ' "$WORK/$which.out" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "stand-in $which did not start: $(tail -n 5 "$WORK/$which.err")"
        sleep 0.2
    done
done
port_of() { sed -n 's/^ready [a-z]*:\/\/[^:]*:\([0-9]*\).*/\1/p' "$WORK/$1.out" | head -n 1; }
IMAP_PORT=$(port_of dovecot); ODOO_PORT=$(port_of odoo); SMTP_PORT=$(port_of smtp)
pass "stand-ins on the host: imap 127.0.0.1:$IMAP_PORT, odoo 127.0.0.1:$ODOO_PORT, smtp 127.0.0.1:$SMTP_PORT"

# --- the bridge's config ----------------------------------------------------------------------------
# Every server is on loopback (host network), so plain IMAP/SMTP/http need no allow_insecure.
cat >"$WORK/config.yaml" <<EOF
bridge:
  secret: container-smoke-secret-not-for-production
  log_level: INFO
  log_format: text
  shutdown_budget_seconds: $BUDGET
imap:
  host: 127.0.0.1
  port: $IMAP_PORT
  security: plain
  username: support
  password: support-pw
  folder: INBOX
  idle: true
  poll_interval_seconds: 2
smtp:
  host: 127.0.0.1
  port: $SMTP_PORT
  security: plain
  from_address: support@example.com
  from_name: Example Support
odoo:
  url: http://127.0.0.1:$ODOO_PORT
  db: bridge
  username: bot@example.com
  password: secret
  transport: jsonrpc
  profile: helpdesk
  team: Customer Care
tickets:
  templates_dir: ""
state:
  dir: /app/state
http:
  host: 0.0.0.0
  port: $HTTP_PORT
  webhook_token: container-smoke-webhook-token
EOF
chmod 0644 "$WORK/config.yaml"

# --- run ------------------------------------------------------------------------------------------
engine volume create "$VOLUME" >/dev/null
engine run -d --name "$NAME" \
    --network host \
    --read-only --tmpfs /tmp \
    --user 10001:10001 \
    --cap-drop ALL --security-opt no-new-privileges \
    -v "$WORK/config.yaml:/etc/bridge/config.yaml:ro" \
    -v "$VOLUME:/app/state" \
    "${RUN_FLAGS[@]}" \
    "$IMAGE" >"$WORK/container.id" 2>"$WORK/run.err" \
    || die "$ENGINE run failed: $(tail -n 5 "$WORK/run.err")"
CONTAINER_STARTED=1
ro=$(engine inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$NAME" 2>/dev/null || echo '?')
note "container $NAME started (read-only root: $ro, user 10001, tmpfs /tmp, state volume $VOLUME)"

running() { [ "$(engine inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ]; }
http_status() {  # path → HTTP status, 000 when nothing answers
    "$PYTHON" - "http://127.0.0.1:$HTTP_PORT$1" <<'EOF'
import sys, urllib.error, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=3).status)
except urllib.error.HTTPError as exc:
    print(exc.code)
except OSError:
    print("000")
EOF
}
started=$(now)
deadline=$((SECONDS + READY_TIMEOUT))
status=000
while :; do
    status=$(http_status /readyz)
    [ "$status" = 200 ] && break
    running || die "the container exited before /readyz answered 200 (exit code $(engine inspect --format '{{.State.ExitCode}}' "$NAME"))"
    [ $SECONDS -lt $deadline ] || die "/readyz not 200 within ${READY_TIMEOUT}s (last: $status)"
    sleep 0.5
done
pass "/readyz 200 after $(elapsed "$started")s"

# The image's own HEALTHCHECK command, run in the container (what the engine's probe runs).
if [ "$HTTP_PORT" = 8080 ]; then
    mapfile -t health < <("$PYTHON" -c "$healthcheck_py"'
argv = test[1:] if test[:1] == ["CMD"] else ["sh", "-c", test[1]] if test[:1] == ["CMD-SHELL"] else []
print("\n".join(argv))' "$WORK/image.json")
    if [ "${#health[@]}" -gt 0 ] && engine exec "$NAME" "${health[@]}" >"$WORK/health.out" 2>&1; then
        pass "HEALTHCHECK command passes in the container"
    else
        fail "HEALTHCHECK command: $(tail -n 3 "$WORK/health.out" 2>/dev/null)"
    fi
else
    note "HTTP_PORT=$HTTP_PORT: the image's HEALTHCHECK probes 8080, not run"
fi

# --- email → ticket + acknowledgement ----------------------------------------------------------------
# A small email, parsed in a thread, and a large one (over intake's 4 MiB PROCESS_PARSE_BYTES),
# parsed in a spawned process of its own: that one also shows multiprocessing works read-only.
MID="container-smoke-$$-$(date +%s)"
"$PYTHON" - "$IMAP_PORT" "$MID" <<'EOF' || die "APPEND to Dovecot failed"
import base64, imaplib, os, sys
port, mid = int(sys.argv[1]), sys.argv[2]

def email(sender, subject, mid, body, attachment=b""):
    head = (f"From: {sender}\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{mid}@customer.example>\r\n"
            "MIME-Version: 1.0\r\n")
    if not attachment:
        return (head + f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()
    data = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
    return (head + 'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            "--b1\r\nContent-Type: application/octet-stream\r\n"
            'Content-Disposition: attachment; filename="scan.bin"\r\n'
            f"Content-Transfer-Encoding: base64\r\n\r\n{data}--b1--\r\n").encode()

imap = imaplib.IMAP4("127.0.0.1", port)
imap.login("support", "support-pw")
for raw in (email("Casey Customer <casey@customer.example>", "Container smoke: the printer prints blank pages",
                  f"{mid}-small", "Since this morning every page comes out blank."),
            email("Robin Customer <robin@customer.example>", "Container smoke (large): scan attached",
                  f"{mid}-large", "The scan of the blank page is attached.", os.urandom(4_500_000))):
    status, _ = imap.append("INBOX", None, None, raw)
    if status != "OK":
        sys.exit(f"APPEND: {status}")
imap.logout()
EOF
started=$(now)
flow_rc=0
"$PYTHON" - "$ODOO_PORT" "$WORK/smtp.out" "$FLOW_TIMEOUT" >"$WORK/flow.out" 2>&1 <<'EOF' || flow_rc=$?
import json, sys, time, urllib.request
port, sink_log, timeout = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
expected = {"small": ("Container smoke: the printer", "casey@customer.example"),
            "large": ("Container smoke (large)", "robin@customer.example")}
tickets, acks = {}, {}
deadline = time.monotonic() + timeout
while time.monotonic() < deadline and (len(tickets) < len(expected) or len(acks) < len(expected)):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_sandbox/control",
                                     data=json.dumps({"action": "dump", "model": "helpdesk.ticket"}).encode(),
                                     headers={"Content-Type": "application/json"})
    records = json.load(urllib.request.urlopen(request, timeout=5)).get("records") or []
    with open(sink_log) as f:
        received = [line.strip() for line in f if line.startswith("received ")]
    for which, (subject, customer) in expected.items():
        ticket = next((r for r in records if str(r.get("name", "")).startswith(subject)), None)
        ack = next((line.split(" t=")[0] for line in received if f"to={customer}" in line), None)
        if ticket:
            tickets[which] = ticket
        if ack:
            acks[which] = ack
    time.sleep(0.3)
for which in expected:
    if which in tickets:
        print(f"ticket {which}: #{tickets[which]['id']} {tickets[which].get('name')!r}")
    if which in acks:
        print(f"ack {which}: {acks[which]}")
sys.exit(0 if len(tickets) == len(acks) == len(expected) else 1)
EOF
took=$(elapsed "$started")
for which in small large; do
    line=$(grep "^ticket $which: " "$WORK/flow.out" || true)
    if [ -n "$line" ]; then pass "$which email → ${line#ticket "$which": }"
    else fail "$which email: no ticket in the Odoo stand-in within ${FLOW_TIMEOUT}s"; fi
    line=$(grep "^ack $which: " "$WORK/flow.out" || true)
    if [ -n "$line" ]; then pass "$which email → acknowledgement in the SMTP sink: ${line#ack "$which": }"
    else fail "$which email: no acknowledgement in the SMTP sink within ${FLOW_TIMEOUT}s"; fi
done
[ "$flow_rc" = 0 ] || die "the emails did not go through: $(grep -v -e '^ticket ' -e '^ack ' "$WORK/flow.out" | tail -n 2)"
note "ticket and acknowledgement for both within ${took}s of the APPEND"

# --- SIGTERM ----------------------------------------------------------------------------------------
started=$(now)
engine stop -t "$STOP_TIMEOUT" "$NAME" >/dev/null 2>"$WORK/stop.err" || fail "$ENGINE stop: $(tail -n 2 "$WORK/stop.err")"
took=$(elapsed "$started")
exit_code=$(engine inspect --format '{{.State.ExitCode}}' "$NAME")
engine logs "$NAME" >"$WORK/bridge.log" 2>&1 || true
if [ "$exit_code" = 0 ] && "$PYTHON" -c 'import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))' "$took" "$((BUDGET + MARGIN))"; then
    pass "SIGTERM: exit code 0 after ${took}s (budget ${BUDGET}s + ${MARGIN}s margin)"
else
    fail "SIGTERM: exit code $exit_code after ${took}s (137 = killed at the ${STOP_TIMEOUT}s stop timeout)"
fi
if stopped=$(grep -o 'bridge stopped in [0-9.]*s[^"]*' "$WORK/bridge.log" | tail -n 1) && [ -n "$stopped" ]; then
    pass "log: $stopped"
else
    fail 'log has no "bridge stopped in"'
fi
if grep -qiE 'read-only file system|permission denied|Traceback' "$WORK/bridge.log"; then
    fail "the log shows a write outside /app and /tmp, or a crash: $(grep -iE 'read-only file system|permission denied|Traceback' "$WORK/bridge.log" | head -n 3)"
else
    pass "no read-only, permission or traceback errors in the log"
fi

# What the bridge wrote went to the volume (the root filesystem refuses writes).
if engine run --rm "${RUN_FLAGS[@]}" --read-only --user 10001:10001 --network none -v "$VOLUME:/app/state:ro" \
        --entrypoint python "$IMAGE" -c '
import os
names = sorted(os.listdir("/app/state"))
assert names, "empty"
print(", ".join(names[:8]) + (" …" if len(names) > 8 else ""))' >"$WORK/state.txt" 2>&1; then
    pass "state written to the volume: $(tail -n 1 "$WORK/state.txt")"
else
    fail "state volume: $(tail -n 2 "$WORK/state.txt")"
fi

[ "$FAILED" = 0 ]
