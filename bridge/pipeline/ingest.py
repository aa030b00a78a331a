"""The ordered stages that turn one inbound email into a ticket or a follow-up, and an answer.

    guard → route → ticket → post → record → reopen → login → categorise → priority → assign → acknowledge
          → left out (files too large for the ticket) → notify

Each stage returns a small result that the runner journals before the next one starts; a stage
that already has a result is never run again, so a restarted bridge resumes mid-way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from datetime import UTC, datetime
from html import escape
from typing import Any

from bridge.ascii import ascii_lower
from bridge.automation.playbook import LoginStage
from bridge.errors import RejectedByService
from bridge.mail.bounces import Suppressions, read_bounce
from bridge.mail.compose import MessageKind
from bridge.mail.guard import classify
from bridge.mail.htmltext import text_to_html
from bridge.mail.inline_images import chatter_html, images_html
from bridge.mail.reply_text import new_text
from bridge.mail.thread_ids import ticket_from_body, ticket_from_message_id, ticket_from_subject
from bridge.models import Attachment, GuardAction, InboundEmail
from bridge.odoo.rpc import odoo_time
from bridge.odoo.tickets import ticket_name
from bridge.pipeline.assign import AssignStage
from bridge.pipeline.categorise import CategoriseStage
from bridge.pipeline.context import Context
from bridge.pipeline.conversation import bridge_set_stage
from bridge.pipeline.effects import mail_effect
from bridge.pipeline.job import Job
from bridge.pipeline.left_out import LeftOutStage, within_limits
from bridge.pipeline.outbox import Effect
from bridge.pipeline.reply_cap import reply_cap_allows, reply_refused
from bridge.pipeline.stage import Quarantine, Stage
from bridge.sla.priority import PriorityStage

log = logging.getLogger("bridge.pipeline")

def _odoo_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S")


def message_body(email: InboundEmail, *, follow_up: bool = False, attachments: Sequence[Attachment] = ()) -> str:
    """The chatter body: the email's text, escaped; HTML from email is never passed through.

    A follow-up shows only the customer's new words (bridge/mail/reply_text.py); the whole email
    follows in a block Odoo's chatter folds away behind its "…" button (data-o-mail-quote, as
    Odoo's own mail gateway marks quoted history), so nothing the customer sent is lost.
    The inline images among ``attachments`` (the files posted with it) are shown where the HTML
    placed them, in the text of the HTML (bridge/mail/inline_images.py); on a follow-up cut
    short they follow the new words."""
    text = email.text.strip() or "(empty message)"
    images = [attachment for attachment in attachments if attachment.content_id]
    whole = chatter_html(email.html, images) if images else text_to_html(text)
    if not follow_up:
        return whole
    reply = new_text(email.text, email.html)
    if not reply.quoted and not reply.signature:
        return whole
    return (f"{text_to_html(reply.text.strip() or '(empty message)')}{images_html(images)}"
            f'<blockquote data-o-mail-quote="1" data-o-mail-quote-node="1">{text_to_html(text)}</blockquote>')


async def customer_partner(ctx: Context, email: InboundEmail) -> int | None:
    """The sender's res.partner (found or created); None for mail without a usable sender."""
    if "@" not in email.from_addr:
        return None
    return await ctx.odoo(ctx.desk.find_or_create_partner, email.from_addr, email.from_name)


class GuardStage:
    """Decide whether the email may be answered, only recorded, or must not be recorded."""

    name = "guard"
    journal = False

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        assert job.email is not None
        verdict = classify(job.email, ctx.cfg.guard, ctx.guard, ctx.cfg.automation.sender.trusted_authserv_ids)
        if verdict.action is GuardAction.DROP:
            raise Quarantine(verdict.reason, folder=verdict.folder)
        if verdict.action is GuardAction.RECORD_ONLY:
            log.info("%s: recorded without reply: %s", job.key, verdict.reason)
        if verdict.action is GuardAction.BOUNCE:
            return {"action": verdict.action.value, "reason": verdict.reason, "about": verdict.about}
        if verdict.spam:
            return {"action": verdict.action.value, "reason": verdict.reason, "spam": True}
        if verdict.unverified:
            return {"action": verdict.action.value, "reason": verdict.reason, "unverified": True}
        return {"action": verdict.action.value, "reason": verdict.reason}


