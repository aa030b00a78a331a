#!/usr/bin/env bash
# Compose trial: build the images of deploy/compose.yaml, bring the whole trial up and check the
# flow end to end, the way `docker compose -f deploy/compose.yaml up` shows it to a user:
#   - /readyz answers 200 on the published 127.0.0.1:8080;
#   - `feed` APPENDs every samples/*.eml and each one's job finishes (bridge_emails_total: done
#     or quarantined), nothing left unmarked in IMAP, nothing pending or dead in the outbox;
#   - the Odoo stand-in holds the tickets the bridge counted (JSON-RPC search_read), the SMTP
#     sink received every reply the bridge sent, the Slack stand-in's channel has the cards;
#   - the same emails fed again (`run --rm --no-deps feed`) create no ticket, reply or card;
#   - SIGTERM (`stop bridge`): exit code 0, "bridge stopped in" logged, no traceback;
# then `down -v`. Not part of `make test` or CI (they have no container engine).
#
#   scripts/compose-trial.sh                     # docker compose, podman-compose or docker-compose
#
# Environment:
#   COMPOSE="docker compose"|podman-compose|docker-compose   the implementation (default: the
#                          first that works, in that order); ENGINE=docker|podman goes with it
#   BASE=image             the base image of both builds (compose.yaml passes the BASE variable
#                          as a build arg; unset: the Dockerfiles' pinned python:3.11-slim-bookworm),
#                          e.g. localhost/debian-python:bookworm from scripts/container-base.sh
#   SKIP_BUILD=1           use the images already built (bridge:latest, bridge-trial-dovecot:latest)
#   ENGINE_FLAGS, BUILD_FLAGS, RUN_FLAGS   podman-compose only: extra flags (split on spaces) for
#                          podman itself, `podman build` and `podman run`, e.g. in a locked-down
#                          sandbox: ENGINE_FLAGS="--runtime runc" BUILD_FLAGS="--isolation chroot"
#                          RUN_FLAGS="--ulimit nofile=20000:20000 --ulimit nproc=4096:4096"
#   READY_TIMEOUT=120, FLOW_TIMEOUT=120   seconds to wait for /readyz, for the emails
#   KEEP_UP=1              leave the trial running at the end (then: down -v yourself)
#
# Needs: the engine, python3 on the host, 127.0.0.1:8080 free. Exit status 0 when every check passed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROJECT=bridge-trial                   # its own project: a trial started by hand (`deploy`) is left alone
READY_TIMEOUT=${READY_TIMEOUT:-120}
FLOW_TIMEOUT=${FLOW_TIMEOUT:-120}
STOP_TIMEOUT=30                        # compose.yaml's stop_grace_period for the bridge
read -r -a ENGINE_FLAGS <<<"${ENGINE_FLAGS:-}"
read -r -a BUILD_FLAGS <<<"${BUILD_FLAGS:-}"
read -r -a RUN_FLAGS <<<"${RUN_FLAGS:-}"

FAILED=0
pass() { printf 'PASS %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; FAILED=1; }
note() { printf '     %s\n' "$*"; }
die() { fail "$*"; exit 1; }    # the EXIT trap shows the logs and takes the trial down

# --- the compose implementation and its engine ------------------------------------------------------
if [ -z "${COMPOSE:-}" ]; then
    if docker compose version >/dev/null 2>&1 && docker info >/dev/null 2>&1; then COMPOSE="docker compose"
    elif command -v podman-compose >/dev/null 2>&1; then COMPOSE=podman-compose
    elif command -v docker-compose >/dev/null 2>&1; then COMPOSE=docker-compose
    else die "no compose: neither docker compose (with a daemon), podman-compose nor docker-compose"; fi
fi
read -r -a COMPOSE_CMD <<<"$COMPOSE"
COMPOSE_FLAGS=()
if [ "${COMPOSE_CMD[0]}" = podman-compose ]; then
    ENGINE=${ENGINE:-podman}
    # --format docker: an OCI image would drop the Dockerfile's HEALTHCHECK (compose.yaml has its own).
    COMPOSE_FLAGS=(--podman-args "${ENGINE_FLAGS[*]}" --podman-build-args "--format docker ${BUILD_FLAGS[*]}"
                   --podman-run-args "${RUN_FLAGS[*]}")
    compose_version=$("${COMPOSE_CMD[@]}" version 2>/dev/null | sed -n 's/^podman-compose[^0-9]*//p' | head -n 1)
else
    ENGINE=${ENGINE:-docker}
    [ -z "${ENGINE_FLAGS[*]}${BUILD_FLAGS[*]}${RUN_FLAGS[*]}" ] \
        || die "ENGINE_FLAGS, BUILD_FLAGS and RUN_FLAGS are for podman-compose only"
    compose_version=$("${COMPOSE_CMD[@]}" version --short 2>/dev/null || echo '?')
fi
compose() { "${COMPOSE_CMD[@]}" -p "$PROJECT" -f "$REPO/deploy/compose.yaml" "${COMPOSE_FLAGS[@]}" "$@"; }
engine() { "$ENGINE" "${ENGINE_FLAGS[@]}" "$@"; }
engine_version=$(engine version --format '{{.Server.Version}}' 2>/dev/null || echo '?')   # the daemon's, not the CLI's
pass "compose: $COMPOSE ${compose_version:-?}, engine: $ENGINE $engine_version"

# A service's container, by the labels every implementation sets (their names differ).
container_of() {
    engine ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1" | head -n 1
}
[ -z "$(engine ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ] \
    || die "an earlier trial is still there: $COMPOSE -p $PROJECT -f deploy/compose.yaml down -v"
python3 - <<'EOF' || die "127.0.0.1:8080 is taken (compose.yaml publishes the bridge's port there)"
import socket
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 8080))
EOF

