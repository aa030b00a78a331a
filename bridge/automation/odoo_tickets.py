"""Tickets created directly in Odoo (portal, web form, agents): announced by the webhook or
found by polling, and run through the same login playbook and reply as emailed tickets.

Each ticket is one job keyed ``odoo-ticket:<id>``, so the webhook and the poller (or two
webhook calls) never run it twice. Tickets with an email on their chatter belong to the email
path and are skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any

from bridge.errors import BridgeError
from bridge.mail.htmltext import html_to_text
from bridge.models import GuardAction, InboundEmail
from bridge.pipeline.context import Context
from bridge.pipeline.runner import Runner

log = logging.getLogger("bridge.automation")

POLL_CHECKPOINT = "odoo_ticket_poll"


def job_key(ticket_id: int) -> str:
    return f"odoo-ticket:{ticket_id}"


def as_request(ticket_id: int, info: dict[str, Any]) -> InboundEmail:
    """The ticket seen as the request it stands for, so the same stages can run on it."""
    return InboundEmail(
        key=job_key(ticket_id), message_id=None, from_name=info["name"], from_addr=info["email"].lower(),
        reply_to=None, to=(), cc=(), subject=info["subject"], text=html_to_text(info["description"]),
        html="", attachments=(), in_reply_to=None, references=(), date=None, headers={}, size=0,
    )


def requester(info: dict[str, Any]) -> dict[str, Any]:
    """Who asked: trusted only when a portal user opened the ticket for their own partner."""
    if not info["email"]:
        return {"trusted": False, "reason": "the ticket has no customer email"}
    if info["by_portal_customer"]:
        return {"trusted": True, "reason": "created in the Odoo portal by the customer's own user"}
    return {"trusted": False, "reason": "created in Odoo by someone other than the customer: "
                                        "the requester cannot be verified"}


class OdooTicketFeed:
    """A queue of ticket ids (webhook, poller) drained one ticket at a time."""

    def __init__(self, ctx: Context, runner: Runner) -> None:
        self.ctx = ctx
        self.runner = runner
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def submit_threadsafe(self, ticket_id: int) -> None:
        """From the HTTP thread: queue a ticket announced by the webhook."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self.queue.put_nowait, ticket_id)

    async def run(self) -> None:
        poll = self.ctx.cfg.automation.odoo_poll_seconds
        tasks = [asyncio.create_task(self._drain())]
        if poll:
            tasks.append(asyncio.create_task(self._poll(poll)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def _poll(self, every: float) -> None:
        while True:
            try:
                await self._poll_once()
            except BridgeError as exc:
                log.debug("odoo tickets: poll failed: %s", exc)
            await asyncio.sleep(every)

    async def _poll_once(self) -> None:
        desk, meta = self.ctx.desk, self.ctx.store.meta
        after = meta.get(POLL_CHECKPOINT)
        if after is None:  # first run: only tickets created from now on
            meta.put(POLL_CHECKPOINT, await self.ctx.odoo(desk.newest_ticket_id))
            return
        cutoff = time.time() - self.ctx.cfg.automation.odoo_min_age_seconds
        before = datetime.fromtimestamp(cutoff, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        for ticket_id in await self.ctx.odoo(desk.tickets_after, after, before):
            await self.queue.put(ticket_id)
            meta.put(POLL_CHECKPOINT, ticket_id)

    async def _drain(self) -> None:
        while True:
            ticket_id = await self.queue.get()
            try:
                await self.process(ticket_id)
            except BridgeError as exc:
                log.warning("odoo ticket %s: not processed now (%s); the poller retries", ticket_id, exc)
            except Exception:  # one ticket must not stop the feed
                log.exception("odoo ticket %s: unexpected error", ticket_id)

    async def process(self, ticket_id: int) -> str:
        """Run one ticket through the playbook; returns how it ended."""
        key = job_key(ticket_id)
        job = self.runner.load_key(key)
        if job.status in ("done", "quarantined"):
            return "already handled"
        info = await self.ctx.odoo(self.ctx.desk.ticket_request, ticket_id)
        if info is None:
            return "no such ticket"
        if info["from_email"]:
            return "created from an email: handled on the email path"
        if not job.results:
            job.results = {
                "origin": "odoo",
                "guard": {"action": GuardAction.PROCESS.value, "reason": ""},
                "ticket": {"ticket": ticket_id, "new": True},
                "requester": requester(info),
            }
            self.ctx.checkpoint(job, durable=True)
        outcome = await self.runner.process(as_request(ticket_id, info))
        return outcome.status
