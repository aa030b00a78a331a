"""Wires config, state, adapters and runners into one running bridge; start, stop, signals."""

from __future__ import annotations

import asyncio
import logging
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
from bridge.mail.compose import Composer
from bridge.mail.guard import GuardContext
from bridge.mail.inbox import IdleWatcher
from bridge.mail.smtp import SmtpSender
from bridge.mail.thread_ids import ticket_from_message_id
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
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock``: the time the follow-ups and SLA clocks go by (tests move it)."""
        self.cfg = cfg
        self._lock = lock_state(cfg.state.dir)
        self.store = Store(cfg.state.dir)
        services = ("imap", "odoo", "smtp", "slack") if cfg.slack.enabled else ("imap", "odoo", "smtp")
        self.health = {name: ServiceHealth(name) for name in services}
        self.rpc = OdooRPC(cfg.odoo)
        self.desk = TicketDesk(self.rpc, cfg.odoo)
        self.smtp = SmtpSender(cfg.smtp)
        secret = instance_secret(cfg, self.store)
        self.composer = Composer(
            cfg.tickets.templates_dir,
            from_address=cfg.smtp.from_address,
            from_name=cfg.smtp.from_name,
            domain=cfg.own_domain,
            secret=secret,
            tag_prefix=cfg.tickets.tag_prefix,
            max_references=cfg.tickets.max_references,
        )
        self.executor = ThreadPoolExecutor(cfg.odoo.pool_size, thread_name_prefix="odoo")
        handlers: dict[str, Handler] = {}  # filled below, once the handlers' context exists
        self.outbox = Outbox(
            self.store.outbox,
            handlers,
            {"smtp": self.health["smtp"], "odoo_note": self.health["odoo"], "odoo_message_id": self.health["odoo"],
             "odoo_tags": self.health["odoo"]},
            requeue=self.store.meta,
            max_attempts=cfg.pipeline.outbox_max_attempts,
            attempts_by_kind=SLACK_ATTEMPTS if cfg.slack.enabled else None,
            retry_base=cfg.pipeline.retry_base_seconds,
            retry_max=cfg.pipeline.retry_max_seconds,
        )
        own = {ascii_lower(cfg.smtp.from_address)}
        if "@" in cfg.imap.username:
            own.add(ascii_lower(cfg.imap.username))
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
        )
        self.slack = SlackSide(self.ctx, self.health["slack"], self.store.threads) if cfg.slack.enabled else None
        self.ctx.notifier = notifier or (self.slack.notifier if self.slack else LogNotifier())
        self.effects = Effects(self.ctx, self.smtp, self.ctx.notifier)
        handlers.update(self.effects.handlers)
        if self.slack is not None:
            handlers.update(self.slack.handlers)
        self.outbox.observers.append(self._reply_dead_lettered)
        self.runner = Runner(self.ctx)
        self.intake = Intake(cfg, self.runner, self.store, self.health["imap"])
        self.metrics = BridgeMetrics(self.health, self.outbox, self.intake)
        self.ctx.observers.append(self.metrics.observe)
        self.outbox.observers.append(self.metrics.observe_outbox)
        self.tickets = OdooTicketFeed(self.ctx, Runner(self.ctx, ODOO_TICKET_STAGES))
        changes = OdooChanges(self.rpc, self.desk)
        self.odoo_watch = OdooWatcher(self.ctx, changes) if cfg.conversation.enabled else None
        self.follow_ups = FollowUps(self.ctx, changes, clock) if cfg.follow_ups.enabled else None
        self.ratings = Ratings(self.ctx) if cfg.satisfaction.enabled else None
        self.sla = SlaMonitor(self.ctx, SlaReader(self.rpc, self.desk), changes, clock) if cfg.sla.enabled else None
        self.web = WebServer(
            cfg.http, self.tickets.submit_threadsafe, readiness=self.readiness, metrics=self.metrics.render,
            on_slack=self.slack.endpoint if self.slack else None,
            on_odoo_change=self.odoo_watch.poke_threadsafe if self.odoo_watch else None,
            on_rating=self.ratings.submit_threadsafe if self.ratings else None,
        ) if cfg.http.port else None
        self.watcher = IdleWatcher(cfg.imap, self.intake.notify_threadsafe)
        pipeline = cfg.pipeline  # a crashed task is restarted with the pipeline's backoff
        self.supervisor = Supervisor(backoff_base=pipeline.retry_base_seconds, backoff_max=pipeline.retry_max_seconds,
                                     settle_seconds=min(10.0, max(1.0, pipeline.retry_max_seconds)))
        self._state = "starting"  # → ready → stopping; read by /readyz from the HTTP thread

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
        status = self._state
        if status == "ready" and not (
            all(service["up"] for service in services.values()) and all(task["up"] for task in tasks.values())
        ):
            status = "degraded"
        return {"status": status, "services": services, "tasks": tasks}

    async def start(self) -> None:
        self.intake.bind(asyncio.get_running_loop())
        self.tickets.bind(asyncio.get_running_loop())
        if self.ratings is not None:
            self.ratings.bind(asyncio.get_running_loop())
        self.supervisor.spawn("intake", self.intake.run)
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
        if self.slack is not None:
            await self.slack.start()
            if self.slack.socket is not None:
                self.supervisor.spawn("slack-socket", self.slack.run_socket)
        self.watcher.start()
        if self.web is not None:
            self.web.start()
        for problem in insecure_transports(self.cfg):  # only reachable with bridge.allow_insecure
            log.warning("INSECURE (bridge.allow_insecure is set): %s: credentials and mail cross the "
                        "network in clear", problem)
        self._state = "ready"
        log.info(
            "bridge started: imap %s:%s/%s → odoo %s (%s, %s) ; replies via %s:%s",
            self.cfg.imap.host, self.cfg.imap.port, self.cfg.imap.folder, display_url(self.cfg.odoo.url),
            self.cfg.odoo.profile, self.cfg.odoo.transport, self.cfg.smtp.host, self.cfg.smtp.port,
        )

    async def _housekeeping(self) -> None:
        retention = self.cfg.state.retention_days * 86400
        while True:
            removed = self.store.prune(retention)
            if any(removed.values()):
                log.info("state: pruned %s", removed)
            await asyncio.sleep(PRUNE_EVERY_SECONDS)

    async def stop(self) -> None:
        """Stop taking mail, let running jobs and sends finish (bounded), then close state."""
        self._state = "stopping"
        self.watcher.stop()
        if self.web is not None:
            self.web.stop()
        tasks = self.supervisor.tasks
        if "intake" in tasks:
            tasks["intake"].cancel()
        await self.intake.stop()
        await self.outbox.drain(timeout=10.0)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        await self.smtp.close()
        if self.slack is not None:
            self.slack.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.store.close()
        self._lock.close()
        log.info("bridge stopped")

    async def run_until_signalled(self) -> None:
        # The event loop hands work to many I/O threads and waits on the state threads; with
        # the default 5 ms GIL switch interval every hand-off can stall that long, while at
        # 0.5 ms and below forced switches cost more than they save (bench/throughput: 2 ms
        # gave ~99 emails/s, 5 ms ~91, 0.5 ms ~89, 0.1 ms ~90).
        sys.setswitchinterval(0.002)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        await stop.wait()
        log.info("bridge: stopping on signal")
        await self.stop()