WORK=$(mktemp -d "${TMPDIR:-/tmp}/compose-trial.XXXXXX")
STARTED_UP=0
cleanup() {
    local status=$?
    set +e
    if [ "$STARTED_UP" = 1 ]; then
        if [ "$FAILED" != 0 ] || [ "$status" != 0 ]; then
            for service in bridge feed; do
                echo "---- $service log (last 40 lines) ----"
                id=$(container_of "$service"); [ -n "$id" ] && engine logs "$id" 2>&1 | tail -n 40
            done
            echo "--------------------------------------"
        fi
        if [ "${KEEP_UP:-0}" = 1 ]; then
            echo "trial left running: $COMPOSE -p $PROJECT -f deploy/compose.yaml down -v"
        else
            compose down -v >"$WORK/down.log" 2>&1 || { tail -n 5 "$WORK/down.log"; echo "down -v failed"; }
            # podman-compose 1.0 leaves the project's network behind (docker compose removes it).
            for network in $(engine network ls -q --filter "label=com.docker.compose.project=$PROJECT"); do
                engine network rm "$network" >/dev/null
            done
        fi
    fi
    rm -rf "$WORK"
    if [ "$FAILED" = 0 ] && [ "$status" = 0 ]; then echo "compose trial: PASS"; else echo "compose trial: FAIL"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { python3 -c 'import time; print(f"{time.monotonic():.3f}")'; }
elapsed() { python3 -c 'import sys, time; print(f"{time.monotonic() - float(sys.argv[1]):.1f}")' "$1"; }

# --- build and up ---------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    started=$(now)
    compose build >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log"; die "compose build failed (last lines above)"; }
    pass "build bridge:latest and bridge-trial-dovecot:latest${BASE:+ (BASE=$BASE)} in $(elapsed "$started")s"
fi

started=$(now)
STARTED_UP=1
compose up -d >"$WORK/up.log" 2>&1 || { tail -n 40 "$WORK/up.log"; die "compose up -d failed (last lines above)"; }
up_took=$(elapsed "$started")
BRIDGE=$(container_of bridge)
[ -n "$BRIDGE" ] || { tail -n 20 "$WORK/up.log"; die "no bridge container after up -d"; }

metrics() {  # the bridge's /metrics, summed per name{labels} as JSON
    python3 - <<'EOF'
import json, urllib.request
totals = {}
for line in urllib.request.urlopen("http://127.0.0.1:8080/metrics", timeout=5).read().decode().splitlines():
    if line.startswith("bridge_") and " " in line:
        key, value = line.rsplit(" ", 1)
        totals[key] = totals.get(key, 0) + float(value)
print(json.dumps(totals))
EOF
}
deadline=$((SECONDS + READY_TIMEOUT))
until python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:8080/readyz", timeout=3)' 2>/dev/null; do
    [ "$(engine inspect --format '{{.State.Running}}' "$BRIDGE")" = true ] || die "the bridge exited before /readyz answered 200"
    [ $SECONDS -lt $deadline ] || die "/readyz not 200 within ${READY_TIMEOUT}s of up -d"
    sleep 0.5
done
pass "/readyz 200 on 127.0.0.1:8080 after $(elapsed "$started")s (up -d returned after ${up_took}s)"

# --- the samples → tickets, replies, cards ---------------------------------------------------------------
# What the trial's servers hold, asked from inside the bridge container (the stand-ins' ports are
# not published) with the bridge's own config: tickets over Odoo's JSON-RPC, the cards in the
# Slack channel, the emails in the IMAP folder and how many of them are not marked done yet.
PROBE=$(cat <<'EOF'
import imaplib, json, urllib.request
from bridge.config import load_config
cfg = load_config("/etc/bridge/config.yaml")

def post(url, body, headers=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **(headers or {})})
    return json.load(urllib.request.urlopen(request, timeout=10))

def odoo(service, method, *args):
    answer = post(f"{cfg.odoo.url}/jsonrpc", {"jsonrpc": "2.0", "method": "call", "id": 1,
                  "params": {"service": service, "method": method, "args": list(args)}})
    if "error" in answer:
        raise SystemExit(f"odoo {service}.{method}: {answer['error']}")
    return answer["result"]

password = cfg.odoo.password.get_secret_value()
uid = odoo("common", "login", cfg.odoo.db, cfg.odoo.username, password)
tickets = odoo("object", "execute_kw", cfg.odoo.db, uid, password, "helpdesk.ticket", "search_read",
               [[]], {"fields": ["name", "partner_email"]})
history = post(f"{cfg.slack.base_url}conversations.history", {"channel": cfg.slack.channel},
               {"Authorization": f"Bearer {cfg.slack.bot_token.get_secret_value()}"})
if not history.get("ok"):
    raise SystemExit(f"slack conversations.history: {history}")
imap = imaplib.IMAP4(cfg.imap.host, cfg.imap.port)
imap.login(cfg.imap.username, cfg.imap.password.get_secret_value())
_, (count,) = imap.select(cfg.imap.folder, readonly=True)
_, (not_done,) = imap.search(None, "UNKEYWORD", cfg.imap.done.keyword)
imap.logout()
print(json.dumps({"tickets": [f"#{t['id']} {t['name']} ({t['partner_email']})" for t in sorted(tickets, key=lambda t: t["id"])],
                  "cards": len(history["messages"]), "inbox": int(count), "not_done": len(not_done.split())}))
EOF
)
probe() { engine exec "$BRIDGE" python -c "$PROBE"; }
sink_received() { engine logs "$(container_of smtp)" 2>&1 | grep -c 'received <' || true; }

