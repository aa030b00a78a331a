"""Follow-ups on tickets that wait on the customer (``follow_ups:``, off by default): one
reminder after ``remind_after_days`` working days in a waiting stage, then, ``close_after_days``
working days later and still no answer, the ticket is closed with ``closed_no_response``.

Waiting starts when the ticket entered its stage in Odoo (the stage date Odoo keeps), or at the
customer's latest email if that is later; a new stage entry or a customer email starts a new
wait with its own reminder. The reminder's outbox key names the wait, so a restart or a second
look sends nothing twice. The clock is injected (``App(clock=…)``) so tests can move time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from bridge.errors import BridgeError, RejectedByService
from bridge.mail.compose import MessageKind
from bridge.odoo.changes import OdooChanges
from bridge.odoo.rpc import odoo_time
from bridge.pipeline.context import Context
from bridge.pipeline.conversation import bridge_set_stage
from bridge.pipeline.effects import mail_effect
from bridge.sla.facts import business_calendar
from bridge.ticket_record import TicketRecord, reply_target

log = logging.getLogger("bridge.follow_ups")

PAGE = 200


class FollowUps:
    """Looks at the waiting tickets every ``check_seconds``."""

    def __init__(self, ctx: Context, changes: OdooChanges, clock: Callable[[], float]) -> None:
        self.ctx = ctx
        self.changes = changes
        self.clock = clock
        self.calendar = business_calendar(ctx.cfg.calendar, hours=False)
        self.checks = 0

    async def run(self) -> None:
        every = self.ctx.cfg.follow_ups.check_seconds
        while True:
            try:
                await self.check_once()
            except BridgeError as exc:
                log.warning("follow-ups: check failed, trying again in %.0f s: %s", every, exc)
            await asyncio.sleep(every)

    async def check_once(self) -> int:
        """Remind or close what is due now; how many tickets were acted on."""
        ctx, cfg = self.ctx, self.ctx.cfg.follow_ups
        stage_ids = [await ctx.odoo(ctx.desk.stage_id, name) for name in cfg.waiting_stages]
        acted, after = 0, 0
        while True:
            page = await ctx.odoo(self.changes.tickets_in_stages, stage_ids, after, PAGE)
            for ticket_id, _, entered in page:
                record = ctx.tickets.get(ticket_id)
                if record is not None and record.customer_email and entered:
                    acted += await self._due(record, entered)
            if len(page) < PAGE:
                break
            after = page[-1][0]
        self.checks += 1
        return acted

    async def _due(self, record: TicketRecord, entered: str) -> int:
        ctx, cfg = self.ctx, self.ctx.cfg.follow_ups
        since = odoo_time(entered)
        replied = float(record.odoo.get("customer_wrote_at", 0.0))
        if replied > since.timestamp():
            since = datetime.fromtimestamp(replied, UTC)
        wait = since.strftime("%Y%m%dT%H%M%S.%f")  # a customer email in the same second is a new wait
        now = datetime.fromtimestamp(self.clock(), UTC)
        reminded = record.odoo.get("reminded") == wait
        if cfg.remind_after_days and not reminded:
            if now < self.calendar.add_working_days(since, cfg.remind_after_days):
                return 0
            self._remind(record, wait)
            return 1
        if not cfg.close_after_days:
            return 0
        start = self.calendar.add_working_days(since, cfg.remind_after_days)
        if reminded:  # the customer gets the full notice however late the reminder went out
            start = max(start, datetime.fromtimestamp(float(record.odoo.get("reminded_at", 0.0)), UTC))
        if now < self.calendar.add_working_days(start, cfg.close_after_days):
            return 0
        log.info("ticket %s: no answer from the customer after %d working days: closing it", record.ticket_id,
                 cfg.remind_after_days + cfg.close_after_days)
        await bridge_set_stage(ctx, record.ticket_id, cfg.close_stage, by="the bridge: no answer from the customer",
                               template="closed_no_response")
        return 1

    def _remind(self, record: TicketRecord, wait: str) -> None:
        ctx, cfg = self.ctx, self.ctx.cfg.follow_ups
        key = f"remind:{record.ticket_id}:{wait}"
        try:
            mail = ctx.composer_for(record.mailbox).reply(reply_target(record), record.ticket_id, template="reminder",
                                      kind=MessageKind.REMINDER, values={"close_after_days": cfg.close_after_days})
        except RejectedByService as exc:
            log.warning("ticket %s: reminder not sent: %s", record.ticket_id, exc)
        else:
            if ctx.outbox.enqueue(mail_effect(key, mail, record.ticket_id, key)):
                ctx.store.remember_message(mail.message_id, record.ticket_id, "out")
                log.info("ticket %s: waiting on the customer since %s: reminder queued as %s", record.ticket_id,
                         wait, mail.message_id)
        ctx.tickets.update_odoo(record.ticket_id, reminded=wait, reminded_at=self.clock())