FORCED_NEW = "replay --new-ticket"  # the route of an email `bridge replay --new-ticket` put back


class RouteStage:
    """Find the ticket this email continues: headers first, then the subject tag (customer only)."""

    name = "route"
    journal = False

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        email = job.email
        assert email is not None
        if job.result("replay").get("new_ticket"):
            log.warning("%s: replayed with --new-ticket: a new ticket, not the one Odoo holds it on (%s)",
                        job.key, job.result("replay").get("previous") or "none known")
            return {"ticket": None, "via": FORCED_NEW}
        model = ctx.desk.profile.model
        refs = list(email.thread_ids[-ctx.cfg.tickets.max_references :])
        known = await ctx.odoo(ctx.desk.find_messages, [email.key, *refs])
        for message in known:
            if message.get("message_id") == email.key and message.get("model") == model:
                return {"ticket": message["res_id"], "via": "already in Odoo", "posted": True}
        about = job.result("guard").get("about")
        if about:  # a bounce of our own mail belongs to the ticket that mail was sent on
            local = ctx.store.messages.get(about)
            ticket = local["ticket"] if local else ticket_from_message_id(about, ctx.composer.domain,
                                                                          ctx.composer.secret)
            if ticket and await self._exists(ctx, ticket):
                return {"ticket": ticket, "via": "bounce"}
            raise Quarantine(f"{job.result('guard').get('reason')}: its ticket is not known")

        found, via = await self._continued(ctx, email, refs, known, job.key)
        if found and await self._closed_too_long(ctx, found):
            log.info("%s: ticket %s was closed more than %g days ago: opening a new ticket that follows it",
                     job.key, found, ctx.cfg.conversation.reopen_within_days)
            return {"ticket": None, "via": "new", "follows": found}
        if found:
            return {"ticket": found, "via": via}
        return {"ticket": None, "via": "new"}

    async def _continued(self, ctx: Context, email: InboundEmail, refs: list[str], known: list[dict],
                         key: str) -> tuple[int | None, str]:
        """The existing ticket this email answers, by its headers, the signed marker of our mail it
        quotes, or (its customer only) the subject tag."""
        model = ctx.desk.profile.model
        for ref in reversed(refs):
            local = ctx.store.messages.get(ref)
            ticket = local["ticket"] if local else ticket_from_message_id(
                ref, ctx.composer.domain, ctx.composer.secret
            )
            if ticket and await self._exists(ctx, ticket):
                return ticket, "references"
        for message in known:
            if message.get("model") == model and message.get("res_id"):
                if await self._exists(ctx, message["res_id"]):
                    return message["res_id"], "references (Odoo)"
        # Our Message-ID replaced by the provider and References dropped by the client: the
        # signed marker quoted from our mail still names the ticket.
        marked = ticket_from_body(email.text, ctx.composer.secret) or ticket_from_body(email.html, ctx.composer.secret)
        if marked and await self._exists(ctx, marked):
            return marked, "body marker"

        tagged = ticket_from_subject(email.subject, ctx.tag_prefixes)
        if tagged:
            owner = await ctx.odoo(ctx.desk.ticket_customer_email, tagged)
            if owner and owner.lower() == email.from_addr.lower():
                return tagged, "subject tag"
            log.warning(
                "%s: subject names ticket %s but %s is not its customer: opening a new ticket",
                key,
                tagged,
                email.from_addr or "(no sender)",
            )
        return None, ""

    @staticmethod
    async def _closed_too_long(ctx: Context, ticket: int) -> bool:
        """Whether a reply to this ticket opens a new one: closed longer than conversation.reopen_within_days."""
        days = ctx.cfg.conversation.reopen_within_days
        if not days:
            return False
        closure = await ctx.odoo(ctx.desk.closure, ticket)
        if not closure or not closure["closed"] or not closure["closed_at"]:
            return False
        closed_at = odoo_time(closure["closed_at"])
        return closed_at is not None and time.time() - closed_at.timestamp() > days * 86400

    @staticmethod
    async def _exists(ctx: Context, ticket: int) -> bool:
        return await ctx.odoo(ctx.desk.ticket_customer_email, ticket) is not None