samples=$(find "$REPO/samples" -maxdepth 1 -name '*.eml' | wc -l)
FEED=$(container_of feed)
[ -n "$FEED" ] || die "no feed container after up -d"
feed_rc=$(timeout "$FLOW_TIMEOUT" "$ENGINE" "${ENGINE_FLAGS[@]}" wait "$FEED" 2>/dev/null | tail -n 1 || echo timeout)
appended=$(engine logs "$FEED" 2>&1 | grep -c '^appended .* OK$' || true)
if [ "$feed_rc" = 0 ] && [ "$appended" = "$samples" ]; then pass "feed: $appended of $samples samples APPENDed"
else die "feed: exit $feed_rc, $appended of $samples samples APPENDed"; fi

# Finished: every email's job ended (done or quarantined), nothing unmarked in IMAP, nothing pending.
settled() {  # expected inbox size → 0 once the trial is at rest
    probe >"$WORK/probe.json" 2>"$WORK/probe.err" && metrics >"$WORK/metrics.json" 2>>"$WORK/probe.err" || return 1
    python3 - "$WORK/probe.json" "$WORK/metrics.json" "$samples" "$1" <<'EOF'
import json, sys
probe, metrics = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
finished = metrics.get('bridge_emails_total{outcome="done"}', 0) + metrics.get('bridge_emails_total{outcome="quarantined"}', 0)
pending = sum(v for k, v in metrics.items() if k.startswith("bridge_outbox_pending"))
inbox_ok = probe["inbox"] == int(sys.argv[4]) if sys.argv[4] else True
sys.exit(0 if finished >= int(sys.argv[3]) and pending == 0 and probe["not_done"] == 0 and inbox_ok else 1)
EOF
}
wait_settled() {  # expected inbox size (empty: any) → 0 when settled within FLOW_TIMEOUT
    local deadline=$((SECONDS + FLOW_TIMEOUT))
    until settled "$1"; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 1
    done
}
wait_settled "" || die "the samples were not all finished within ${FLOW_TIMEOUT}s: $(cat "$WORK/probe.json" "$WORK/probe.err" 2>/dev/null | tail -c 600)"
flow_took=$(elapsed "$started")

