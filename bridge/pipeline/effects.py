"""The outbox's handlers in one place: send a mail, post a note on a ticket, escalate to a human.

The App owns one ``Effects`` and hands ``handlers`` to the outbox; a new effect kind is one
handler here plus its lane. Every handler is idempotent (see bridge/pipeline/outbox.py): a
mail is re-sent with the same Message-ID, a note looks for its marker before posting again.
"""

from __future__ import annotations

import logging
import time
from html import escape
from typing import Any

from datetime import UTC, datetime

from bridge.errors import Undeliverable
from bridge.mail.bounces import Suppressions
from bridge.mail.compose import OutgoingMail
from bridge.mail.htmltext import text_to_html
from bridge.mail.smtp import SmtpSender
from bridge.notify import Notifier
from bridge.pipeline.context import Context
from bridge.pipeline.outbox import Effect, Handler

log = logging.getLogger("bridge.effects")


def mail_effect(key: str, mail: OutgoingMail, ticket: int, email_key: str, *, noted: bool = False) -> Effect:
    """The ``smtp`` effect that sends a composed mail on a ticket; ``noted``: whoever queues it
    documents it on the ticket itself, so no "sent" note follows."""
    payload = {"raw": mail.raw, "sender": mail.sender, "recipients": mail.recipients, "message_id": mail.message_id,
               "ticket": ticket, "email_key": email_key, "subject": mail.subject, "text": mail.text,
               "template": mail.template, "kind": mail.kind.value}
    if mail.mailbox:
        payload["mailbox"] = mail.mailbox
    if noted:
        payload["noted"] = True
    return Effect(key, "smtp", payload)


def notice_effect(key: str, mail: OutgoingMail) -> Effect:
    """The ``notice`` effect that sends a mail of the bridge's own on no ticket (the digest)."""
    return Effect(key, "notice", {"raw": mail.raw, "sender": mail.sender, "recipients": mail.recipients,
                                  "message_id": mail.message_id, "kind": mail.kind.value, "mailbox": mail.mailbox})


def mail_note(payload: dict[str, Any], *, not_sent: str = "") -> Effect:
    """The internal note that says what the bridge sent on a ticket (or why it could not)."""
    kind = str(payload.get("kind") or "acknowledgement").replace("_", " ")
    what = f"{kind.capitalize()} ({escape(payload.get('template', ''))})"
    to = escape(", ".join(payload["recipients"]))
    head = (f"<b>{what} not sent</b> to {to}: {escape(not_sent)}" if not_sent
            else f"<b>{what} sent</b> to {to}")
    body = (
        f"<p>{head}<br/>Subject: {escape(payload['subject'])}<br/>"
        f"Message-ID: {escape(payload['message_id'])}</p>{text_to_html(payload['text'])}"
    )
    return Effect(
        f"note:{payload['message_id']}",
        "odoo_note",
        {"ticket": payload["ticket"], "body": body, "marker": payload["message_id"],
         "email_key": payload.get("email_key", "")},
    )