RESTORED_KEY = "restored"  # meta: {"backup_at", "restored_at"}, written by `bridge state restore`
RESTORE_WATCH_SECONDS = 3600.0


def _after_restore(ctx: Context) -> dict[str, str] | None:
    """Within an hour of `bridge state restore`, a new ticket is looked for before it is made:
    the instance that died after the backup may have created it (from this very email) after
    the backup was taken, and the restored journal cannot know."""
    restored = ctx.store.meta.get(RESTORED_KEY)
    if not restored or time.time() > restored["restored_at"] + RESTORE_WATCH_SECONDS:
        return None
    return {"since": _odoo_time(restored["backup_at"] - 60)}


class TicketStage:
    """Create the ticket for a new conversation, without ever creating it twice."""

    name = "ticket"
    journal = True

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        email = job.email
        assert email is not None
        routed = job.result("route").get("ticket")
        if routed:
            # Found by its own Message-ID after a restart: still new if this job created it, or,
            # after a state restore, if the instance that died made it from this email.
            new = "ticket_started" in job.results
            restored = _after_restore(ctx) if job.result("route").get("via") == "already in Odoo" else None
            if not new and restored:
                partner = await customer_partner(ctx, email)
                new = await ctx.odoo(ctx.desk.find_recent_ticket, partner_id=partner,
                                     subject=ticket_name(email.subject), since=restored["since"]) == routed
            return {"ticket": routed, "new": new}
        partner = await customer_partner(ctx, email)
        name = ticket_name(email.subject)
        forced = job.result("route").get("via") == FORCED_NEW  # never the ticket it was on
        started = job.results.get("ticket_started") or (None if forced else _after_restore(ctx))
        if started:
            # A previous run sent `create` and stopped before journaling its answer.
            found = await ctx.odoo(
                ctx.desk.find_recent_ticket, partner_id=partner, subject=name, since=started["since"]
            )
            if found:
                log.info("%s: recovered ticket %s created before a restart", job.key, found)
                return {"ticket": found, "new": True, "partner": partner}
        job.results["ticket_started"] = {"since": _odoo_time(time.time() - 60)}
        ctx.checkpoint(job, durable=True)
        ticket = await ctx.odoo(
            ctx.desk.create_ticket,
            subject=name,
            description_html=message_body(email),
            partner_id=partner,
            email=email.from_addr,
            name=email.from_name,
            team=ctx.mailbox(email.mailbox).cfg.team,
        )
        log.info("%s: created ticket %s for %s", job.key, ticket, email.from_addr)
        return {"ticket": ticket, "new": True, "partner": partner}


