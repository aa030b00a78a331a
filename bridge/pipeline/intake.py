"""The intake loop: finds unprocessed mail in IMAP, feeds it to the runner with bounded
concurrency (one conversation at a time, in arrival order), and marks or quarantines it after.

IMAP is the queue: a message stays unmarked until its job is journaled as finished, so a crash
anywhere loses nothing; a deferred message is simply looked at again when its retry is due.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import multiprocessing
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from bridge.aio import wait_event
from bridge.auth.tokens import TokenSource
from bridge.config import Config, MailboxConfig
from bridge.errors import ConfigurationError, TransientError, UnparseableEmail
from bridge.mail.inbox import Envelope, ImapSession
from bridge.mail.parse import parse_email
from bridge.mail.thread_ids import conversation_key
from bridge.models import ArcEvidence, InboundEmail
from bridge.pipeline.health import CallBook, ServiceHealth
from bridge.pipeline.ingest import RESTORED_KEY
from bridge.pipeline.runner import Outcome, Runner
from bridge.store import Store

log = logging.getLogger("bridge.intake")

# Raw bytes held by running jobs at most (one larger email may always run alone): memory stays
# bounded however many large emails wait.
INFLIGHT_BYTES = 64 * 1024 * 1024
# Finished jobs wake the intake (to mark them, and to start more) at most this often: one STORE
# and one admission round for many jobs, instead of one each.
FINISHED_BATCH_SECONDS = 0.05
# Emails at least this large are parsed in a separate process (see Intake._parser_for).
PROCESS_PARSE_BYTES = 4 * 1024 * 1024


class Intake:
    """Owns one mailbox's IMAP work session (through a one-thread executor) and its in-flight jobs.

    Several intakes (one per mailbox) share the job slots and the conversation locks: an email
    sent to two mailboxes is one job (one key), run once, and marked done in both.
    """

    def __init__(
        self, cfg: Config, runner: Runner, store: Store, health: ServiceHealth, *,
        mailbox: MailboxConfig | None = None, tokens: TokenSource | None = None,
        checkpoint_key: str = "imap_checkpoint", prefixes: tuple[str, ...] = (),
        slots: asyncio.Semaphore | None = None, locks: dict[str, asyncio.Lock] | None = None,
        arc_check: Callable[[bytes], ArcEvidence | None] | None = None, calls: CallBook | None = None,
    ) -> None:
        """``arc_check``: reads an email's ARC chain from its raw bytes (the App passes one when
        the automation trusts ARC sealers); it may block on DNS, so it runs in a thread."""
        self.cfg = cfg
        self.mailbox = mailbox or cfg.mailbox_list[0]
        self.imap = self.mailbox.imap
        self.runner = runner
        self.store = store
        self.health = health
        self.checkpoint_key = checkpoint_key
        self.prefixes = prefixes or (self.mailbox.tag_prefix,)
        self.session = ImapSession(self.imap, tokens)
        self.arc_check = arc_check
        self.calls = calls
        self.reconnects = 0  # sessions opened again after a failure or a drop (for /metrics)
        self._imap_pool = ThreadPoolExecutor(1, thread_name_prefix="imap")
        self._parse_process: ProcessPoolExecutor | None = None  # started for the first large email
        self._loop: asyncio.AbstractEventLoop | None = None
        self.wake = asyncio.Event()
        self.inflight: dict[int, asyncio.Task] = {}
        self._inflight_bytes: dict[int, int] = {}
        self.deferred: dict[int, float] = {}
        self.backlog: list[int] = []  # unprocessed UIDs found by a search and not started yet, ascending
        self.seen_uid = 0  # highest UID a search returned: where the search for new arrivals starts
        self._arrived = True  # IDLE (or the poll timer) said the folder may hold something new
        self._wake_pending = False
        self._to_mark: list[tuple[int, int]] = []
        self._to_quarantine: list[tuple[int, int]] = []
        self._to_move: dict[str, list[tuple[int, int]]] = {}  # folder → finished mail going there (spam)
        self._locks: dict[str, asyncio.Lock] = {} if locks is None else locks
        self._slots = slots or asyncio.Semaphore(cfg.pipeline.concurrency)
        self.max_inflight = cfg.pipeline.concurrency * 4
        self.last_uid = 0
        self.outcomes: list[Callable[[int, Outcome], None]] = []

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach to the running loop before the IDLE thread may call notify_threadsafe."""
        self._loop = loop

    def notify_threadsafe(self) -> None:
        """Called from the IDLE thread: something may have arrived."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._notify_arrival)

    def _notify_arrival(self) -> None:
        self._arrived = True
        self.wake.set()

    def _wake_soon(self) -> None:
        """Wake the intake shortly: finished jobs are marked and replaced in batches. It looks
        for new arrivals then too: a SEARCH sees mail Dovecot's IDLE reports only ~0.5 s later."""
        if self._wake_pending or self._loop is None:
            return
        self._wake_pending = True

        def wake() -> None:
            self._wake_pending = False
            self._arrived = True
            self.wake.set()

        self._loop.call_later(FINISHED_BATCH_SECONDS, wake)

    def _parser_for(self, size: int) -> Executor | None:
        """Where to parse an email: never on the loop. A large one goes to a process of its own:
        in a thread, the standard library's MIME parser and base64 decoding hold the GIL for
        40-50 ms per large part, stalling the loop (bench/loop_stall)."""
        if size < PROCESS_PARSE_BYTES:
            return None  # the loop's default thread pool
        if self._parse_process is None:
            self._parse_process = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return self._parse_process

    async def _parse(self, raw: bytes) -> InboundEmail:
        """The parsed email, named with its mailbox, with the ARC evidence when that is asked for."""
        loop = asyncio.get_running_loop()
        try:
            email = await loop.run_in_executor(self._parser_for(len(raw)), parse_email, raw)
        except BrokenProcessPool:  # the parser process died (e.g. killed for memory): parse here
            log.warning("intake: the parser process died; parsing this email in a thread")
            self._parse_process = None
            email = await loop.run_in_executor(None, parse_email, raw)
        arc = await loop.run_in_executor(None, self.arc_check, raw) if self.arc_check is not None else None
        return dataclasses.replace(email, mailbox=self.mailbox.name, arc=arc)

    async def _imap(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self._loop is not None
        started = time.monotonic()
        try:
            result = await self._loop.run_in_executor(self._imap_pool, fn, *args)
        except Exception:
            if self.calls is not None:
                self.calls.record(self.health.name, started, ok=False)
            raise
        if self.calls is not None:
            self.calls.record(self.health.name, started, ok=True)
        return result

    async def run(self) -> None:
        """Forever: connect, serve, and after a drop reconnect with backoff (one log line per outage)."""
        self.bind(asyncio.get_running_loop())
        failures = 0
        told = ""  # the configuration problem already logged: said once, not at every retry
        while True:
            retry_after = 0.0
            try:
                await self._imap(self.session.open)
                self._check_uidvalidity()
                await self._recover_after_restore()
                self.health.ok()
                failures, told = 0, ""
                await self._serve()
            except TransientError as exc:
                self.health.failed(str(exc))
                failures += 1
                retry_after = getattr(exc, "retry_after", 0.0)  # a throttled mailbox says how long
            except ConfigurationError as exc:
                if str(exc) != told:
                    log.error("imap %s: %s — fix the configuration; retrying", self.mailbox.name, exc)
                    told = str(exc)
                self.health.failed(str(exc))  # not ready: no mail can be read
                failures = max(failures + 1, 6)
            delay = min(self.imap.reconnect_max_seconds, 0.5 * 2 ** min(failures, 8)) * random.uniform(0.5, 1.0)
            await asyncio.sleep(max(delay, retry_after))
            self.reconnects += 1

    async def _recover_after_restore(self) -> None:
        """Once per mailbox after `bridge state restore`: mail marked done in IMAP that the
        restored journal does not know as finished was finished by the lost instance after the
        backup, and maybe never answered (its acknowledgement was in the lost outbox). It is
        unmarked and runs again: dedupe finds its ticket, and the acknowledgement goes out."""
        restored = self.store.meta.get(RESTORED_KEY)
        if not restored or self.mailbox.name in restored.get("recovered", ()):
            return
        since = datetime.fromtimestamp(restored["backup_at"], timezone.utc).date() - timedelta(days=1)
        marked = await self._imap(self.session.marked_since, since)
        unknown = [uid for uid, key in marked
                   if (self.store.jobs.get(key) or {}).get("status") not in ("done", "quarantined")]
        await self._imap(self.session.unmark, unknown)
        log.info("restore: %d of %d email(s) marked done in %s since %s are not finished in the restored "
                 "journal; they run again (dedupe applies)", len(unknown), len(marked), self.mailbox.name, since)
        restored = self.store.meta.get(RESTORED_KEY) or restored  # another mailbox may have written meanwhile
        restored["recovered"] = [*restored.get("recovered", ()), self.mailbox.name]
        self.store.meta.put(RESTORED_KEY, restored)

    def _check_uidvalidity(self) -> None:
        saved = self.store.meta.get(self.checkpoint_key) or {}
        validity = self.session.uidvalidity
        if saved.get("uidvalidity") not in (None, validity):
            log.warning(
                "imap: UIDVALIDITY of %s changed (%s → %s): rescanning the whole folder; "
                "the job journal prevents duplicates", self.imap.folder, saved.get("uidvalidity"), validity
            )
            self.deferred.clear()
            self.last_uid = 0
        else:
            self.last_uid = int(saved.get("last_uid", 0))
        self._to_mark = [item for item in self._to_mark if item[0] == validity]
        self._to_move = {folder: [i for i in items if i[0] == validity] for folder, items in self._to_move.items()}
        self._to_quarantine = [item for item in self._to_quarantine if item[0] == validity]

    def _save_checkpoint(self) -> None:
        self.store.meta.put(
            self.checkpoint_key, {"uidvalidity": self.session.uidvalidity, "last_uid": self.last_uid}, durable=False
        )

    async def _serve(self) -> None:
        """Find work and start it. A full search (at start, every rescan interval, when a retry is
        due) is the truth; in between only UIDs above the highest seen are searched, after IDLE
        said something arrived or jobs finished, so a large backlog is listed once, not on every
        wake-up."""
        next_full_scan = 0.0
        self._arrived = True
        while True:
            self.wake.clear()
            await self._flush()
            now = time.monotonic()
            if now >= next_full_scan or any(due <= now for due in self.deferred.values()):
                self._arrived = False
                uids = await self._imap(self.session.search_unprocessed, 0)
                self.backlog = [u for u in uids if u not in self.inflight]
                self.seen_uid = max(uids[-1] if uids else 0, self.last_uid)
                next_full_scan = now + self.imap.rescan_interval_seconds
            elif self._arrived:
                self._arrived = False
                uids = await self._imap(self.session.search_unprocessed, self.seen_uid)
                self.backlog += [u for u in uids if u not in self.inflight]
                self.seen_uid = max([self.seen_uid, *uids])
            if self.backlog and len(self.inflight) < self.max_inflight:
                await self._admit()
            upcoming = [next_full_scan, *self.deferred.values()]
            timeout = max(0.01, min(upcoming) - time.monotonic())
            await wait_event(self.wake, timeout)

    async def _admit(self) -> None:
        """Start jobs from the backlog, oldest first, as far as the in-flight limits allow."""
        now = time.monotonic()
        self.backlog = [u for u in self.backlog if u not in self.inflight and self.deferred.get(u, 0) <= now]
        fresh = self.backlog[: self.max_inflight - len(self.inflight)]
        handled: set[int] = set()
        batch = self.imap.batch_size
        for start in range(0, len(fresh), batch):
            chunk = fresh[start : start + batch]
            envelopes = await self._imap(self.session.envelopes, chunk)
            handled.update(set(chunk) - {env.uid for env in envelopes})  # expunged by someone else
            taken = await self._take(envelopes)
            handled.update(taken)
            if len(taken) < len(envelopes):
                break  # memory budget reached
        self.backlog = [u for u in self.backlog if u not in handled]
        if handled and max(handled) > self.last_uid:
            self.last_uid = max(handled)
            self._save_checkpoint()

    async def _take(self, envelopes: list[Envelope]) -> list[int]:
        """Fetch and start what fits the memory budget, in UID order; returns the UIDs handled."""
        limit = self.imap.max_message_bytes
        taken: list[int] = []
        group: list[Envelope] = []
        held = sum(self._inflight_bytes.values())
        for env in envelopes:
            if env.size > limit:
                await self._too_large(env, limit)
                taken.append(env.uid)
                continue
            if held + env.size > INFLIGHT_BYTES and (held or group):
                break
            group.append(env)
            held += env.size
        if group:
            await self._fetch_and_start(group)
            taken += [env.uid for env in group]
        return sorted(taken)

    async def _too_large(self, env: Envelope, limit: int) -> None:
        key = env.message_id or await self._imap(self.session.header_digest, env.uid)
        job = self.runner.load_key(key)
        if job.status != "quarantined":
            self.runner.quarantine(job, f"too large: {env.size} bytes > imap.max_message_bytes {limit}",
                                   self.mailbox.name)
        self._to_quarantine.append((self.session.uidvalidity, env.uid))

    async def _fetch_and_start(self, group: list[Envelope]) -> None:
        """Fetch a group, parse its emails side by side, start their jobs in UID order. Parsed
        one at a time, each parse waited its turn on a busy loop: a group of 100 took ~9 s
        under load, and the marks and the outage check waited that long (bench/mailboxes)."""
        raws = await self._imap(self.session.fetch, [env.uid for env in group])
        present = [env for env in group if raws.get(env.uid) is not None]  # others expunged meanwhile
        parsed = await asyncio.gather(*(self._parse(raws[env.uid]) for env in present), return_exceptions=True)
        for env, email in zip(present, parsed):
            if isinstance(email, UnparseableEmail):
                key = "sha256:" + hashlib.sha256(raws[env.uid]).hexdigest()
                self.runner.quarantine(self.runner.load_key(key), f"unparseable: {email}", self.mailbox.name)
                self._to_quarantine.append((self.session.uidvalidity, env.uid))
                continue
            if isinstance(email, BaseException):
                raise email
            if email.defects:  # what was read with care (a charset that did not fit, a kept winmail.dat, …)
                log.info("%s: parse notes: %s", email.key, "; ".join(email.defects[:10]))
            self._inflight_bytes[env.uid] = env.size
            self.inflight[env.uid] = asyncio.create_task(self._job(env.uid, self.session.uidvalidity, email))

    async def _job(self, uid: int, validity: int, email: InboundEmail) -> None:
        conversation = conversation_key(email, self.prefixes)
        lock = self._locks.setdefault(conversation, asyncio.Lock())
        try:
            async with lock, self._slots:
                outcome = await self.runner.process(email)
        except Exception:  # the runner catches everything it knows; this is a last resort
            log.exception("%s: job crashed; retrying later", email.key)
            outcome = Outcome("deferred", "crash", self.cfg.pipeline.retry_max_seconds)
        finally:
            self.inflight.pop(uid, None)
            self._inflight_bytes.pop(uid, None)
            if not lock.locked() and self._locks.get(conversation) is lock:
                del self._locks[conversation]
        if outcome.status == "done":
            self.deferred.pop(uid, None)
            self._to_mark.append((validity, uid))
        elif outcome.status == "quarantined" and outcome.folder:
            self.deferred.pop(uid, None)
            self._to_move.setdefault(outcome.folder, []).append((validity, uid))
        elif outcome.status == "quarantined":
            self.deferred.pop(uid, None)
            self._to_quarantine.append((validity, uid))
        else:
            self.deferred[uid] = time.monotonic() + outcome.delay
        for observer in self.outcomes:
            observer(uid, outcome)
        self._wake_soon()

    async def _flush(self) -> None:
        """Mark finished mail and move quarantined mail, in one IMAP command each, after one
        durable commit of the journal that says they are finished."""
        if self._to_mark or self._to_quarantine or self._to_move:
            self.store.jobs.commit(durable=True)
        validity = self.session.uidvalidity
        for pending, action in ((self._to_mark, self.session.mark_done), (self._to_quarantine, self.session.quarantine)):
            uids = sorted({uid for v, uid in pending if v == validity})
            pending.clear()
            if uids:
                await self._imap(action, uids)
        for folder, pending in list(self._to_move.items()):
            uids = sorted({uid for v, uid in pending if v == validity})
            del self._to_move[folder]
            if uids:
                await self._imap(self.session.move_to, uids, folder)

    async def stop(self, timeout: float = 10.0) -> None:
        """Let running jobs finish within ``timeout``, park the rest at their last journaled
        stage (cancelled: the next start resumes them), mark what finished, LOG OUT."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        if self.inflight:
            await asyncio.wait(list(self.inflight.values()), timeout=timeout)
        if self.inflight:
            log.info("imap %s: %d job(s) parked at their last journaled stage; resumed at the next start",
                     self.mailbox.name, len(self.inflight))
            for task in list(self.inflight.values()):
                task.cancel()
            await asyncio.wait(list(self.inflight.values()), timeout=1.0)
        try:
            if self.session.client is not None:
                await asyncio.wait_for(self._flush(), timeout=max(0.5, end - loop.time() + 1.0))
        except Exception as exc:  # the journal re-marks these at the next start
            log.warning("imap %s: could not mark finished mail at shutdown: %s", self.mailbox.name, exc)
        try:
            await asyncio.wait_for(self._imap(self.session.close), timeout=max(0.5, end - loop.time() + 1.0))
        except asyncio.TimeoutError:
            log.warning("imap %s: no LOGOUT answer within the shutdown budget", self.mailbox.name)
        self._imap_pool.shutdown(wait=False)
        if self._parse_process is not None:
            self._parse_process.shutdown(wait=False, cancel_futures=True)
