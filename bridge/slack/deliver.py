"""The ``slack`` outbox handler: posts the card, thread messages and updates, exactly once.

A post that may already have happened (a retry after a timeout, a reset, a crash) is first looked
for in the channel or thread by the effect key in its metadata; the card's ts is written to the
ticket record durably as soon as Slack answers. Posts are paced per channel (bridge/slack/pacing.py):
a post that must wait raises ``NotYet`` and holds nothing. Card refreshes render the ticket's
current state (priority, assignee, stage from Odoo) and always resend the blocks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bridge.config import Config, MailboxConfig
from bridge.errors import RateLimited, TransientError
from bridge.pipeline.context import Context, in_context
from bridge.pipeline.health import ServiceHealth
from bridge.pipeline.outbox import NotYet
from bridge.slack import cards
from bridge.slack.client import SlackClient
from bridge.slack.mrkdwn import escaped, mention
from bridge.slack.pacing import ChannelPacer
from bridge.store import Table
from bridge.ticket_record import TicketRecord

log = logging.getLogger("bridge.slack")
T = TypeVar("T")


def ticket_url(cfg: Config, model: str, ticket_id: int) -> str:
    """The ticket's form in Odoo's web client (the ``/web#`` form works on 16–19)."""
    base = (cfg.slack.odoo_web_url or cfg.odoo.url).rstrip("/")
    return f"{base}/web#id={ticket_id}&model={model}&view_type=form"


def route(cfg: Config, record: TicketRecord, mailbox: MailboxConfig) -> str:
    """The channel for a ticket: the first route whose criteria all match, else its mailbox's
    channel (the default channel unless the mailbox names one)."""
    team = mailbox.team
    category = str(record.slack.get("category", ""))
    for candidate in cfg.slack.routes:
        if candidate.team and candidate.team != team:
            continue
        if candidate.mailbox and candidate.mailbox not in (mailbox.name, mailbox.imap.folder):
            continue
        if candidate.category and candidate.category != category:
            continue
        return candidate.channel
    return mailbox.slack_channel or cfg.slack.channel


# Posts are spaced when they are sent, Slack counts them when they arrive: a post that waits a
# few milliseconds longer in a worker or on the network than the one before it would arrive
# early and cost a 429 and its Retry-After (measured by bench/slack: ×1.31 of the drain floor
# without the margin, ×1.09 with it).
SEND_JITTER_MARGIN = 0.05


class SlackDelivery:
    """Performs ``slack`` effects with the Slack client, the ticket book and Odoo's ticket state."""

    def __init__(self, ctx: Context, client: SlackClient, health: ServiceHealth, threads: Table) -> None:
        self.ctx = ctx
        self.client = client
        self.health = health
        self.threads = threads  # "<channel>:<ts>" of each card → ticket id (thread messages find their ticket)
        self.pacer = ChannelPacer(ctx.cfg.slack.pace_seconds * (1 + SEND_JITTER_MARGIN))
        self.executor = ThreadPoolExecutor(8, thread_name_prefix="slack")

    async def slack(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking Slack call in the Slack workers; Slack's health follows the answer."""
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            result = await loop.run_in_executor(self.executor, in_context(fn, *args, **kwargs))
        except TransientError as exc:
            self.ctx.calls.record("slack", started, ok=False)
            if not isinstance(exc, RateLimited):  # a 429 is an answer: Slack is up
                self.health.failed(str(exc))
            raise
        except Exception:
            self.ctx.calls.record("slack", started, ok=False)
            raise
        self.health.ok()
        self.ctx.calls.record("slack", started, ok=True)
        return result

    async def handle(self, payload: dict[str, Any], attempt: int) -> None:
        op = payload["op"]
        if op == "ephemeral":
            await self.slack(self.client.ephemeral, payload["channel"], payload["user"], payload["text"],
                             thread_ts=payload.get("thread_ts", ""))
            return
        if op == "alert":
            await self._alert(payload, attempt)
            return
        record = self.ctx.tickets.get(payload["ticket"])
        if record is None:
            log.warning("ticket %s: no record, Slack %s effect dropped", payload["ticket"], op)
            return
        if op == "card":
            await self._card(record, payload, attempt)
        elif op == "thread":
            await self._thread(record, payload, attempt)
        elif op == "decided":
            await self._decided(record, payload)
        elif op == "react":
            await self.slack(self.client.react, payload["channel"], payload["ts"], payload["name"])
        else:
            raise ValueError(f"unknown Slack effect op {op!r}")

    async def _alert(self, payload: dict[str, Any], attempt: int) -> None:
        """A message of its own in the channel, looked for first when it may already be there."""
        channel, key = payload["channel"], payload["effect"]
        if attempt and await self.slack(self.client.find_posted, channel, key, oldest=time.time() - 86400):
            return
        self._pace(channel, key)
        await self.slack(self.client.post_message, channel, text=payload["text"], blocks=payload["blocks"],
                         effect_key=key)

    def _pace(self, channel: str, key: str) -> None:
        at = self.pacer.slot(channel, key)
        if at:
            raise NotYet(at)

    async def _render(self, record: TicketRecord) -> tuple[str, list[dict]]:
        cfg = self.ctx.cfg
        summary = await self.ctx.odoo(self.ctx.desk.ticket_summary, record.ticket_id) or {}
        escalation = record.slack.get("escalation") or {}
        state = cards.CardState(
            ticket_id=record.ticket_id,
            ref=f"{self.ctx.mailbox(record.mailbox).cfg.tag_prefix}{record.ticket_id}",
            url=ticket_url(cfg, record.model, record.ticket_id),
            subject=record.subject or summary.get("name", ""),
            customer_name=record.customer_name or summary.get("partner_name", ""),
            customer_email=record.customer_email or summary.get("partner_email", ""),
            priority=summary.get("priority", ""),
            assignee=summary.get("assignee", ""),
            stage=summary.get("stage", ""),
            automation=str(record.slack.get("automation", "")),
            sla_due=str(record.sla.get("next", "")) if not summary.get("closed") else "",
            category=self._category_label(str(record.slack.get("category", ""))),
            closed=bool(summary.get("closed")),
            escalated=bool(escalation) and not escalation.get("decided"),
        )
        return cards.card(state)

    def _category_label(self, key: str) -> str:
        """The label of the ticket's category for its card; none when categories are off."""
        categories = self.ctx.cfg.categories
        if not categories.enabled:
            return ""
        return next((c.label for c in categories.rules if c.key == key), "")

    async def _ensure_card(self, record: TicketRecord, key: str, attempt: int) -> tuple[str, str, bool]:
        """The card's (channel, ts, posted now); posts it when the ticket has none yet."""
        if record.slack.get("ts"):
            return record.slack["channel"], record.slack["ts"], False
        channel = route(self.ctx.cfg, record, self.ctx.mailbox(record.mailbox).cfg)
        card_key = f"card:{record.ticket_id}"
        ts = ""
        if attempt:
            ts = await self.slack(self.client.find_posted, channel, card_key, oldest=record.created_at - 60)
        posted = not ts
        if not ts:
            text, blocks = await self._render(record)
            self._pace(channel, f"{key}:card")
            answer = await self.slack(self.client.post_message, channel, text=text, blocks=blocks,
                                      effect_key=card_key)
            channel, ts = str(answer.get("channel") or channel), str(answer["ts"])
            log.info("ticket %s: Slack card posted in %s (ts %s)", record.ticket_id, channel, ts)
        self.threads.put(f"{channel}:{ts}", {"ticket": record.ticket_id}, durable=False)
        self.ctx.tickets.update_slack(record.ticket_id, channel=channel, ts=ts, durable=True)
        record.slack.update(channel=channel, ts=ts)
        return channel, ts, posted

    async def _card(self, record: TicketRecord, payload: dict[str, Any], attempt: int) -> None:
        if int(record.slack.get("card_version", 0)) > payload["version"]:
            return  # a newer refresh is queued behind this one in the thread's order
        if not record.slack.get("ts"):
            if not payload["create"]:
                return  # policy needs_human: no thread until a person is needed
            await self._ensure_card(record, payload["effect"], attempt)
            return  # rendered just now: nothing to refresh
        text, blocks = await self._render(record)
        await self.slack(self.client.update_message, record.slack["channel"], record.slack["ts"], text=text,
                         blocks=blocks)

    async def _thread(self, record: TicketRecord, payload: dict[str, Any], attempt: int) -> None:
        key = payload["effect"]
        if not record.slack.get("ts") and not payload["create"]:
            return
        channel, parent, posted = await self._ensure_card(record, key, attempt)
        ts = ""
        if attempt and not posted:
            ts = await self.slack(self.client.find_posted, channel, key, thread_ts=parent)
        if not ts:
            self._pace(channel, key)
            answer = await self.slack(self.client.post_message, channel, text=payload["text"],
                                      blocks=payload["blocks"], thread_ts=parent, effect_key=key,
                                      broadcast=bool(payload.get("broadcast")))
            ts = str(answer["ts"])
        if payload.get("save") == "escalation":
            escalation = dict(record.slack.get("escalation") or {})
            escalation["ts"] = ts
            self.ctx.tickets.update_slack(record.ticket_id, escalation=escalation, durable=True)

    async def _decided(self, record: TicketRecord, payload: dict[str, Any]) -> None:
        escalation = record.slack.get("escalation") or {}
        if not escalation.get("ts") or not record.slack.get("channel"):
            return
        _, blocks = cards.escalation(escalation["reason"], escalation["facts"],
                                        mention(self.ctx.cfg.slack.mention_for(escalation["kind"])),
                                        approvable=bool(escalation.get("approvable")), ticket_id=record.ticket_id)
        blocks = cards.decided(blocks, payload["verdict"], payload["by"], payload["detail"])
        text = escaped(f"Escalation {payload['verdict']}: {escalation['reason']}", 300)
        await self.slack(self.client.update_message, record.slack["channel"], escalation["ts"], text=text,
                         blocks=blocks)
