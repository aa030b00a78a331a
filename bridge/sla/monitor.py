"""The SLA monitor: every ``sla.check_seconds`` it sweeps the open tickets in Odoo (a few calls
per page: tickets, their messages, new authors and tags), computes each ticket's clocks from
Odoo's facts (bridge/sla/clocks.py) and posts what is due, once: warnings in the ticket's Slack
thread (not in quiet hours), breaches with their true time in the thread (with the configured
mention), as an Odoo tag and an internal note; the card shows the next deadline; a closed
ticket gets a summary in its thread.

"Once" holds across restarts: each event's key (ticket, metric, cycle, event) is kept in the
ticket record's ``sla.posted`` and is the outbox key of its effects. Pause intervals are the
ones the monitor saw begin and end (from Odoo's stage dates); the current pause and closure
come from the ticket itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from bridge.config import duration_seconds
from bridge.errors import BridgeError, ConfigurationError
from bridge.odoo.changes import OdooChanges
from bridge.odoo.rpc import as_id, many2one
from bridge.odoo.sla_reads import SlaReader
from bridge.pipeline.context import Context
from bridge.pipeline.outbox import Effect
from bridge.sla.calendar import parse_hours
from bridge.sla.clocks import Clock, due_events, next_deadline
from bridge.sla.facts import METRIC_NAMES, SlaClocks, iso
from bridge.sla.policy import Targets
from bridge.ticket_record import TicketRecord

log = logging.getLogger("bridge.sla")

CLOSED_LOOKBACK = timedelta(minutes=10)
STARTED = "sla_started"  # meta: when the monitor first swept (events long before it are history)
YIELD_EVERY = 25  # tickets handled between two yields to the event loop


@dataclass
class SweepReport:
    """What one sweep did: for logs, the bench and tests."""

    tickets: int = 0
    pages: int = 0
    warnings: int = 0
    breaches: int = 0
    summaries: int = 0
    history: int = 0  # events from before the SLA was switched on, recorded without telling anyone


class SlaMonitor:
    """Sweeps on a timer; ``clock`` is injected (tests move time)."""

    def __init__(self, ctx: Context, reader: SlaReader, changes: OdooChanges, clock: Callable[[], float]) -> None:
        self.ctx = ctx
        self.reader = reader
        self.changes = changes
        self.clock = clock
        self.engine = SlaClocks(ctx.cfg, ctx.desk, changes, ctx.composer.domain, ctx.composer.secret,
                                lambda ticket_id: (r.sla if (r := ctx.tickets.get(ticket_id)) else {}))
        self.zone = ZoneInfo(ctx.cfg.calendar.timezone)
        self.quiet = parse_hours(tuple(sorted(ctx.cfg.sla.quiet_hours)))
        self.sweeps = 0
        self._last_sweep: datetime | None = None
        self._unknown_stages: set[str] = set()
        self._history_line = datetime.min.replace(tzinfo=UTC)

    async def run(self) -> None:
        every = self.ctx.cfg.sla.check_seconds
        while True:
            try:
                report = await self.sweep()
                if report.warnings or report.breaches or report.summaries:
                    log.info("sla: %d ticket(s) looked at: %d warning(s), %d breach(es), %d summary(ies)",
                             report.tickets, report.warnings, report.breaches, report.summaries)
            except BridgeError as exc:
                log.warning("sla: sweep failed, trying again in %.0f s: %s", every, exc)
            await asyncio.sleep(every)

    # ------------------------------------------------------------------ the sweep

    async def sweep(self) -> SweepReport:
        ctx, cfg = self.ctx, self.ctx.cfg.sla
        now = datetime.fromtimestamp(self.clock(), UTC)
        report = SweepReport()
        self._history_line = self._history_before(now)
        pause_ids = await self._pause_stages()
        after = 0
        while True:
            rows = await ctx.odoo(self.reader.open_tickets, after, cfg.page_size)
            report.pages += 1
            await self._page(rows, pause_ids, now, report, closed=False)
            if len(rows) < cfg.page_size:
                break
            after = as_id(rows[-1]["id"])
        since = (self._last_sweep or now - CLOSED_LOOKBACK) - CLOSED_LOOKBACK
        after = 0
        while True:  # just closed: final clocks, missed breaches, the summary
            rows = await ctx.odoo(self.reader.closed_since, iso(min(since, now - CLOSED_LOOKBACK)), after,
                                  cfg.page_size)
            report.pages += 1
            await self._page(rows, pause_ids, now, report, closed=True)
            if len(rows) < cfg.page_size:
                break
            after = as_id(rows[-1]["id"])
        self._last_sweep = now
        self.sweeps += 1
        return report

    async def _pause_stages(self) -> set[int]:
        """The pause stages' ids; a name Odoo does not know is left out, with one warning."""
        found = set()
        for name in self.ctx.cfg.sla.pause_stages:
            try:
                found.add(await self.ctx.odoo(self.ctx.desk.stage_id, name))
            except ConfigurationError as exc:
                if name not in self._unknown_stages:
                    log.warning("sla: %s; sla.pause_stages without it", exc)
                    self._unknown_stages.add(name)
        return found

    async def _page(self, rows: list[dict[str, Any]], pause_ids: set[int], now: datetime, report: SweepReport, *,
                    closed: bool) -> None:
        if not rows:
            return
        ctx = self.ctx
        messages = await ctx.odoo(self.reader.messages, [as_id(r["id"]) for r in rows])
        authors = [a for rows_ in messages.values() for m in rows_ if m.get("message_type") == "comment"
                   if (a := many2one(m.get("author_id"))[0])]
        internal = await ctx.odoo(self.changes.internal_authors, authors) if authors else set()
        await ctx.odoo(self.changes.discussion_subtype)  # memoised: read here, off the loop, once
        for stage_id in {many2one(r.get("stage_id"))[0] for r in rows}:
            await ctx.odoo(ctx.desk.stage_closed, stage_id)
        tags = await ctx.odoo(self.reader.tag_names, {as_id(t) for r in rows for t in r.get("tag_ids") or []})
        history = await ctx.odoo(self.reader.stage_history, [as_id(r["id"]) for r in rows])
        for changes in (history or {}).values():
            for stage_id in {stage for _, old, new in changes for stage in (old, new) if stage}:
                await ctx.odoo(ctx.desk.stage_closed, stage_id)  # memoised off the loop
        records = ctx.tickets.get_many([as_id(r["id"]) for r in rows])  # one read for the page
        for count, row in enumerate(rows, 1):
            report.tickets += 1
            ticket_id = as_id(row["id"])
            self._ticket(row, records.get(ticket_id), messages.get(ticket_id, []), internal, tags, pause_ids, now,
                         report, closed=closed, history=None if history is None else history.get(ticket_id, []))
            if count % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let email intake and Slack run between slices of the page
        ctx.store.tickets.commit(durable=True)  # the events posted on this page: once, whatever happens

    # ------------------------------------------------------------------ one ticket

    def _ticket(self, row: dict[str, Any], record: TicketRecord | None, messages: list[dict[str, Any]],
                internal: set[int], tags: dict[int, str], pause_ids: set[int], now: datetime, report: SweepReport, *,
                closed: bool, history: list[tuple[str, int, int]] | None) -> None:
        ticket_id = as_id(row["id"])
        if record is not None:
            record = self._track_pauses(record, row, pause_ids)
        targets, clocks = self.engine.clocks_of(row, messages, internal, tags, pause_ids, now, history,
                                                sla=record.sla if record else {})
        if targets is None:
            return
        cfg = self.ctx.cfg.sla
        calendar = self.engine.calendar(targets)
        events = due_events(clocks, calendar, now, warn_at=cfg.warn_at,
                            warn_before=tuple(duration_seconds(lead) for lead in cfg.warn_before))
        posted = set((record.sla.get("posted") if record else None) or [])
        quiet = self._quiet(now)
        history_before = self._history_line
        for event in events:
            key = f"sla:{ticket_id}:{event.key}"
            if key in posted or (event.kind == "warning" and (quiet or closed)):
                continue
            record = record or self._record(row)
            if event.moment >= history_before:
                self._post(ticket_id, key, event.kind, event.clock, targets, row)
                report.breaches += event.kind == "breach"
                report.warnings += event.kind == "warning"
            else:  # from before the SLA was switched on: kept for reports, told to nobody
                report.history += 1
            posted.add(key)
            record = self.ctx.tickets.update_sla(ticket_id, posted=sorted(posted)) or record
        if closed:
            report.summaries += self._summary(record, clocks, targets, posted)
        elif record is not None:
            self._card(record, clocks, posted)

    def _history_before(self, now: datetime) -> datetime:
        """Events due before this moment happened before the SLA was switched on (minus
        ``sla.backfill_hours``): the first sweep over an old backlog tells nobody about them."""
        started = self.ctx.store.meta.get(STARTED)
        if started is None:
            started = now.timestamp()
            self.ctx.store.meta.put(STARTED, started)
        return datetime.fromtimestamp(started, UTC) - timedelta(hours=self.ctx.cfg.sla.backfill_hours)

    def _track_pauses(self, record: TicketRecord, row: dict[str, Any], pause_ids: set[int]) -> TicketRecord:
        """Remember when a wait on the customer (or a closure) began and, when it ended, the
        interval: the resolution clock does not count it (Odoo's stage dates, not our clock).
        Used where Odoo's tracking cannot be read."""
        ticket_id = record.ticket_id
        profile = self.ctx.desk.profile
        stage_id = many2one(row.get("stage_id"))[0]
        entered = str(row.get(profile.stage_date_field) or row.get("write_date") or "")[:19]
        holding = stage_id in pause_ids or self.ctx.desk.stage_closed(stage_id)
        since = record.sla.get("held_since")
        if holding and not since:
            return self.ctx.tickets.update_sla(ticket_id, held_since=entered) or record
        if not holding and since:
            pauses = [*(record.sla.get("pauses") or []), [since, entered]]
            return self.ctx.tickets.update_sla(ticket_id, held_since="", pauses=pauses[-50:]) or record
        return record

    def _record(self, row: dict[str, Any]) -> TicketRecord:
        """A ticket the bridge has not handled yet (created in Odoo): its record, for the thread."""
        ticket_id = as_id(row["id"])
        partner_name = many2one(row.get("partner_id"))[1]
        return self.ctx.tickets.seen(ticket_id, model=self.ctx.desk.profile.model,
                                     customer_email=str(row.get("partner_email") or ""),
                                     customer_name=str(row.get("partner_name") or partner_name), origin="odoo",
                                     mailbox="")

    def _quiet(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.quiet)

    def _local(self, moment: datetime | None) -> str:
        return moment.astimezone(self.zone).strftime("%a %d %b %H:%M %Z") if moment else "—"

    def _post(self, ticket_id: int, key: str, kind: str, clock: Clock, targets: Targets, row: dict[str, Any]) -> None:
        ctx = self.ctx
        metric = METRIC_NAMES[clock.metric]
        deadline = self._local(clock.deadline)
        target = f"{clock.target / 3600:g} h{' (24/7)' if targets.around_the_clock else ' working time'}"
        if kind == "warning":
            used = min(100, int(round(100 * clock.used / clock.target))) if clock.target else 0
            ctx.notify("sla_warning", ticket_id, key, metric=metric, deadline=deadline, policy=targets.policy,
                       used=used)
            log.info("ticket %s: SLA %s at %d%% (due %s)", ticket_id, metric, used, deadline)
            return
        ctx.notify("sla_breach", ticket_id, key, metric=metric, deadline=deadline, policy=targets.policy,
                   target=target)
        tag = ctx.cfg.sla.breach_tags.get(clock.metric)  # type: ignore[call-overload]
        if tag:
            ctx.outbox.enqueue(Effect(f"{key}:tag", "odoo_tags", {"ticket": ticket_id, "tags": [tag]}))
        odoo_own = row.get("sla_deadline")
        body = (f"<p><b>SLA {escape(metric)} breached</b> at {escape(iso(clock.deadline))} UTC "
                f"({escape(deadline)}): policy {escape(targets.policy)}, target {escape(target)}.")
        if odoo_own:
            body += (f"<br/>Odoo's own SLA deadline: {escape(str(odoo_own))} UTC; the bridge enforces its "
                     f"policy {escape(targets.policy)}.")
        ctx.outbox.enqueue(Effect(f"{key}:note", "odoo_note", {"ticket": ticket_id, "marker": key, "email_key": key,
                                                              "body": f"{body}<br/>{escape(key)}</p>"}))
        log.warning("ticket %s: SLA %s breached at %s (policy %s)", ticket_id, metric, iso(clock.deadline),
                    targets.policy)

    def _card(self, record: TicketRecord, clocks: list[Clock], posted: set[str]) -> None:
        """Show the next deadline and its state on the card, refreshed only when that text changes."""
        ticket_id = record.ticket_id
        nearest = next_deadline(clocks)
        if nearest is None:
            text = "paused" if any(c.state == "paused" for c in clocks) else ""
        else:
            warned = any(k.startswith(f"sla:{ticket_id}:{nearest.metric}:{nearest.cycle}:warning") for k in posted)
            state = {"breached": "breached", "paused": "paused"}.get(nearest.state,
                                                                     "at risk" if warned else "on track")
            text = f"{METRIC_NAMES[nearest.metric]} by {self._local(nearest.deadline)} ({state})"
        card = record.slack.get("ts", "")  # a card posted since the text was set must show it too
        if record.sla.get("next", "") == text and record.sla.get("next_on_card", "") == card:
            return
        self.ctx.tickets.update_sla(ticket_id, next=text, next_on_card=card)
        if card:
            for effect in self.ctx.notifier.ticket_event("sla_card", ticket_id, f"{ticket_id}:{card}:{text}"):
                self.ctx.outbox.enqueue(effect)

    def _summary(self, record: TicketRecord | None, clocks: list[Clock], targets: Targets, posted: set[str]) -> int:
        """Once per closure: met or missed per metric, working time used, paused time."""
        closed_at = next((c.stopped for c in clocks if c.metric == "resolution" and c.stopped), None)
        if record is None or closed_at is None:
            return 0
        ticket_id = record.ticket_id
        key = f"sla:{ticket_id}:summary:{closed_at.strftime('%Y%m%dT%H%M%S')}"
        if key in posted:
            return 0
        lines = [f"{METRIC_NAMES[c.metric]}: {c.state}, {c.used / 3600:.1f} h of {c.target / 3600:g} h"
                 for c in clocks if c.state in ("met", "missed")]
        self.ctx.notify("sla_summary", ticket_id, key, policy=targets.policy, lines=lines,
                        paused=self._paused_hours(clocks))
        self.ctx.tickets.update_sla(ticket_id, posted=sorted({*posted, key}), next="")
        return 1

    @staticmethod
    def _paused_hours(clocks: list[Clock]) -> float:
        resolution = next((c for c in clocks if c.metric == "resolution"), None)
        if resolution is None:
            return 0.0
        return sum((end - begin).total_seconds() for begin, end in resolution.pauses) / 3600