class Effects:
    """Performs outbox effects with the App's adapters."""

    def __init__(self, ctx: Context, senders: dict[str, SmtpSender], notifier: Notifier) -> None:
        """``senders``: each mailbox's SMTP sender by name; the first also sends what names none."""
        self.ctx = ctx
        self.senders = senders
        self.notifier = notifier

    @property
    def handlers(self) -> dict[str, Handler]:
        return {"smtp": self.send_mail, "odoo_note": self.post_note, "escalation": self.escalate,
                "odoo_message_id": self.write_message_id, "odoo_tags": self.add_tags, "notice": self.send_notice}

    async def _smtp(self, payload: dict[str, Any]) -> None:
        """Hand the mail to its mailbox's SMTP server (the first mailbox's when it names none),
        the call timed for /metrics."""
        sender = self.senders.get(payload.get("mailbox", "")) or next(iter(self.senders.values()))
        started = time.monotonic()
        try:
            await sender.send(payload["raw"], payload["sender"], payload["recipients"])
        except Exception:
            self.ctx.calls.record("smtp", started, ok=False)
            raise
        self.ctx.calls.record("smtp", started, ok=True)

    async def send_notice(self, payload: dict[str, Any], attempt: int) -> None:
        """Send a mail that is on no ticket. Sent again after a crash mid-send it is the same
        message (its Message-ID is derived from its key), which mail clients show once."""
        await self._smtp(payload)
        log.info("%s %s sent to %d recipient(s)", payload.get("kind", "mail"), payload["message_id"],
                 len(payload["recipients"]))

    async def send_mail(self, payload: dict[str, Any], attempt: int) -> list[Effect]:
        """Send one composed mail; a mail that can never reach this address is skipped and the
        reason noted on the ticket (the ticket exists: a reply problem never undoes it). An address
        that bounced hard lately (bridge/mail/bounces.py) is not mailed: the mail is skipped when it
        is the customer's, a Cc is left off the envelope."""
        odoo_message = payload.get("odoo_message")
        if attempt and odoo_message and await self.ctx.odoo(self.ctx.desk.message_id_of, odoo_message) == \
                payload["message_id"]:  # written back after the send: it went out before a restart
            log.info("ticket %s: %s %s was sent before a restart: not sent again", payload["ticket"],
                     payload.get("kind", "mail"), payload["message_id"])
            return []
        suppressions = Suppressions(self.ctx.store.meta)
        blocked = {address: entry for address in payload["recipients"] if (entry := suppressions.active(address))}
        if payload["recipients"][0] in blocked:
            entry = blocked[payload["recipients"][0]]
            until = datetime.fromtimestamp(entry["until"], UTC).strftime("%Y-%m-%d %H:%M")
            reason = f"the address bounced ({entry['reason'].strip() or 'hard bounce'}); not mailed until {until} UTC"
            log.warning("ticket %s: %s %s not sent: %s", payload["ticket"], payload.get("kind", "mail"),
                        payload["message_id"], reason)
            payload["not_sent"] = reason
            return [mail_note(payload, not_sent=reason)]
        if blocked:
            log.warning("ticket %s: %s %s: %d Cc address(es) left out after a hard bounce", payload["ticket"],
                        payload.get("kind", "mail"), payload["message_id"], len(blocked))
            payload["recipients"] = [a for a in payload["recipients"] if a not in blocked]
        try:
            await self._smtp(payload)
        except Undeliverable as exc:
            log.warning("ticket %s: %s %s not sent: %s", payload["ticket"], payload.get("kind", "mail"),
                        payload["message_id"], exc)
            payload["not_sent"] = str(exc)
            return [mail_note(payload, not_sent=str(exc))]
        log.info("ticket %s: %s %s sent to %s", payload["ticket"], payload.get("kind", "mail"),
                 payload["message_id"], ", ".join(payload["recipients"]))
        self.ctx.tickets.outbound(payload["ticket"], payload["message_id"], kind=payload.get("kind", ""),
                                  template=payload.get("template", ""))
        if payload.get("odoo_message"):  # an agent's comment, emailed: its Message-ID goes back on it
            return [Effect(f"msgid:{payload['odoo_message']}", "odoo_message_id",
                           {"odoo_message": payload["odoo_message"], "message_id": payload["message_id"],
                            "ticket": payload["ticket"]})]
        if payload.get("noted"):  # whoever queued it documents it on the ticket (an agent's reply)
            return []
        return [mail_note(payload)]

    async def add_tags(self, payload: dict[str, Any], attempt: int) -> None:
        """Link tags (found or created by name) to a ticket; linking one already there changes nothing."""
        await self.ctx.odoo(self.ctx.desk.add_tags, payload["ticket"], payload["tags"])

    async def write_message_id(self, payload: dict[str, Any], attempt: int) -> None:
        await self.ctx.odoo(self.ctx.desk.set_message_id, payload["odoo_message"], payload["message_id"])

    async def post_note(self, payload: dict[str, Any], attempt: int) -> None:
        ctx = self.ctx
        if attempt and await ctx.odoo(ctx.desk.has_note, payload["ticket"], payload["marker"]):
            return
        await ctx.odoo(ctx.desk.post_note, payload["ticket"], payload["body"])

    async def escalate(self, payload: dict[str, Any], attempt: int) -> list[Effect]:
        """The Notifier's effects for an escalation, queued atomically with its success."""
        return self.notifier.escalation(payload["ticket"], payload["reason"], payload["facts"],
                                        kind=payload.get("kind", "login_escalated"),
                                        key=payload.get("key") or str(payload["ticket"]))
