"""Files too large for a ticket: left off it, listed in an internal note, and the sender told once.

The limits are ``tickets.max_attachment_bytes`` (each file) and ``tickets.max_total_attachment_bytes``
(all files of one email), decided in the email's order: a file over the first is left out, and
files are kept while the total stays within the second (a later, smaller file may still fit).
The ticket and the email's text are posted all the same. The reply is decided as the
acknowledgement is: only for mail the guard lets us answer, within the reply cap, once per email
(a keyed outbox effect with a Message-ID made from the email's key).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from bridge.config import TicketsConfig
from bridge.errors import RejectedByService
from bridge.mail.compose import MessageKind
from bridge.models import Attachment, GuardAction
from bridge.pipeline.context import Context
from bridge.pipeline.effects import mail_effect
from bridge.pipeline.job import Job
from bridge.pipeline.outbox import Effect
from bridge.pipeline.reply_cap import reply_cap_allows, reply_refused

log = logging.getLogger("bridge.pipeline")

TEMPLATE = "attachments_left_out"
MAX_NAME_IN_REPLY = 80  # characters of a file name repeated to the sender
MAX_LISTED = 20  # files named in the reply and the note; the rest are counted


@dataclass(frozen=True)
class LeftOut:
    """A file not put on the ticket, and why, in words for the sender."""

    attachment: Attachment
    reason: str


def shown_size(size: int) -> str:
    """A size as mail clients show it: MB of 2^20 bytes with one decimal unless whole, KB (rounded
    up) below a megabyte."""
    if size < 1 << 20:
        return f"{-(-size // 1024)} KB"
    value = size / (1 << 20)
    return f"{value:.0f} MB" if value == int(value) else f"{value:.1f} MB"


def within_limits(attachments: Sequence[Attachment], cfg: TicketsConfig) -> tuple[list[Attachment], list[LeftOut]]:
    """The files that go on the ticket, in order, and those left out with the reason."""
    kept: list[Attachment] = []
    left: list[LeftOut] = []
    used = 0
    for attachment in attachments:
        if attachment.size > cfg.max_attachment_bytes:
            left.append(LeftOut(attachment, f"larger than {shown_size(cfg.max_attachment_bytes)}, the limit per file"))
        elif used + attachment.size > cfg.max_total_attachment_bytes:
            total = shown_size(cfg.max_total_attachment_bytes)
            left.append(LeftOut(attachment, f"the files of one email may be {total} together at most"))
        else:
            kept.append(attachment)
            used += attachment.size
    return kept, left


def _listed(left: list[LeftOut]) -> list[dict[str, str]]:
    """The left-out files as the templates and the note show them (names cut to one short line)."""
    files = []
    for item in left[:MAX_LISTED]:
        name = item.attachment.filename
        shown = name if len(name) <= MAX_NAME_IN_REPLY else name[: MAX_NAME_IN_REPLY - 1] + "…"
        files.append({"name": shown, "size": shown_size(item.attachment.size), "reason": item.reason})
    if len(left) > MAX_LISTED:
        rest = left[MAX_LISTED:]
        files.append({"name": f"{len(rest)} more file(s)", "size": shown_size(sum(i.attachment.size for i in rest)),
                      "reason": "left out for the same reasons"})
    return files


class LeftOutStage:
    """Say which files the post stage left off the ticket: an internal note on the ticket, and a
    reply to the sender when the acknowledgement's rules would allow one."""

    name = "left_out"
    journal = False  # its note and reply are keyed outbox effects: a re-run after a crash queues nothing twice

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        email, ticket = job.email_and_ticket()
        if job.result("guard").get("action") == GuardAction.BOUNCE.value:
            return {}  # a bounce is recorded as a note without its files
        _, left = within_limits(email.attachments, ctx.cfg.tickets)
        if not left:
            return {}
        files = _listed(left)
        replied, why_not = self._reply(job, ctx, ticket, files)
        log.info("%s: %d file(s) left off ticket %s (too large)%s", job.key, len(left), ticket,
                 "" if replied else f"; sender not told: {why_not}")
        marker = f"left-out:{email.key}"
        items = "".join(f"<li>{escape(file['name'])} ({file['size']}): {escape(file['reason'])}</li>" for file in files)
        told = (f"The sender is told by email ({escape(replied)})." if replied
                else f"The sender is not told: {escape(why_not)}.")
        body = (f"<p><b>Files left out</b> of this email, too large for the ticket:</p><ul>{items}</ul>"
                f"<p>{told}<br/>{escape(marker)}</p>")
        ctx.outbox.enqueue(Effect(marker, "odoo_note", {"ticket": ticket, "body": body, "marker": marker,
                                                         "email_key": email.key}))
        return {"left_out": len(left), "reply": replied, "not_told": why_not}

    @staticmethod
    def _reply(job: Job, ctx: Context, ticket: int, files: list[dict[str, str]]) -> tuple[str, str]:
        """Queue the reply; its Message-ID, or "" and why there is none."""
        email = job.email
        assert email is not None
        key = f"left-out-reply:{email.key}"
        if job.resumed and key in ctx.store.outbox:  # queued before a restart
            return ctx.store.outbox[key]["payload"]["message_id"], ""
        refused = reply_refused(job, email)
        if refused:
            return "", refused
        if not reply_cap_allows(ctx, email.from_addr):
            return "", "reply cap reached"
        limits = ctx.cfg.tickets
        values = {"files": files, "max_file": shown_size(limits.max_attachment_bytes),
                  "max_total": shown_size(limits.max_total_attachment_bytes)}
        try:
            mail = ctx.composer_for(email.mailbox).reply(email, ticket, template=TEMPLATE,
                                                         kind=MessageKind.FILES_LEFT_OUT, values=values, seed=key)
        except RejectedByService as exc:  # an address no reply can be composed for
            return "", str(exc)
        if ctx.outbox.enqueue(mail_effect(key, mail, ticket, email.key, noted=True), known_new=not job.resumed):
            ctx.store.remember_message(mail.message_id, ticket, "out")
        return mail.message_id, ""