read -r finished quarantined tickets followups sent dead cards inbox odoo_tickets < <(python3 - "$WORK/probe.json" "$WORK/metrics.json" <<'EOF'
import json, sys
probe, m = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
g = lambda key: int(m.get(key, 0))
dead = sum(int(v) for k, v in m.items() if k.startswith("bridge_outbox_effects_total") and 'status="dead"' in k)
print(g('bridge_emails_total{outcome="done"}') + g('bridge_emails_total{outcome="quarantined"}'),
      g('bridge_emails_total{outcome="quarantined"}'), g("bridge_tickets_created_total"), g("bridge_followups_total"),
      g('bridge_outbox_effects_total{kind="smtp",status="sent"}'), dead, probe["cards"], probe["inbox"], len(probe["tickets"]))
EOF
)
received=$(sink_received)
pass "$samples emails → $tickets tickets, $followups follow-ups, $quarantined quarantined, all $finished finished ${flow_took}s after up -d"
python3 -c 'import json, sys; print("\n".join("       " + t for t in json.load(open(sys.argv[1]))["tickets"]))' "$WORK/probe.json"
if [ "$odoo_tickets" = "$tickets" ] && [ "$tickets" -gt 0 ]; then pass "Odoo stand-in (JSON-RPC search_read): $odoo_tickets tickets"
else fail "Odoo stand-in holds $odoo_tickets tickets, the bridge counted $tickets"; fi
if [ "$received" = "$sent" ] && [ "$sent" -gt 0 ]; then pass "SMTP sink: $received replies received (acknowledgements and automation outcomes)"
else fail "SMTP sink received $received messages, the bridge sent $sent"; fi
if [ "$cards" -gt 0 ]; then pass "Slack stand-in: $cards cards in the channel"; else fail "Slack stand-in: no card"; fi
if [ "$dead" = 0 ]; then pass "outbox: nothing pending, nothing dead-lettered"; else fail "outbox: $dead effects dead-lettered"; fi

# --- the same emails again: dedupe from the journal ---------------------------------------------------------
compose run --rm --no-deps -T feed >"$WORK/refeed.log" 2>&1 || { tail -n 20 "$WORK/refeed.log"; die "run --rm --no-deps feed failed"; }
refed=$(grep -c 'appended .* OK' "$WORK/refeed.log" || true)
[ "$refed" = "$samples" ] || die "fed again: $refed of $samples samples APPENDed"
cp "$WORK/probe.json" "$WORK/probe-first.json"
# The quarantined ones were moved out of the folder, so it holds twice what it held.
wait_settled $((inbox * 2)) || die "the emails fed again were not all marked done within ${FLOW_TIMEOUT}s"
if python3 - "$WORK/probe-first.json" "$WORK/probe.json" <<'EOF' && [ "$(sink_received)" = "$received" ]; then
import json, sys
first, now = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
sys.exit(0 if (first["tickets"], first["cards"]) == (now["tickets"], now["cards"]) else 1)
EOF
    pass "fed again: all $refed marked done, no new ticket, reply or card"
else
    fail "fed again: something was created twice ($(tail -c 300 "$WORK/probe.json"), $(sink_received) replies)"
fi

# --- SIGTERM --------------------------------------------------------------------------------------------
started=$(now)
compose stop -t "$STOP_TIMEOUT" bridge >"$WORK/stop.log" 2>&1 || fail "stop bridge: $(tail -n 3 "$WORK/stop.log")"
took=$(elapsed "$started")
exit_code=$(engine inspect --format '{{.State.ExitCode}}' "$BRIDGE")
engine logs "$BRIDGE" >"$WORK/bridge.log" 2>&1 || true
stopped=$(grep -o 'bridge stopped in [0-9.]*s' "$WORK/bridge.log" | tail -n 1 || true)
if [ "$exit_code" = 0 ] && [ -n "$stopped" ]; then pass "SIGTERM: exit code 0 after ${took}s, log: $stopped"
else fail "SIGTERM: exit code $exit_code after ${took}s, log: ${stopped:-no \"bridge stopped in\"}"; fi
if grep -qE 'Traceback|ERROR' "$WORK/bridge.log"; then
    fail "the bridge's log has errors: $(grep -E 'Traceback|ERROR' "$WORK/bridge.log" | head -n 3)"
else
    pass "no ERROR or traceback in the bridge's log ($(wc -l <"$WORK/bridge.log") lines)"
fi

[ "$FAILED" = 0 ]
