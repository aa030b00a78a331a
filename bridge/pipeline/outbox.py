"""The persistent outbox: durable side effects with an idempotency key, retries and dead letters.

An effect is written (and committed) before anything is attempted, so a crash never loses it;
its key makes enqueueing twice a no-op. Handlers get ``(payload, attempt)`` and may return
follow-up effects (e.g. "log the sent reply as a note") which are enqueued atomically with the
success. A crash between the outside effect and its success record means the effect is tried
again: handlers make that safe (SMTP re-sends the same Message-ID, which mail clients collapse;
the note handler looks for its marker before posting again).

Effects may share a ``group`` (a Slack thread): those run one at a time, in the order they were
enqueued, so a thread reads in order; effects of other groups and kinds are not held back. A
handler that may not act yet (a channel's pacing) raises ``NotYet(at)``: the effect waits until
then without an attempt being counted.

`bridge outbox retry` never edits the table of a running bridge: it writes a request, one key
per effect (``outbox_requeue:<effect key>`` in ``meta``), which the bridge applies (the effect is
reset to pending and scheduled) and deletes only then, so a request written meanwhile waits for
the next poll instead of being lost.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bridge.aio import wait_event
from bridge.errors import (
    BridgeError,
    ConfigurationError,
    PermanentError,
    RateLimited,
    RecipientDeferred,
    TransientError,
)
from bridge.logs import log_context
from bridge.pipeline.health import ServiceHealth
from bridge.store import Table

log = logging.getLogger("bridge.outbox")


@dataclass(frozen=True)
class Effect:
    """A side effect to perform: ``kind`` selects the handler."""

    key: str
    kind: str
    payload: dict[str, Any]
    group: str = ""  # effects of one group run one at a time, in enqueue order


class NotYet(Exception):
    """Raised by a handler that must wait (pacing): try again at ``at`` (epoch seconds), no attempt counted."""

    def __init__(self, at: float) -> None:
        super().__init__(f"not before {at:.3f}")
        self.at = at


REQUEUE_PREFIX = "outbox_requeue:"  # + effect key: one request per effect, in the meta table
BULKY = frozenset({"raw", "text", "body", "blocks", "request"})  # dropped from an effect once it is sent
REQUEUE_POLL_SECONDS = 5.0

# A handler gets the payload and the attempt number: 0 means it cannot have been performed yet.
Handler = Callable[[dict[str, Any], int], Awaitable[list[Effect] | None]]


def request_requeue(requests: Table, key: str) -> None:
    """Ask the running bridge (or the next one to start) to retry effect ``key``; durable.

    Its own key, so writing it never rewrites another request that the bridge may be applying.
    """
    requests.put(REQUEUE_PREFIX + key, {"at": time.time()})


def reset_for_retry(record: dict[str, Any]) -> dict[str, Any]:
    """The effect made pending again with a fresh attempt budget, due now (``last_error`` is kept)."""
    record.update(status="pending", attempts=0, next_at=0.0, updated_at=time.time())
    return record


def backoff(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter (AWS architecture blog), never below 10% of the step."""
    step = min(cap, base * (2 ** max(0, attempt - 1)))
    return random.uniform(step * 0.1, step)


