"""Tickets created directly in Odoo (portal, web form, agents): announced by the webhook or
found by polling, and run through the same login playbook and reply as emailed tickets.

Each ticket is one job keyed ``odoo-ticket:<id>`` and the feed runs one ticket at a time, so the
webhook and the poller (or two webhook calls) never run a ticket twice at once, and a finished job
is never run again. Tickets with an email on their chatter, or created by the bridge's own Odoo
user (from an email not yet posted on them), belong to the email path and are skipped.
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
POLL_PAGE = 100
QUEUE_SIZE = 1000  # tickets announced by the webhook and not run yet; one more is refused (HTTP 429)
SUBMIT_SECONDS = 2.0  # how long the HTTP thread waits for the event loop to take a ticket
# How process() may end without needing another try: the poller's checkpoint may pass these.
FINISHED = frozenset({"done", "quarantined", "skipped"})


def job_key(ticket_id: int) -> str:
    return f"odoo-ticket:{ticket_id}"


def requester_address(info: dict[str, Any]) -> str:
    """The address the playbook acts on and replies to. For a ticket a portal user opened for
    their own partner that is the user's login, the address Odoo authenticated: the partner's
    email is editable by that same user, so it proves nothing. Otherwise the partner's email."""
    return (info["login"] if info["by_portal_customer"] else info["email"]).strip()


def as_request(ticket_id: int, info: dict[str, Any]) -> InboundEmail:
    """The ticket seen as the request it stands for, so the same stages can run on it."""
    return InboundEmail(
        key=job_key(ticket_id), message_id=None, from_name=info["name"], from_addr=requester_address(info).lower(),
        reply_to=None, to=(), cc=(), subject=info["subject"], text=html_to_text(info["description"]),
        html="", attachments=(), in_reply_to=None, references=(), date=None, headers={}, size=0,
    )


def requester(info: dict[str, Any]) -> dict[str, Any]:
    """Who asked: trusted only when a portal user opened the ticket for their own partner, and
    then as their login (see requester_address)."""
    address = requester_address(info)
    if info["by_portal_customer"]:
        if "@" not in address:
            return {"trusted": False, "reason": "created in the Odoo portal by a user whose login is not an email"}
        reason = "created in the Odoo portal by the customer's own user"
        email = info["email"].strip()
        if email.lower() != address.lower():
            reason += (f"; the customer's email ({email or 'none'}) is not the portal login, "
                       f"so the login ({address}) is used")
        return {"trusted": True, "reason": reason}
    if not address:
        return {"trusted": False, "reason": "the ticket has no customer email"}
    return {"trusted": False, "reason": "created in Odoo by someone other than the customer: "
                                        "the requester cannot be verified"}


def _not_ours(info: dict[str, Any] | None) -> str:
    """Why the feed must not run this ticket ("" when it must)."""
    if info is None:
        return "no such ticket"
    if info["by_bridge"]:
        return "created by the bridge from an email: handled on the email path"
    if info["from_email"]:
        return "created from an email: handled on the email path"
    return ""


class OdooTicketFeed:
    """Ticket ids announced by the webhook (a bounded queue) or found by the poller, run one at a time."""

    def __init__(self, ctx: Context, runner: Runner, queue_size: int = QUEUE_SIZE) -> None:
        self.ctx = ctx
        self.runner = runner
        self.queue: asyncio.Queue[int] = asyncio.Queue(maxsize=queue_size)
        self._one_at_a_time = asyncio.Lock()
        self._not_run = 0  # announced tickets taken in and not yet run
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def idle(self) -> bool:
        """Every announced ticket has been run (or none was announced)."""
        return self._not_run == 0

    def submit_threadsafe(self, ticket_id: int) -> bool:
        """From the HTTP thread: queue a ticket announced by the webhook. False when it was not
        queued (the queue is full, or the loop did not take it in time): the caller refuses the call."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._offer(ticket_id), self._loop)
        try:
            return future.result(timeout=SUBMIT_SECONDS)
        except TimeoutError:
            future.cancel()
            return False

    async def _offer(self, ticket_id: int) -> bool:
        try:
            self.queue.put_nowait(ticket_id)
        except asyncio.QueueFull:
            return False
        self._not_run += 1
        return True

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
        """Run the tickets created since the checkpoint, oldest first, and move the checkpoint past
        each finished one until the first that is not (deferred, or Odoo failed): that one and
        those after it are seen again on the next poll, where finished ones are skipped at once."""
        desk, meta = self.ctx.desk, self.ctx.store.meta
        after = meta.get(POLL_CHECKPOINT)
        if after is None:  # first run: only tickets created from now on
            meta.put(POLL_CHECKPOINT, await self.ctx.odoo(desk.newest_ticket_id))
            return
        cutoff = time.time() - self.ctx.cfg.automation.odoo_min_age_seconds
        before = datetime.fromtimestamp(cutoff, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        blocked = False
        while True:
            page = await self.ctx.odoo(desk.tickets_after, after, before, POLL_PAGE)
            for ticket_id in page:
                finished = await self._run(ticket_id) in FINISHED
                blocked = blocked or not finished
                if not blocked:
                    meta.put(POLL_CHECKPOINT, ticket_id)
            if len(page) < POLL_PAGE:
                return
            after = page[-1]  # a full page: read on past it, whatever the checkpoint

    async def _drain(self) -> None:
        while True:
            ticket_id = await self.queue.get()
            try:
                if await self._run(ticket_id) not in FINISHED and not self.ctx.cfg.automation.odoo_poll_seconds:
                    log.warning("odoo ticket %s: not finished, and not tried again: automation.odoo_poll_seconds "
                                "is 0", ticket_id)
            finally:
                self._not_run -= 1

    async def _run(self, ticket_id: int) -> str:
        """process() under the feed's lock (the webhook's drain and the poller share it); how it ended."""
        async with self._one_at_a_time:
            try:
                return await self.process(ticket_id)
            except BridgeError as exc:
                log.warning("odoo ticket %s: not processed now (%s)", ticket_id, exc)
            except Exception:  # one ticket must not stop the feed
                log.exception("odoo ticket %s: unexpected error", ticket_id)
            return "deferred"

    async def process(self, ticket_id: int) -> str:
        """Run one ticket through the playbook; how it ended: done, quarantined, skipped (not ours
        to run) or deferred (to be tried again)."""
        key = job_key(ticket_id)
        job = self.runner.load_key(key)
        if job.status in ("done", "quarantined"):
            return job.status
        info = await self.ctx.odoo(self.ctx.desk.ticket_request, ticket_id)
        skip = _not_ours(info)
        if info is None or skip:
            log.debug("odoo ticket %s: skipped: %s", ticket_id, skip)
            return "skipped"
        if not job.results:
            job.results = {
                "origin": "odoo",
                "guard": {"action": GuardAction.PROCESS.value, "reason": ""},
                "ticket": {"ticket": ticket_id, "new": True},
                "requester": requester(info),
            }
            self.ctx.checkpoint(job, durable=True)
        outcome = await self.runner.process(as_request(ticket_id, info))
        if outcome.status not in FINISHED:
            log.info("odoo ticket %s: %s (%s)", ticket_id, outcome.status, outcome.reason)
        return outcome.status
