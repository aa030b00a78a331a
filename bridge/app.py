"""Wires config, state, adapters and runners into one running bridge; start, stop, signals."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bridge.ascii import ascii_lower
from bridge.automation.odoo_tickets import OdooTicketFeed
from bridge.automation.playbook import Automation
from bridge.config import Config, insecure_transports
from bridge.logs import display_url
from bridge.auth.flows import CredentialsRejected
from bridge.auth.tokens import TokenSource
from bridge.mail.guard import GuardContext
from bridge.mail.inbox import IdleWatcher
from bridge.mail.thread_ids import ticket_from_message_id
from bridge.mailboxes import Mailbox, arc_checker, build_mailboxes, refresh_tokens
from bridge.errors import BridgeError, ConfigurationError
from bridge.metrics import BridgeMetrics
from bridge.notify import LogNotifier, Notifier
from bridge.odoo.changes import OdooChanges
from bridge.odoo.rpc import OdooRPC
from bridge.odoo.sla_reads import SlaReader
from bridge.odoo.tickets import TicketDesk
from bridge.pipeline.context import Context, Observer
from bridge.pipeline.effects import Effects
from bridge.pipeline.follow_ups import FollowUps
from bridge.pipeline.health import ServiceHealth
from bridge.pipeline.ingest import ODOO_TICKET_STAGES
from bridge.pipeline.intake import Intake
from bridge.pipeline.odoo_watch import OdooWatcher
from bridge.pipeline.outbox import Handler, Outbox
from bridge.pipeline.runner import Runner
from bridge.ratings import Ratings
from bridge.reports.digest import Digest
from bridge.sla.monitor import SlaMonitor
from bridge.slack.service import MAX_ATTEMPTS as SLACK_ATTEMPTS
from bridge.slack.service import SlackSide
from bridge.statelock import lock_state
from bridge.store import Store
from bridge.supervise import Supervisor
from bridge.ticket_record import TicketBook
from bridge.web import WebServer

log = logging.getLogger("bridge")

PRUNE_EVERY_SECONDS = 3600.0
FORCED_EXIT = 128 + signal.SIGTERM  # the status of an exit forced by a second signal


def _task_name(task: str, box: Mailbox) -> str:
    """``intake`` for the one top-level mailbox, ``intake:<name>`` for each listed one."""
    return task if box.imap_service == "imap" else f"{task}:{box.name}"


def instance_secret(cfg: Config, store: Store) -> bytes:
    """The key that signs our Message-IDs: from config, else generated once and kept in state."""
    configured = cfg.bridge.secret.get_secret_value()
    if configured:
        return configured.encode()
    saved = store.meta.get("secret")
    if not saved:
        saved = secrets.token_hex(32)
        store.meta.put("secret", saved)
    return saved.encode()


class App:
    """One bridge: the intake (IMAP → jobs), the outbox (replies, notes, escalations) and
    housekeeping, each a task kept alive by the supervisor."""

    def __init__(
        self, cfg: Config, *, observers: list[Observer] | None = None, notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time, config_path: str = "",
    ) -> None:
        """``clock``: the time the follow-ups, SLA clocks and digest go by (tests move it);
        ``config_path``: the file ``cfg`` was read from, which the digest's report process reads."""
        self.cfg = cfg
        self._lock = lock_state(cfg.state.dir)
        self.store = Store(cfg.state.dir)
        secret = instance_secret(cfg, self.store)
        self.mailboxes = build_mailboxes(cfg, cfg.state.dir, domain=cfg.own_domain, secret=secret)
        self.health = {name: health for box in self.mailboxes for name, health in box.health.items()}
        self.health["odoo"] = ServiceHealth("odoo")
        if cfg.slack.enabled:
            self.health["slack"] = ServiceHealth("slack")
        for source in self.token_sources:
            self.health[f"oauth:{source.name}"] = ServiceHealth(f"oauth:{source.name}")
        self.rpc = OdooRPC(cfg.odoo)
        self.desk = TicketDesk(self.rpc, cfg.odoo)
        self.composer = self.mailboxes[0].side.composer
        self.executor = ThreadPoolExecutor(cfg.odoo.pool_size, thread_name_prefix="odoo")
        handlers: dict[str, Handler] = {}  # filled below, once the handlers' context exists
        self.outbox = Outbox(
            self.store.outbox,
            handlers,
            {**{f"smtp:{box.name}": box.health[box.smtp_service] for box in self.mailboxes},
             "smtp": self.mailboxes[0].health[self.mailboxes[0].smtp_service],
             "odoo_note": self.health["odoo"], "odoo_message_id": self.health["odoo"], "odoo_tags": self.health["odoo"]},
            requeue=self.store.meta,
            max_attempts=cfg.pipeline.outbox_max_attempts,
            attempts_by_kind=SLACK_ATTEMPTS if cfg.slack.enabled else None,
            retry_base=cfg.pipeline.retry_base_seconds,
            retry_max=cfg.pipeline.retry_max_seconds,
        )
        own = set()
        for box in cfg.mailbox_list:
            assert box.smtp is not None
            own.add(ascii_lower(box.smtp.from_address))
            own.update(ascii_lower(name) for name in (box.imap.username, box.smtp.username) if "@" in name)
        guard = GuardContext(
            own_addresses=frozenset(own),
            own_domain=cfg.own_domain,
            loop_token=self.composer.loop_token,
            is_our_message_id=self._is_our_message_id,
        )
        self.ctx = Context(
            cfg=cfg,
            store=self.store,
            desk=self.desk,
            composer=self.composer,
            outbox=self.outbox,
            guard=guard,
            health=self.health,
            executor=self.executor,
            tickets=TicketBook(self.store.tickets),
            observers=list(observers or []),
            automation=Automation.from_config(cfg.automation),
            mailboxes={box.name: box.side for box in self.mailboxes},
        )
        self.slack = SlackSide(self.ctx, self.health["slack"], self.store.threads) if cfg.slack.enabled else None
        self.ctx.notifier = notifier or (self.slack.notifier if self.slack else LogNotifier())
        self.effects = Effects(self.ctx, {box.name: box.smtp for box in self.mailboxes}, self.ctx.notifier)
        handlers.update(self.effects.handlers)
        if self.slack is not None:
            handlers.update(self.slack.handlers)
        self.outbox.observers.append(self._reply_dead_lettered)
        self.runner = Runner(self.ctx)
        slots, locks = asyncio.Semaphore(cfg.pipeline.concurrency), {}  # shared: one job per conversation
        for box in self.mailboxes:
            box.attach(cfg, self.runner, self.store, prefixes=self.ctx.tag_prefixes, slots=slots, locks=locks,
                       arc_check=arc_checker(cfg), calls=self.ctx.calls)
        self.metrics = BridgeMetrics(self.health, self.outbox, self.mailboxes, self.ctx.calls)
        self.ctx.observers.append(self.metrics.observe)
        self.outbox.observers.append(self.metrics.observe_outbox)
        self.tickets = OdooTicketFeed(self.ctx, Runner(self.ctx, ODOO_TICKET_STAGES))
        changes = OdooChanges(self.rpc, self.desk)
        self.odoo_watch = OdooWatcher(self.ctx, changes) if cfg.conversation.enabled else None
        self.follow_ups = FollowUps(self.ctx, changes, clock) if cfg.follow_ups.enabled else None
        self.ratings = Ratings(self.ctx) if cfg.satisfaction.enabled else None
        self.sla = SlaMonitor(self.ctx, SlaReader(self.rpc, self.desk), changes, clock) if cfg.sla.enabled else None
        if cfg.reports.digest.enabled and not config_path:
            raise ConfigurationError("reports.digest: the bridge must be started from a config file (bridge run)")
        self.digest = Digest(self.ctx, config_path, clock) if cfg.reports.digest.enabled else None
        self.web = WebServer(
            cfg.http, self.tickets.submit_threadsafe, readiness=self.readiness, metrics=self.metrics.render,
            on_slack=self.slack.endpoint if self.slack else None,
            on_odoo_change=self.odoo_watch.poke_threadsafe if self.odoo_watch else None,
            on_rating=self.ratings.submit_threadsafe if self.ratings else None,
            latest_report=self.digest.latest_report if self.digest and cfg.reports.digest.base_url else None,
        ) if cfg.http.port else None
        pipeline = cfg.pipeline  # a crashed task is restarted with the pipeline's backoff
        self.supervisor = Supervisor(backoff_base=pipeline.retry_base_seconds, backoff_max=pipeline.retry_max_seconds,
                                     settle_seconds=min(10.0, max(1.0, pipeline.retry_max_seconds)))
        self._state = "starting"  # → ready → stopping; read by /readyz from the HTTP thread
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def intake(self) -> Intake:
        """The first mailbox's intake (the only one with a top-level ``imap:``)."""
        assert self.mailboxes[0].intake is not None
        return self.mailboxes[0].intake

    @property
    def watcher(self) -> IdleWatcher:
        assert self.mailboxes[0].watcher is not None
        return self.mailboxes[0].watcher

    @property
    def token_sources(self) -> list[TokenSource]:
        return [source for box in self.mailboxes for source in box.token_sources]

    def _token_problem(self, source: TokenSource, exc: BridgeError) -> None:
        """From the thread that asked for a token: one alert per outage, on the loop."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self.health[f"oauth:{source.name}"].failed, str(exc))
        if isinstance(exc, CredentialsRejected):
            self._loop.call_soon_threadsafe(self._alert_credentials, source, exc)

    def _token_recovered(self, source: TokenSource) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.health[f"oauth:{source.name}"].ok)

    def _alert_credentials(self, source: TokenSource, exc: CredentialsRejected) -> None:
        """Tell people once per dead credential: the key names the refresh token (or app secret)
        that failed, so a restart with the same dead one does not alert again."""
        mailbox = source.name.removesuffix("-smtp")
        stored = source.vault.load(source.name)
        key = f"oauth:{source.name}:{exc.error}:{stored.updated_at if stored else 0}:{source.cfg.flow}"
        action = (f"Run `bridge auth login --mailbox {mailbox}` to consent again" if source.cfg.flow == "refresh_token"
                  else "Check the app's credentials and its access to the mailbox")
        box = self.ctx.mailbox(mailbox)
        for effect in self.ctx.notifier.alert(key, mailbox=mailbox, problem=str(exc), action=action,
                                              channel=box.cfg.slack_channel):
            self.outbox.enqueue(effect)

    def _is_our_message_id(self, message_id: str) -> bool:
        record = self.store.messages.get(message_id)
        if record is not None:
            return record.get("dir") == "out"
        return ticket_from_message_id(message_id, self.composer.domain, self.composer.secret) is not None

    def _reply_dead_lettered(self, event: str, key: str, record: dict[str, Any]) -> None:
        """A reply that will not be delivered needs a person: tell the ticket's thread."""
        payload = record.get("payload") or {}
        if event == "dead" and record.get("kind") == "smtp" and payload.get("ticket"):
            self.ctx.notify("reply_failed", int(payload["ticket"]), key,
                            recipient=", ".join(payload.get("recipients") or []), error=record.get("last_error", ""))

    def readiness(self) -> dict[str, Any]:
        """/readyz: ready once started and until stopping, while no service is in an outage
        and no task of the bridge is failing."""
        services = {name: health.report() for name, health in self.health.items()}
        tasks = self.supervisor.report()
        mailboxes = {box.name: box.report() for box in self.mailboxes}
        status = self._state
        if status == "ready" and not (
            all(service["up"] for service in services.values()) and all(task["up"] for task in tasks.values())
            and all(box["up"] for box in mailboxes.values())
        ):
            status = "degraded"
        return {"status": status, "services": services, "tasks": tasks, "mailboxes": mailboxes}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for box in self.mailboxes:
            assert box.intake is not None
            box.intake.bind(self._loop)
        for source in self.token_sources:
            source.on_problem.append(self._token_problem)
            source.on_recovered.append(self._token_recovered)
        self.tickets.bind(asyncio.get_running_loop())
        if self.ratings is not None:
            self.ratings.bind(asyncio.get_running_loop())
        for box in self.mailboxes:
            assert box.intake is not None
            self.supervisor.spawn(_task_name("intake", box), box.intake.run)
        for source in self.token_sources:
            self.supervisor.spawn(f"oauth:{source.name}", functools.partial(refresh_tokens, source))
        self.supervisor.spawn("outbox", self.outbox.run)
        self.supervisor.spawn("housekeeping", self._housekeeping)
        if self.ctx.automation is not None:
            self.supervisor.spawn("odoo-tickets", self.tickets.run)
        if self.odoo_watch is not None:
            self.odoo_watch.bind(asyncio.get_running_loop())
            self.supervisor.spawn("odoo-watch", self.odoo_watch.run)
        if self.follow_ups is not None:
            self.supervisor.spawn("follow-ups", self.follow_ups.run)
        if self.sla is not None:
            self.supervisor.spawn("sla", self.sla.run)
        if self.digest is not None:
            self.supervisor.spawn("digest", self.digest.run)
        if self.slack is not None:
            await self.slack.start()
            if self.slack.socket is not None:
                self.supervisor.spawn("slack-socket", self.slack.run_socket)
        for box in self.mailboxes:
            assert box.watcher is not None
            box.watcher.start()
        if self.web is not None:
            self.web.start()
        for problem in insecure_transports(self.cfg):  # only reachable with bridge.allow_insecure
            log.warning("INSECURE (bridge.allow_insecure is set): %s: credentials and mail cross the "
                        "network in clear", problem)
        self._state = "ready"
        for box in self.mailboxes:
            imap, smtp = box.side.cfg.imap, box.side.cfg.smtp
            assert smtp is not None
            log.info("bridge started: mailbox %s: imap %s:%s/%s (%s) → odoo %s (%s, %s) ; replies via %s:%s (%s)",
                     box.name, imap.host, imap.port, imap.folder, imap.auth, display_url(self.cfg.odoo.url),
                     self.cfg.odoo.profile, self.cfg.odoo.transport, smtp.host, smtp.port, smtp.auth)

    async def _housekeeping(self) -> None:
        retention = self.cfg.state.retention_days * 86400
        while True:
            removed = self.store.prune(retention)
            if any(removed.values()):
                log.info("state: pruned %s", removed)
            await asyncio.sleep(PRUNE_EVERY_SECONDS)

    async def stop(self) -> None:
        """Stop within ``bridge.shutdown_budget_seconds``: take no new mail, clicks or webhooks;
        let running jobs finish (or park them at their last journaled stage) in 60 % of the
        budget; mark what finished and LOG OUT of IMAP; send what the outbox can until 90 %;
        then close. Anything cut short is resumed from the journal at the next start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.bridge.shutdown_budget_seconds
        started = loop.time()

        def left(share: float = 1.0) -> float:
            """Seconds until ``share`` of the budget is used (0 once past)."""
            return max(0.0, started + (deadline - started) * share - loop.time())

        self._state = "stopping"
        for box in self.mailboxes:
            assert box.watcher is not None
            box.watcher.signal_stop()
        if self.web is not None:
            await asyncio.to_thread(self.web.stop)
        tasks = self.supervisor.tasks
        for name in [name for name in tasks if name == "intake" or name.startswith("intake:")]:
            tasks[name].cancel()
        await asyncio.gather(*(box.intake.stop(timeout=left(0.6)) for box in self.mailboxes
                               if box.intake is not None))
        await self.outbox.flush(timeout=left(0.9))
        for task in tasks.values():
            task.cancel()
        if tasks:
            await asyncio.wait([*tasks.values()], timeout=max(0.1, left(0.95)))
        for box in self.mailboxes:
            try:
                await asyncio.wait_for(box.smtp.close(), timeout=max(0.1, left(0.97)))
            except asyncio.TimeoutError:
                log.warning("smtp %s: no clean QUIT within the shutdown budget", box.name)
        if self.slack is not None:
            self.slack.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.store.close()
        self._lock.close()
        for box in self.mailboxes:
            assert box.watcher is not None
            box.watcher.join(timeout=max(0.0, min(1.0, left())))
        log.info("bridge stopped in %.1fs (budget %.0fs)", loop.time() - started,
                 self.cfg.bridge.shutdown_budget_seconds)

    async def run_until_signalled(self) -> None:
        # The event loop hands work to many I/O threads and waits on the state threads; with
        # the default 5 ms GIL switch interval every hand-off can stall that long, while at
        # 0.5 ms and below forced switches cost more than they save (bench/throughput: 2 ms
        # gave ~99 emails/s, 5 ms ~91, 0.5 ms ~89, 0.1 ms ~90).
        sys.setswitchinterval(0.002)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():  # a second signal: leave now; the journal and IMAP lose nothing
                log.warning("bridge: second signal: exiting at once; unfinished work resumes at the next start")
                logging.shutdown()
                os._exit(FORCED_EXIT)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await self.start()
        await stop.wait()
        log.info("bridge: stopping on signal (budget %.0fs)", self.cfg.bridge.shutdown_budget_seconds)
        await self.stop()
