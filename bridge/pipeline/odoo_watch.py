"""The Odoo change watcher: an intake beside IMAP that polls Odoo for agents' comments and ticket
changes on a timer (or at once when ``POST /webhook/odoo`` pokes it) and hands them to
bridge/pipeline/conversation.py.

Each poll reads the records written since the checkpoint (bridge/odoo/changes.py says why by
``write_date`` with a look-back and paged by id), comments first so an answer goes out before the
closing email. Their effects are queued in the outbox (committed) while the page is handled;
only after the whole poll does the checkpoint move, to the newest stamp read less the look-back,
and never backwards. A crash or an Odoo outage anywhere repeats reads, never skips them, and the
outbox keys make the repeats do nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from bridge.aio import wait_event
from bridge.errors import BridgeError
from bridge.odoo.changes import OdooChanges
from bridge.pipeline.context import Context
from bridge.pipeline.conversation import Conversation

log = logging.getLogger("bridge.odoo_watch")

CHECKPOINT = "odoo_watch"
_STAMP = "%Y-%m-%d %H:%M:%S"


def earlier(stamp: str, seconds: float) -> str:
    """An Odoo UTC stamp moved back by ``seconds``."""
    return (datetime.strptime(stamp[:19], _STAMP) - timedelta(seconds=seconds)).strftime(_STAMP)


@dataclass
class PollReport:
    """What one poll did: for logs, the bench and tests."""

    pages: int = 0  # search_read pages (look-ups of authors and files come on top)
    messages: int = 0
    tickets: int = 0
    emailed: int = 0
    changed: int = 0
    since: str = ""


class OdooWatcher:
    """Polls every ``conversation.poll_seconds``; ``poke_threadsafe`` (the webhook) polls at once."""

    def __init__(self, ctx: Context, changes: OdooChanges) -> None:
        self.ctx = ctx
        self.changes = changes
        self.conversation = Conversation(ctx, changes)
        self.wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.polls = 0

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def poke_threadsafe(self) -> None:
        """From the HTTP thread: something changed in Odoo, look now."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.wake.set)

    async def run(self) -> None:
        self.bind(asyncio.get_running_loop())
        every = self.ctx.cfg.conversation.poll_seconds
        failing = False
        while True:
            self.wake.clear()
            try:
                report = await self.poll_once()
                if failing:
                    log.info("odoo watch: polling again; nothing was skipped")
                failing = False
                if report.emailed or report.changed:
                    log.info("odoo watch: %d comment(s) emailed, %d ticket change(s) told (%d pages read)",
                             report.emailed, report.changed, report.pages)
            except BridgeError as exc:  # one line per outage; the checkpoint waits meanwhile
                (log.debug if failing else log.warning)("odoo watch: poll failed, trying every %.0f s: %s",
                                                        every, exc)
                failing = True
            await wait_event(self.wake, every)

    async def poll_once(self) -> PollReport:
        """One poll; the checkpoint moves only when every page of it has been handled."""
        ctx, cfg = self.ctx, self.ctx.cfg.conversation
        report = PollReport()
        saved = ctx.store.meta.get(CHECKPOINT) or {}
        since = saved.get("since")
        if not since:  # the first watch: changes from now on, not the whole history
            since = await ctx.odoo(self.changes.newest_write_date)
            ctx.store.meta.put(CHECKPOINT, {"since": since})
            report.pages, report.since = 2, since
            return report
        read_at = time.time()
        newest = since
        after = 0
        while True:
            page = await ctx.odoo(self.changes.messages, since, after, cfg.page_size)
            report.pages += 1
            report.messages += len(page)
            report.emailed += await self.conversation.agent_comments(page)
            newest = max([newest, *(m.write_date for m in page)])
            if len(page) < cfg.page_size:
                break
            after = page[-1].odoo_id
        after = 0
        while True:
            states = await ctx.odoo(self.changes.tickets, since, after, cfg.page_size)
            report.pages += 1
            report.tickets += len(states)
            report.changed += self.conversation.ticket_states(states, read_at)
            newest = max([newest, *(s.write_date for s in states)])
            if len(states) < cfg.page_size:
                break
            after = states[-1].ticket_id
        moved = max(since, earlier(newest, cfg.lookback_seconds))
        if moved != since:
            ctx.store.meta.put(CHECKPOINT, {"since": moved})
        report.since = moved
        self.polls += 1
        return report