class Outbox:
    """Runs due effects, oldest first, at most ``concurrency`` at once per kind; wakes at once when
    one is enqueued.

    Each kind (``smtp``, ``odoo_note``, ``escalation``) has its own lane: replies to customers
    must not wait behind notes queued for a busy or failing Odoo, nor the other way round.
    """

    def __init__(
        self,
        table: Table,
        handlers: dict[str, Handler],
        health: dict[str, ServiceHealth],
        *,
        requeue: Table | None = None,
        max_attempts: int = 10,
        attempts_by_kind: dict[str, int] | None = None,
        retry_base: float = 2.0,
        retry_max: float = 300.0,
        concurrency: int = 8,
    ) -> None:
        self.table = table
        self.handlers = handlers
        self.health = health
        self.requeue = requeue
        self.max_attempts = max_attempts
        self.attempts_by_kind = dict(attempts_by_kind or {})
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._running: set[str] = set()
        self._running_by_kind: dict[str, int] = {}  # per lane (see lane())
        self._tasks: set[asyncio.Task] = set()
        # Pending effects live in memory (read once at start) with a heap of due times: the
        # table also holds every sent effect until pruning, and scanning it, or even every
        # pending effect, on each wake-up made the outbox quadratic under a backlog.
        self._pending: dict[str, dict[str, Any]] = {}
        self._heaps: dict[str, list[tuple[float, float, str]]] = {}  # per lane: (next_at, created_at, key)
        self._groups: dict[str, list[str]] = {}  # group → its pending keys in enqueue order (head runs)
        found = [(key, record) for key, record in table.items() if record.get("status") == "pending"]
        for key, record in sorted(found, key=lambda item: (item[1].get("created_at", 0.0), item[1].get("seq", 0))):
            self._schedule(key, record)
        # Effects found pending at start may have been performed just before a crash: their
        # handlers are told so (attempt ≥ 1) and check before doing it again.
        self._recovered: set[str] = set(self._pending)
        self._seq = max((record.get("seq", 0) for record in self._pending.values()), default=0)
        self.observers: list[Callable[[str, str, dict[str, Any]], None]] = []

    @staticmethod
    def lane(record: dict[str, Any]) -> str:
        """Where an effect queues: its kind, and for mail also the mailbox it is sent from, so a
        mailbox whose SMTP server hangs holds only its own replies (``smtp:<mailbox>``)."""
        mailbox = record["payload"].get("mailbox") if record["kind"] == "smtp" else ""
        return f"{record['kind']}:{mailbox}" if mailbox else record["kind"]

    def _schedule(self, key: str, record: dict[str, Any]) -> None:
        self._pending[key] = record
        group = record.get("group")
        if group:
            members = self._groups.setdefault(group, [])
            if key not in members:
                members.append(key)
        self._push(key, record)

    def _push(self, key: str, record: dict[str, Any]) -> None:
        heap = self._heaps.setdefault(self.lane(record), [])
        heapq.heappush(heap, (record["next_at"], record.get("created_at", 0.0), key))

    def _blocked(self, key: str, record: dict[str, Any]) -> bool:
        """Whether an earlier effect of the same group is still pending (then this one waits)."""
        group = record.get("group")
        return bool(group) and self._groups[group][0] != key

    def _leave_group(self, key: str, record: dict[str, Any]) -> None:
        """``key`` is done (sent or dead): the next effect of its group may run."""
        group = record.get("group")
        members = self._groups.get(group or "")
        if not members or key not in members:
            return
        members.remove(key)
        if not members:
            del self._groups[group]
            return
        head = self._pending.get(members[0])
        if head is not None:
            self._push(members[0], head)

    def enqueue(self, effect: Effect, *, commit: bool = True, known_new: bool = False) -> bool:
        """Record an effect; False when one with the same key already exists (idempotency).

        ``known_new`` skips the look-up in the table when the caller knows the key cannot be
        there (a job seen for the first time).
        """
        if effect.key in self._pending or (not known_new and effect.key in self.table):
            return False
        now = time.time()
        self._seq += 1
        record = {
            "kind": effect.kind,
            "payload": effect.payload,
            "status": "pending",
            "attempts": 0,
            "next_at": 0.0,
            "last_error": "",
            "created_at": now,
            "updated_at": now,
            "seq": self._seq,  # enqueue order where created_at ties (groups keep it across restarts)
        }
        if effect.group:
            record["group"] = effect.group
        self.table[effect.key] = record
        if commit:
            self.table.commit()
        self._schedule(effect.key, record)
        self._wake.set()
        return True

    def pending(self) -> list[str]:
        """Keys of the effects not yet done (running ones included)."""
        return list(self._pending)

    def pending_by_kind(self) -> dict[str, int]:
        """How many effects of each kind are not yet done; safe to call from another thread (metrics)."""
        counts = dict.fromkeys(self.handlers, 0)
        for record in list(self._pending.values()):  # copied in one step: the event loop may change it meanwhile
            counts[record["kind"]] = counts.get(record["kind"], 0) + 1
        return counts

    def oldest_pending_by_kind(self) -> dict[str, float]:
        """Per kind, when its oldest effect not yet done was queued (epoch seconds); safe from another thread."""
        oldest: dict[str, float] = {}
        for record in list(self._pending.values()):
            kind, at = record["kind"], record.get("created_at", 0.0)
            oldest[kind] = min(oldest.get(kind, at), at)
        return oldest

    def dead(self) -> list[tuple[str, dict[str, Any]]]:
        return [(k, v) for k, v in self.table.items() if v.get("status") == "dead"]

    def _take_requeued(self) -> None:
        """Apply the requests of `bridge outbox retry` (another process): reset each named effect
        to pending and schedule it, then delete the request, once the reset is on disk."""
        if self.requeue is None:
            return
        names = [name for name in self.requeue.keys() if name.startswith(REQUEUE_PREFIX)]
        applied: list[str] = []
        for name in names:
            key = name[len(REQUEUE_PREFIX):]
            if key in self._running:
                continue  # an attempt is under way: the request waits for the next poll
            record = self._pending.get(key) or self.table.get(key)
            if record is None or record.get("status") == "sent":
                log.info("%s: retry request dropped: the effect is %s", key,
                         "unknown (pruned?)" if record is None else "already sent")
            else:
                self.table[key] = reset_for_retry(record)
                self._schedule(key, record)  # supersedes any older heap entry (its due time differs)
                # A dead effect may have been performed by its last attempt (e.g. a timeout after
                # DATA): its handler checks before doing it again.
                self._recovered.add(key)
                log.info("%s: %s effect queued again by `bridge outbox retry`", key, record["kind"])
            applied.append(name)
        if not applied:
            return
        self.table.commit()  # durable before the requests go: a crash in between applies them again
        for name in applied:
            del self.requeue[name]
        self.requeue.commit()

    async def run(self) -> None:
        """Forever: start due effects while there is room, then sleep until one is due or a wake-up."""
        requeue_at = 0.0
        while True:
            self._wake.clear()
            if time.monotonic() >= requeue_at:
                self._take_requeued()
                requeue_at = time.monotonic() + REQUEUE_POLL_SECONDS
            now = time.time()
            timeout = REQUEUE_POLL_SECONDS
            for lane, heap in self._heaps.items():
                while heap and heap[0][0] <= now and self._running_by_kind.get(lane, 0) < self.concurrency:
                    due, _, key = heapq.heappop(heap)
                    record = self._pending.get(key)
                    if record is None or key in self._running or record["next_at"] != due:
                        continue  # done meanwhile, or superseded by a newer schedule
                    if self._blocked(key, record):
                        continue  # pushed again when the effects before it in its group are done
                    self._start(key, record)
                if heap and self._running_by_kind.get(lane, 0) < self.concurrency:
                    timeout = min(timeout, heap[0][0] - now)
            await wait_event(self._wake, max(0.01, timeout))

    def _start(self, key: str, record: dict[str, Any]) -> None:
        lane = self.lane(record)
        self._running.add(key)
        self._running_by_kind[lane] = self._running_by_kind.get(lane, 0) + 1
        task = asyncio.create_task(self._attempt(key, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self, timeout: float) -> None:
        """At shutdown: keep sending what is due (the run loop goes on) until nothing due is left
        or ``timeout`` passes, then wait for what is running within what remains of it."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while loop.time() < end and (self._tasks or self._due()):
            await asyncio.sleep(min(0.05, max(0.0, end - loop.time())))
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=max(0.0, end - loop.time()))

    def _due(self) -> bool:
        """Whether some pending effect could run now (due, and not waiting behind its group)."""
        now = time.time()
        return any(record["next_at"] <= now and not self._blocked(key, record)
                   for key, record in self._pending.items() if key not in self._running)

    def _emit(self, event: str, key: str, record: dict[str, Any]) -> None:
        for observer in self.observers:
            observer(event, key, record)

    async def _attempt(self, key: str, record: dict[str, Any]) -> None:
        kind, lane = record["kind"], self.lane(record)
        health = self.health.get(lane) or self.health.get(kind)
        try:
            attempt = record["attempts"] + (key in self._recovered)
            with log_context(effect=key, ticket=record["payload"].get("ticket")):
                follow_ups = await self.handlers[kind](record["payload"], attempt)
        except NotYet as wait:
            record["next_at"] = wait.at
            self._push(key, record)
        except (RecipientDeferred, RateLimited) as exc:
            # One recipient deferred (4xx on RCPT): the server answered, so it is up. Retried like
            # any transient error, but no outage: /readyz would flip and show the error text. A
            # rate limit (Slack's 429) is the same: the service answered.
            if health:
                health.ok()
            self._failed(key, record, exc, final=False)
        except TransientError as exc:
            if health:
                health.failed(str(exc))
            self._failed(key, record, exc, final=False)
        except PermanentError as exc:
            self._failed(key, record, exc, final=True)
        except ConfigurationError as exc:
            log.error("%s: %s effect blocked by configuration: %s", key, kind, exc)
            self._failed(key, record, exc, final=False)
        except BridgeError as exc:
            self._failed(key, record, exc, final=False)
        except Exception as exc:  # a handler bug must not kill the outbox loop
            log.exception("%s: %s effect crashed", key, kind)
            self._failed(key, record, exc, final=False)
        else:
            if health:
                health.ok()
            for effect in follow_ups or ():
                self.enqueue(effect, commit=False)
            # The payload (a whole email for a reply) is not needed once sent: keep state small.
            summary = {k: v for k, v in record["payload"].items() if k not in BULKY}
            record.update(status="sent", updated_at=time.time(), last_error="", payload=summary)
            self.table[key] = record
            # Queued, not waited for: waiting would not narrow the window between the effect and
            # its record (a crash there retries the effect either way, and handlers check), and
            # the follow-ups, committed with it, are idempotent too.
            self.table.commit(durable=False)
            self._pending.pop(key, None)
            self._leave_group(key, record)
            log.debug("%s: %s effect done", key, kind)
            self._emit("sent", key, record)
        finally:
            self._running.discard(key)
            self._running_by_kind[lane] -= 1
            self._wake.set()

    def _failed(self, key: str, record: dict[str, Any], exc: Exception, *, final: bool) -> None:
        record["attempts"] += 1
        record["last_error"] = str(exc)[:500]
        record["updated_at"] = time.time()
        if final or record["attempts"] >= self.attempts_by_kind.get(record["kind"], self.max_attempts):
            record["status"] = "dead"
            log.error(
                "%s: %s effect dead-lettered after %d attempt(s): %s — see `bridge outbox list`",
                key,
                record["kind"],
                record["attempts"],
                record["last_error"],
            )
            self._pending.pop(key, None)
            self._leave_group(key, record)
            self._emit("dead", key, record)
        else:
            delay = backoff(record["attempts"], self.retry_base, self.retry_max)
            retry_after = getattr(exc, "retry_after", None)  # the service said when (Slack's Retry-After)
            if retry_after:
                delay = max(delay, float(retry_after))
            record["next_at"] = time.time() + delay
            self._push(key, record)
            log.debug("%s: %s effect retry in %.1fs: %s", key, record["kind"], delay, exc)
        self.table[key] = record
        self.table.commit(durable=False)
