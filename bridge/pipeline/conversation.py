"""What a change in Odoo means for the customer and for Slack: an agent's comment becomes an
email, a ticket reaching a closed stage gets the closing email once, assignment and reopening
reach the ticket's Slack thread.

Everything here is decided against the ticket record (bridge/ticket_record.py) and queued in the
outbox under keys derived from Odoo's ids and stamps, so reading the same change twice (the
watcher's look-back window, a restart) queues nothing new.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from bridge.errors import RejectedByService
from bridge.mail.compose import MessageKind
from bridge.mail.htmltext import html_to_text
from bridge.mail.thread_ids import ticket_from_message_id
from bridge.models import Attachment
from bridge.odoo.changes import ChatterMessage, OdooChanges, TicketState
from bridge.pipeline.context import Context
from bridge.pipeline.effects import mail_effect
from bridge.ratings import links as rating_links
from bridge.ticket_record import TicketRecord, reply_target

log = logging.getLogger("bridge.conversation")


def agent_reply_key(odoo_id: int) -> str:
    return f"agent-reply:{odoo_id}"


def within_budget(files: list[Attachment], budget: int) -> tuple[list[Attachment], list[Attachment]]:
    """The files that fit ``budget`` bytes in their order, and those left out."""
    kept: list[Attachment] = []
    left: list[Attachment] = []
    used = 0
    for attachment in files:
        if used + attachment.size <= budget:
            kept.append(attachment)
            used += attachment.size
        else:
            left.append(attachment)
    return kept, left


def closing_effects(ctx: Context, ticket_id: int, *, by: str = "", by_user_id: str = "",
                    automatic: bool = False, template: str = "closed", by_bridge: bool = False) -> bool:
    """The ticket reached a closed stage: record it, tell its Slack thread, and queue the closing
    email once for this closure (none when the bridge's automation closed it: its answer was the
    outcome mail). Called by the watcher and by whoever in the bridge closes a ticket; nothing
    happens when the record already says closed. ``by_user_id``/``automatic``: the bridge closed
    it (``by_bridge``: some other part of the bridge did); ``template``: the follow-ups close with
    ``closed_no_response``, sent whatever ``closing_email`` says."""
    record = ctx.tickets.get(ticket_id)
    if record is None or record.odoo.get("closed"):
        return False
    closures = int(record.odoo.get("closures", 0)) + 1
    ctx.tickets.update_odoo(ticket_id, closed=True, closures=closures, closed_at=time.time(),
                            by_bridge=by_bridge or bool(by_user_id) or automatic)
    key = f"closed:{ticket_id}:{closures}"
    if not automatic:  # the automation's own result is already in the thread
        ctx.notify("resolved", ticket_id, key, by=by, by_user_id=by_user_id)
    cfg = ctx.cfg.conversation
    if automatic or not record.customer_email or template == "closed" and (
            not cfg.enabled or not cfg.closing_email or cfg.send != "bridge"):
        return True
    values: dict[str, Any] = {"reopen_days": _days(cfg.reopen_within_days) if cfg.reopen_stage else 0,
                              "rating_good_url": "", "rating_bad_url": ""}
    if template == "closed" and ctx.cfg.satisfaction.enabled:
        values.update(rating_links(ctx.cfg.satisfaction.base_url, ctx.composer.secret, ticket_id, closures))
    try:
        mail = ctx.composer_for(record.mailbox).reply(reply_target(record), ticket_id, template=template, kind=MessageKind.CLOSING_NOTICE,
                                  values=values)
    except RejectedByService as exc:
        log.warning("ticket %s: closing email not sent: %s", ticket_id, exc)
        return True
    if ctx.outbox.enqueue(mail_effect(f"{key}:mail", mail, ticket_id, key)):
        ctx.store.remember_message(mail.message_id, ticket_id, "out")
        log.info("ticket %s: closed; closing email queued as %s", ticket_id, mail.message_id)
    return True


async def bridge_set_stage(ctx: Context, ticket_id: int, stage: str, *, by: str = "", by_user_id: str = "",
                           automatic: bool = False, template: str = "closed", by_bridge: bool = False) -> bool:
    """Move a ticket to a stage for the bridge (automation, a Slack button) and keep the record
    in step, so the watcher does not report the bridge's own change; a closed stage counts as a
    closure (closing_effects). Whether the stage is a closed one."""
    stage_id = await ctx.odoo(ctx.desk.set_stage, ticket_id, stage)
    closed = await ctx.odoo(ctx.desk.stage_closed, stage_id)
    ctx.tickets.update_odoo(ticket_id, stage_id=stage_id, by_bridge=True)
    if closed:
        closing_effects(ctx, ticket_id, by=by, by_user_id=by_user_id, automatic=automatic, template=template,
                        by_bridge=True)
    return closed


def _days(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


class Conversation:
    """Applies what the watcher read; every method is safe to call again with the same read."""

    def __init__(self, ctx: Context, changes: OdooChanges) -> None:
        self.ctx = ctx
        self.changes = changes

    def _ours(self, message_id: str) -> bool:
        """A Message-ID the bridge minted: the comment was already emailed (its id written back)."""
        if not message_id:
            return False
        known = self.ctx.store.messages.get(message_id)
        if known is not None:
            return known.get("dir") == "out"
        composer = self.ctx.composer
        return ticket_from_message_id(message_id, composer.domain, composer.secret) is not None

    async def agent_comments(self, messages: list[ChatterMessage]) -> int:
        """Email the public comments internal users wrote on the bridge's tickets; how many were queued."""
        ctx = self.ctx
        candidates = [m for m in messages if m.author_partner_id and not self._ours(m.message_id)
                      and ctx.store.outbox.get(agent_reply_key(m.odoo_id)) is None]
        if not candidates:
            return 0
        internal = await ctx.odoo(self.changes.internal_authors, [m.author_partner_id for m in candidates])
        queued = 0
        for message in candidates:
            record = ctx.tickets.get(message.ticket_id)
            if record is None or message.author_partner_id not in internal:
                continue  # not a bridge ticket, or a customer's / portal user's / our own post
            queued += await self._agent_comment(record, message)
        return queued

    async def _agent_comment(self, record: TicketRecord, message: ChatterMessage) -> int:
        ctx, cfg = self.ctx, self.ctx.cfg.conversation
        key = agent_reply_key(message.odoo_id)
        text = html_to_text(message.body).strip()
        ctx.notify("agent_replied", record.ticket_id, key, name=message.author_name, text=text,
                   mailed=cfg.send == "bridge" and bool(record.customer_email))
        if cfg.send != "bridge":
            return 0
        if not record.customer_email:
            log.warning("ticket %s: comment %s not emailed: the ticket has no customer address",
                        record.ticket_id, message.odoo_id)
            return 0
        files = await ctx.odoo(self.changes.attachments, message.attachment_ids)
        kept, left = within_budget(files, cfg.max_attachment_bytes)
        if left:
            names = ", ".join(f.filename for f in left)
            text += f"\n\n(Not attached, too large to email: {names}. Ask us for them if you need them.)"
        try:
            mail = ctx.composer_for(record.mailbox).reply(
                reply_target(record), record.ticket_id, template="agent_reply", kind=MessageKind.AGENT_REPLY,
                values={"reply_text": text or "(no text)", "agent_name": message.author_name},
                attachments=kept, cc=record.cc if cfg.cc else (),
            )
        except RejectedByService as exc:
            log.warning("ticket %s: comment %s not emailed: %s", record.ticket_id, message.odoo_id, exc)
            return 0
        effect = mail_effect(key, mail, record.ticket_id, key, noted=True)
        effect.payload["odoo_message"] = message.odoo_id
        if not ctx.outbox.enqueue(effect):
            return 0
        ctx.store.remember_message(mail.message_id, record.ticket_id, "out")
        log.info("ticket %s: agent comment %s by %s queued as %s (%d attachment(s)%s)", record.ticket_id,
                 message.odoo_id, message.author_name or "?", mail.message_id, len(kept),
                 f", {len(left)} left out" if left else "")
        return 1

    def ticket_states(self, states: list[TicketState], read_at: float) -> int:
        """Compare each ticket with what the bridge last knew; how many had a change worth telling."""
        changed = 0
        for state in states:
            record = self.ctx.tickets.get(state.ticket_id)
            if record is None or float(record.odoo.get("changed_at", 0.0)) > read_at:
                continue  # not ours, or the bridge changed it after this read: the next poll sees it
            changed += self._ticket_state(record, state)
        return changed

    def _ticket_state(self, record: TicketRecord, state: TicketState) -> int:
        ctx, known = self.ctx, record.odoo
        ticket_id = record.ticket_id
        key = f"odoo-change:{ticket_id}:{state.write_date}"
        told = 0
        if state.assignee_id and state.assignee_id != known.get("assignee_id"):
            ctx.notify("assigned", ticket_id, key, assignee=state.assignee)
            told += 1
        update: dict[str, Any] = {"stage_id": state.stage_id, "assignee_id": state.assignee_id}
        if state.closed and not known.get("closed"):
            ctx.tickets.update_odoo(ticket_id, **update)
            closing_effects(ctx, ticket_id, by=state.written_by)
            return told + 1
        if known.get("closed") and not state.closed:
            ctx.notify("reopened", ticket_id, key, by="")
            update["closed"] = False
            told += 1
        if told or any(known.get(name) != value for name, value in update.items()):
            ctx.tickets.update_odoo(ticket_id, **update)
        return told