class PostStage:
    """Put the email (text and attachments) on the ticket's chatter with its Message-ID."""

    name = "post"
    journal = True

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        email, ticket = job.email_and_ticket()
        if job.result("route").get("posted"):
            ctx.store.remember_message(email.key, ticket, "in")
            return {"skipped": "already in Odoo"}
        if job.attempts or job.resumed:
            if any(m.get("res_id") == ticket for m in await ctx.odoo(ctx.desk.find_messages, [email.key])):
                ctx.store.remember_message(email.key, ticket, "in")
                return {"skipped": "posted before a restart"}
        if job.result("guard").get("action") == GuardAction.BOUNCE.value:
            return await record_bounce(ctx, job, email, ticket)
        partner = job.result("ticket").get("partner") or await customer_partner(ctx, email)
        kept, left = within_limits(email.attachments, ctx.cfg.tickets)  # the rest: LeftOutStage
        # CPU on long mail (the reply cut, the escaping): off the loop
        body = await ctx.blocking(partial(message_body, email, follow_up=not job.result("ticket").get("new"),
                                          attachments=kept))
        message = await ctx.odoo(
            ctx.desk.post_customer_message,
            ticket,
            body_html=body,
            partner_id=partner,
            email_from=email.from_addr,
            message_id=email.key,
            subject=ticket_name(email.subject),
            attachments=kept,
        )
        ctx.store.remember_message(email.key, ticket, "in")
        return {"message": message, "attachments": len(kept), "left_out": len(left)}


async def record_bounce(ctx: Context, job: Job, email: InboundEmail, ticket: int) -> dict[str, Any]:
    """A bounce of our mail: an internal note on its ticket saying what failed, and a hard
    bounce suppresses the address (bridge/mail/bounces.py)."""
    bounce = read_bounce(email)
    if not bounce.recipient:  # a report that names nobody is about the mail we sent the customer
        record = ctx.tickets.get(ticket)
        bounce = replace(bounce, recipient=record.customer_email if record else "")
    days = ctx.cfg.guard.bounce_suppress_days
    until = ""
    if bounce.hard and bounce.recipient and days:
        entry = Suppressions(ctx.store.meta).suppress(bounce.recipient, days, f"{bounce.status} {bounce.diagnostic}")
        until = _odoo_time(entry["until"])
        log.warning("%s: hard bounce (%s) for %s on ticket %s: not mailed until %s UTC", job.key,
                    bounce.status or "no status", bounce.recipient, ticket, until)
    kind = "hard" if bounce.hard else "soft"
    head = (f"<p><b>Delivery failed</b> ({kind} bounce{', status ' + escape(bounce.status) if bounce.status else ''})"
            f" for {escape(bounce.recipient or 'an unknown recipient')}: mail "
            f"{escape(job.result('guard').get('about', ''))}<br/>")
    head += (f"Not mailed again until {escape(until)} UTC.<br/>" if until else "")
    head += (f"Server: {escape(bounce.diagnostic)}<br/>" if bounce.diagnostic else "")
    body = f"{head}Report {escape(email.key)}</p>{text_to_html(email.text[:4000])}"
    if not ((job.attempts or job.resumed) and await ctx.odoo(ctx.desk.has_note, ticket, email.key)):
        await ctx.odoo(ctx.desk.post_note, ticket, body)
    ctx.store.remember_message(email.key, ticket, "in")
    return {"bounce": {"recipient": bounce.recipient, "status": bounce.status, "hard": bounce.hard,
                       "until": until, "diagnostic": bounce.diagnostic}}


class RecordStage:
    """Keep the bridge's record of the ticket (bridge/ticket_record.py): who the customer is and
    the newest customer Message-ID, for what later answers and Slack threads need."""

    name = "record"
    journal = False

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        email, ticket = job.email_and_ticket()
        origin = job.results.get("origin") or "email"
        new = bool(job.result("ticket").get("new"))
        if job.result("guard").get("action") == GuardAction.BOUNCE.value:
            return {"ticket": ticket, "skipped": "a bounce is not the customer writing"}
        spam = ctx.cfg.guard.spam
        if new and job.result("guard").get("spam"):  # marked for agents to sweep; never answered
            if spam.tag:
                ctx.outbox.enqueue(Effect(f"spam:{email.key}", "odoo_tags", {"ticket": ticket, "tags": [spam.tag]}))
            if spam.stage:
                await ctx.odoo(ctx.desk.set_stage, ticket, spam.stage)
        ctx.tickets.seen(
            ticket, model=ctx.desk.profile.model, origin=origin, mailbox=ctx.mailbox(email.mailbox).name,
            customer_email=email.from_addr if new else "", customer_name=email.from_name if new else "",
            inbound_message_id=email.key if origin == "email" else "", subject=email.subject if new else "",
            cc=tuple(a for a in email.cc if ascii_lower(a) not in ctx.guard.own_addresses) if new else (),
        )
        return {"ticket": ticket}


