"""What every stage may use: config, state, adapters (async wrappers over blocking ones), events."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from bridge.config import Config, MailboxConfig
from bridge.errors import AccessDenied, TransientError
from bridge.mail.compose import Composer
from bridge.mail.guard import GuardContext
from bridge.notify import LogNotifier, Notifier
from bridge.odoo.tickets import TicketDesk
from bridge.pipeline.health import CallBook, ServiceHealth
from bridge.pipeline.job import Job
from bridge.pipeline.outbox import Effect, Outbox
from bridge.store import Store
from bridge.ticket_record import TicketBook

if TYPE_CHECKING:
    from bridge.automation.playbook import Automation

log = logging.getLogger("bridge.pipeline")
T = TypeVar("T")

Observer = Callable[[str, "Job", dict[str, Any]], None]


def in_context(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Callable[[], T]:
    """``fn(*args)`` for a worker thread, run in a copy of the caller's context: the log fields
    of the email or effect being worked on (bridge/logs.py) reach the lines the call writes."""
    return functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)


@dataclass(frozen=True)
class MailboxSide:
    """What the stages need of one mailbox: its settings and the composer of its mail (From,
    templates, tag prefix)."""

    cfg: MailboxConfig
    composer: Composer

    @property
    def name(self) -> str:
        return self.cfg.name


@dataclass
class Context:
    """Shared by all stages of all jobs; holds no per-email state."""

    cfg: Config
    store: Store
    desk: TicketDesk
    composer: Composer
    outbox: Outbox
    guard: GuardContext
    health: dict[str, ServiceHealth]
    executor: ThreadPoolExecutor
    tickets: TicketBook
    observers: list[Observer] = field(default_factory=list)
    automation: Automation | None = None
    notifier: Notifier = field(default_factory=LogNotifier)
    assign_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one auto-assignment at a time
    mailboxes: dict[str, MailboxSide] = field(default_factory=dict)  # by name; the first is the default
    calls: CallBook = field(default_factory=CallBook)  # durations and errors per service, for /metrics

    def mailbox(self, name: str) -> MailboxSide:
        """A mailbox by name; the default one for "" or a name no longer configured (its tickets
        are still answered, from the default mailbox)."""
        found = self.mailboxes.get(name)
        if found is not None:
            return found
        if self.mailboxes:
            return next(iter(self.mailboxes.values()))
        return MailboxSide(self.cfg.mailbox_list[0], self.composer)

    def composer_for(self, mailbox: str) -> Composer:
        return self.mailbox(mailbox).composer

    @property
    def tag_prefixes(self) -> tuple[str, ...]:
        """Every mailbox's ticket tag prefix: a reply may quote any of them."""
        return tuple(dict.fromkeys(side.cfg.tag_prefix for side in self.mailboxes.values())) or (
            self.cfg.tickets.tag_prefix,)

    async def blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking adapter call (HR, LMS) in the worker pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, in_context(fn, *args))

    async def service(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        """A blocking call to an outside service (HR, LMS) in the worker pool, timed for /metrics."""
        started = time.monotonic()
        try:
            result = await self.blocking(fn, *args)
        except Exception:
            self.calls.record(name, started, ok=False)
            raise
        self.calls.record(name, started, ok=True)
        return result

    async def odoo(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking TicketDesk call in the worker pool; track Odoo's health and timing."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            result = await loop.run_in_executor(self.executor, in_context(fn, *args, **kwargs))
        except (TransientError, AccessDenied) as exc:  # unreachable, or our login/rights refused
            self.health["odoo"].failed(str(exc))
            self.calls.record("odoo", started, ok=False)
            raise
        except Exception:
            self.calls.record("odoo", started, ok=False)
            raise
        self.health["odoo"].ok()
        self.calls.record("odoo", started, ok=True)
        return result

    def escalate(self, key: str, ticket_id: int, reason: str, facts: dict[str, Any],
                 kind: str = "login_escalated") -> bool:
        """Tell a human (the Notifier, through the outbox): once per ``key``, whatever stage asks
        and however often it is retried; False when already queued. ``kind`` says why (and so
        whom the Slack thread mentions)."""
        payload = {"ticket": ticket_id, "reason": reason, "facts": facts, "kind": kind, "key": key}
        return self.outbox.enqueue(Effect(f"escalate:{key}", "escalation", payload))

    def notify(self, event: str, ticket_id: int, key: str, **detail: Any) -> None:
        """Queue what the Notifier makes of a ticket event (idempotent: effect keys come from ``key``)."""
        for effect in self.notifier.ticket_event(event, ticket_id, key, **detail):
            self.outbox.enqueue(effect)

    def checkpoint(self, job: Job, *, durable: bool = False) -> None:
        """Journal the job. ``durable`` waits for the disk: before an outside write that must
        not be repeated blindly, and when the job ends (before IMAP marks the email)."""
        job.updated_at = time.time()
        self.store.jobs.put(job.key, job.to_dict(), durable=durable)

    def emit(self, event: str, job: Job, **detail: Any) -> None:
        """Tell observers (demo timeline, benches, metrics) what happened to a job."""
        for observer in self.observers:
            try:
                observer(event, job, detail)
            except Exception:  # an observer must never break the pipeline
                log.exception("%s: observer failed on %s", job.key, event)