class ReopenStage:
    """A customer's reply to a closed ticket reopens it (conversation.reopen_stage), and to a
    ticket waiting on them moves it on (sla.resume_stage); a new ticket that follows one closed
    too long ago gets a note on each, pointing to the other. Auto-replies and other mail the
    guard only records never move anything."""

    name = "reopen"
    journal = False  # its writes look first (closure, set_stage, keyed notes): a re-run after a crash is safe

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        email, ticket = job.email_and_ticket()
        follows = job.result("route").get("follows")
        if follows and job.result("ticket").get("new"):
            for on, other, text in ((ticket, follows, "Follows up on closed ticket"),
                                    (follows, ticket, "The customer wrote again; continued in ticket")):
                ctx.outbox.enqueue(Effect(f"follows:{email.key}:{on}", "odoo_note", {
                    "ticket": on, "marker": f"{email.key} {on}", "email_key": email.key,
                    "body": f"<p><b>{text} {other}</b> ({escape(email.key)} {on})</p>"}))
            return {"follows": follows}
        stage = ctx.cfg.conversation.reopen_stage
        resume = ctx.cfg.sla.resume_stage
        if job.result("ticket").get("new") or not (stage or resume):
            return {}
        if job.result("guard").get("action") != GuardAction.PROCESS.value:
            return {"skipped": "not reopened by mail the guard only records"}
        closure = await ctx.odoo(ctx.desk.closure, ticket)
        if not closure:
            return {}
        if closure["closed"] and stage:
            await bridge_set_stage(ctx, ticket, stage)
            ctx.tickets.update_odoo(ticket, closed=False, by_bridge=True)
            ctx.notify("reopened", ticket, job.key, by=email.from_name or email.from_addr)
            log.info("%s: ticket %s reopened into %r by the customer's reply", job.key, ticket, stage)
            return {"reopened": stage}
        waiting = (*ctx.cfg.sla.pause_stages, *ctx.cfg.follow_ups.waiting_stages)
        if resume and not closure["closed"] and waiting and closure["stage_id"] in {
                await ctx.odoo(ctx.desk.stage_id, name) for name in waiting}:
            await bridge_set_stage(ctx, ticket, resume)
            log.info("%s: ticket %s was waiting on the customer, who answered: moved to %r", job.key, ticket, resume)
            return {"resumed": resume}
        return {}


class AcknowledgeStage:
    """Queue the one reply for a new ticket (the login outcome's, else the acknowledgement),
    if the guard and the reply cap allow it."""

    name = "acknowledge"
    journal = False

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        email, ticket = job.email_and_ticket()
        if not job.result("ticket").get("new"):
            return {"skipped": "follow-up on an existing ticket"}
        refused = reply_refused(job, email)
        if refused:
            return {"skipped": refused}
        login = job.result("login")
        if job.results.get("origin") == "odoo" and not login.get("login"):
            return {"skipped": "ticket created in Odoo: Odoo acknowledges it"}
        template, values = "ack", {"lang": "en", "test_mode": False}
        if login.get("login"):
            template, values["lang"] = login["template"], login["lang"]
            if login.get("dry_run"):
                if ctx.cfg.automation.dry_run_reply == "suppress":
                    return {"skipped": "dry run: reply suppressed"}
                values["test_mode"] = True
        elif not ctx.cfg.tickets.acknowledge:
            return {"skipped": "acknowledgements disabled"}
        if not reply_cap_allows(ctx, email.from_addr):
            log.warning("%s: reply cap reached for %s: no reply", job.key, email.from_addr)
            return {"skipped": "reply cap reached"}
        # A replay onto a new ticket is acknowledged again, with that ticket's number.
        key = f"ack:{email.key}" + (f":{ticket}" if job.result("route").get("via") == FORCED_NEW else "")
        kind = MessageKind.ACKNOWLEDGEMENT if template == "ack" else MessageKind.AUTOMATION_OUTCOME
        try:
            mail = ctx.composer_for(email.mailbox).reply(email, ticket, template=template, kind=kind, values=values,
                                                         seed=key)
        except RejectedByService as exc:  # e.g. an address no reply can be composed for
            return not_replied(ctx, job, ticket, str(exc))
        if not ctx.outbox.enqueue(mail_effect(key, mail, ticket, email.key), known_new=not job.resumed):  # queued before a restart
            return {"message_id": ctx.store.outbox[key]["payload"]["message_id"], "to": mail.recipient}
        ctx.store.remember_message(mail.message_id, ticket, "out")
        return {"message_id": mail.message_id, "to": mail.recipient, "template": template}


def not_replied(ctx: Context, job: Job, ticket: int, reason: str) -> dict[str, Any]:
    """No reply can be sent for this email: say why on the ticket (an internal note), finish the job."""
    log.warning("%s: no reply to ticket %s: %s", job.key, ticket, reason)
    marker = f"reply-skipped:{job.key}"
    body = f"<p><b>No reply sent</b> to this email: {escape(reason)}<br/>{escape(marker)}</p>"
    ctx.outbox.enqueue(Effect(marker, "odoo_note", {"ticket": ticket, "body": body, "marker": marker,
                                                     "email_key": job.key}))
    return {"skipped": f"no reply possible: {reason}"}


class NotifyStage:
    """Tell the Notifier (the ticket's Slack thread) about the new ticket or the customer's new
    message; escalations went their own way already. Mail that is only recorded (auto-replies,
    bounces) is not news for anyone."""

    name = "notify"
    journal = False

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]:
        email, ticket = job.email_and_ticket()
        bounced = job.result("post").get("bounce")
        if bounced:
            ctx.notify("bounced", ticket, job.key, **bounced)
            return {"notified": "bounced"}
        if job.result("guard").get("action", GuardAction.PROCESS.value) != GuardAction.PROCESS.value:
            return {"skipped": "recorded only"}
        login = job.result("login")
        if job.result("ticket").get("new"):
            outcome = str(login.get("outcome") or "")
            # the ticket's category (bridge/pipeline/categorise.py), else the login classifier's login/other
            category = job.result("categorise").get("category") or ("login" if login.get("login") else "other")
            ctx.notify("new_ticket", ticket, job.key, category=category,
                       automation=f"{outcome}: {login.get('reason', '')}" if outcome else "", outcome=outcome,
                       automation_reason=str(login.get("reason") or ""),
                       assignee=str(job.result("assign").get("name") or ""))
            return {"notified": "new_ticket"}
        reply = await ctx.blocking(new_text, email.text, email.html)
        ctx.notify("customer_replied", ticket, job.key, name=email.from_name, address=email.from_addr, text=reply.text)
        return {"notified": "customer_replied"}


STAGES: tuple[Stage, ...] = (
    GuardStage(), RouteStage(), TicketStage(), PostStage(), RecordStage(), ReopenStage(), LoginStage(),
    CategoriseStage(), PriorityStage(), AssignStage(), AcknowledgeStage(), LeftOutStage(), NotifyStage(),
)

# A ticket created directly in Odoo is already a ticket with its text on it: only these run.
ODOO_TICKET_STAGES: tuple[Stage, ...] = (RecordStage(), LoginStage(), CategoriseStage(), AssignStage(),
                                         AcknowledgeStage(), NotifyStage())
