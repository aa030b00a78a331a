"""Actions from Slack: Take, Resolve, Approve/Deny on escalated login requests, and replies from the thread.

Slack wants an answer within 3 s, so an action is only accepted there: checked, then written to
the outbox as a ``slack_action`` effect (committed before Slack gets its 200, so a crash after
the acknowledgement loses no click) and performed after it. Performing is safe to repeat: a
decision is recorded on the ticket before anything is done, under the click's own key, so a
retried click resumes it and a second click is told who already decided; the LMS call, the mail
and the notes carry keys of their own. A valid signature proves the request came from Slack, not
that the person may act: approvals and replies are limited to the configured people.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from html import escape
from typing import Any, ClassVar
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier

from bridge.automation.playbook import OUTCOME, action_allowed, lms_action
from bridge.errors import BridgeError, RejectedByService, TransientError
from bridge.mail.compose import MessageKind
from bridge.mail.htmltext import text_to_html
from bridge.pipeline.context import Context
from bridge.pipeline.conversation import bridge_set_stage
from bridge.pipeline.effects import mail_effect
from bridge.pipeline.outbox import Effect
from bridge.slack.client import SlackClient
from bridge.slack.deliver import SlackDelivery
from bridge.slack.notify import SlackNotifier, ephemeral
from bridge.ticket_record import TicketRecord, reply_target

log = logging.getLogger("bridge.slack.actions")

KIND = "slack_action"
GROUP_CACHE_SECONDS = 300.0
_ACTIONS = frozenset({"ticket.take", "ticket.resolve", "login.approve", "login.deny"})


def queue_ticket_mail(ctx: Context, record: TicketRecord, key: str, *, template: str, kind: MessageKind,
                      values: dict[str, Any], noted: bool = False) -> str:
    """Compose a mail to the ticket's customer, threaded in its conversation, and queue it once
    under ``key``; returns its Message-ID (the one queued before, on a retry)."""
    queued = ctx.store.outbox.get(key)
    if queued is not None:
        return str(queued["payload"]["message_id"])
    mail = ctx.composer_for(record.mailbox).reply(reply_target(record), record.ticket_id, template=template, kind=kind, values=values)
    ctx.outbox.enqueue(mail_effect(key, mail, record.ticket_id, key, noted=noted))
    ctx.store.remember_message(mail.message_id, record.ticket_id, "out")
    return mail.message_id


def action_key(kind: str, payload: dict[str, Any]) -> str | None:
    """The durable key of an incoming Slack request, or None when the bridge does nothing with it."""
    if kind == "interactive":
        if payload.get("type") != "block_actions" or not payload.get("actions"):
            return None
        action = payload["actions"][0]
        if action.get("action_id") not in _ACTIONS:
            return None
        return f"slack-action:{action.get('action_ts') or payload.get('trigger_id')}:{payload['user']['id']}"
    if kind == "events":
        if payload.get("type") != "event_callback":
            return None
        return f"slack-event:{payload.get('event_id')}"
    return None


class SlackActions:
    """Accepts Slack requests (from the HTTP thread or the Socket Mode thread) and performs them."""

    def __init__(self, ctx: Context, client: SlackClient, delivery: SlackDelivery, notifier: SlackNotifier) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg.slack
        self.client = client
        self.delivery = delivery
        self.notifier = notifier
        self.bot_user_id = ""  # from auth.test at start: the bridge's own messages are ignored
        self._loop: asyncio.AbstractEventLoop | None = None
        self._groups: dict[str, tuple[float, set[str]]] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    # --- accepting (other threads) ---------------------------------------------------------

    def accept(self, kind: str, payload: dict[str, Any], timeout: float = 2.5) -> bool:
        """Record a request durably for performing after the acknowledgement; True once it is on
        disk (or was not for the bridge), False when that could not be done in time."""
        key = action_key(kind, payload)
        if key is None or not self._wanted(kind, payload):
            return True
        if self._loop is None:
            return False
        effect = Effect(key, KIND, {"kind": kind, "request": payload})

        async def enqueue() -> None:
            self.ctx.outbox.enqueue(effect)

        try:
            asyncio.run_coroutine_threadsafe(enqueue(), self._loop).result(timeout)
        except Exception:  # not recorded: Slack is answered with an error and may send it again
            log.exception("slack: could not record %s", key)
            return False
        return True

    def _wanted(self, kind: str, payload: dict[str, Any]) -> bool:
        """Cheap filter before anything is written: thread messages by people in a bridge thread."""
        if kind != "events":
            return True
        event = payload.get("event") or {}
        if event.get("type") != "message" or event.get("subtype") or event.get("bot_id"):
            return False  # edits, joins, bots (the bridge itself included)
        if not event.get("thread_ts") or event.get("thread_ts") == event.get("ts"):
            return False
        if self.bot_user_id and event.get("user") == self.bot_user_id:
            return False
        return f"{event.get('channel')}:{event.get('thread_ts')}" in self.delivery.threads

    # --- performing (outbox handler, event loop) ----------------------------------------------

    async def perform(self, payload: dict[str, Any], attempt: int) -> list[Effect]:
        request = payload["request"]
        if payload["kind"] == "interactive":
            return await self._block_action(request, attempt)
        return await self._message(request["event"], attempt)

    async def _allowed(self, user: str) -> bool:
        if user in self.cfg.approvers:
            return True
        now = time.monotonic()
        for group_id in self.cfg.approver_groups:
            cached = self._groups.get(group_id)
            if cached is None or now - cached[0] > GROUP_CACHE_SECONDS:
                cached = (now, await self.delivery.slack(self.client.group_members, group_id))
                self._groups[group_id] = cached
            if user in cached[1]:
                return True
        return False

    async def _odoo_user(self, slack_user: str) -> tuple[dict[str, Any] | None, str, str]:
        """The Odoo user behind a Slack user (by email), with the Slack email and name."""
        email, name = await self.delivery.slack(self.client.user_email, slack_user)
        user = await self.ctx.odoo(self.ctx.desk.find_user_by_email, email) if email else None
        return user, email, name or (user or {}).get("name", "") or slack_user

    async def _block_action(self, request: dict[str, Any], attempt: int) -> list[Effect]:
        action = request["actions"][0]
        action_id, user = action["action_id"], request["user"]["id"]
        channel = (request.get("channel") or {}).get("id") or (request.get("container") or {}).get("channel_id", "")
        message = request.get("message") or {}
        thread_ts = message.get("thread_ts") or message.get("ts") or ""
        key = action_key("interactive", request) or ""
        try:
            ticket_id = int(action.get("value") or 0)
        except ValueError:
            ticket_id = 0
        record = self.ctx.tickets.get(ticket_id) if ticket_id else None

        def tell(text: str) -> list[Effect]:
            return [ephemeral(f"{key}:ephemeral", channel, user, text, thread_ts)]

        if record is None:
            return tell("This ticket is not known to the bridge.")
        if action_id in ("login.approve", "login.deny"):
            return await self._decide(record, key, user, approve=action_id == "login.approve", tell=tell)
        odoo_user, email, _ = await self._odoo_user(user)
        if odoo_user is None:
            return tell(f"No Odoo user has your Slack email address ({email or 'none shown to the bridge'}): "
                        "ask an Odoo administrator to add it, then try again.")
        if action_id == "ticket.take":
            await self.ctx.odoo(self.ctx.desk.assign, ticket_id, odoo_user["id"])
            self.ctx.tickets.update_odoo(ticket_id, assignee_id=odoo_user["id"], by_bridge=True)
            log.info("ticket %s: taken from Slack by %s (Odoo user %s)", ticket_id, user, odoo_user["id"])
            return self.notifier.ticket_event("assigned", ticket_id, key, assignee=odoo_user["name"], by_user_id=user)
        closed = await bridge_set_stage(self.ctx, ticket_id, self.cfg.resolved_stage, by=odoo_user["name"],
                                        by_user_id=user)
        self.ctx.outbox.enqueue(Effect(f"{key}:note", "odoo_note", {
            "ticket": ticket_id, "marker": key, "email_key": key,
            "body": f"<p><b>Resolved from Slack</b> by {escape(odoo_user['name'])}<br/>{escape(key)}</p>"}))
        log.info("ticket %s: resolved from Slack by %s", ticket_id, user)
        if closed:  # closing_effects told the thread (once, however often this is retried)
            return []
        return self.notifier.ticket_event("resolved", ticket_id, key, by=odoo_user["name"], by_user_id=user)

    async def _decide(self, record: TicketRecord, key: str, user: str, *, approve: bool,
                      tell: Any) -> list[Effect]:
        """Approve or Deny the open escalation: recorded first, then acted on (idempotently)."""
        ticket_id = record.ticket_id
        if not await self._allowed(user):
            log.warning("ticket %s: %s by %s refused: not an approver", ticket_id,
                        "approve" if approve else "deny", user)
            return tell("Only the configured approvers can approve or deny login requests. Nothing was changed.")
        escalation = dict(record.slack.get("escalation") or {})
        if not escalation.get("approvable"):
            return tell("There is no login request waiting for a decision on this ticket.")
        decided = escalation.get("decided")
        if decided and decided.get("action") != key:
            return tell(f"Already {decided['verdict']} by <@{decided['by']}>. Nothing was changed.")
        verdict = "approved" if approve else "denied"
        if not decided:
            escalation["decided"] = {"verdict": verdict, "by": user, "action": key, "at": time.time()}
            self.ctx.tickets.update_slack(ticket_id, escalation=escalation, durable=True)
        facts = escalation.get("facts") or {}
        _, _, name = await self._odoo_user(user)
        lang = facts.get("language") or "en"
        if approve:
            outcome = await self._approve(record, facts, key, resumed=bool(decided))
            if "refused" in outcome:
                escalation["decided"] = None  # nothing was done: the request stays open
                self.ctx.tickets.update_slack(ticket_id, escalation=escalation, durable=True)
                return tell(f"Not approved: {outcome['refused']}. Nothing was changed; handle it in Odoo.")
            template, detail = f"login_{OUTCOME[outcome['action']]}", outcome["detail"]
        else:
            template, detail = "login_denied", "the customer was told we cannot reactivate the account"
        mailed = "no reply: the ticket has no customer address"
        if record.customer_email:
            try:
                message_id = queue_ticket_mail(self.ctx, record, f"{key}:mail", template=template, noted=True,
                                               kind=MessageKind.AUTOMATION_OUTCOME,
                                               values={"lang": lang, "test_mode": False})
                mailed = f"reply {template} queued to {record.customer_email} (Message-ID {message_id})"
            except RejectedByService as exc:
                mailed = f"no reply sent: {exc}"
        auto = self.ctx.automation
        if auto is not None and approve and auto.cfg.resolved_stage:
            await bridge_set_stage(self.ctx, ticket_id, auto.cfg.resolved_stage, automatic=True)
        self.ctx.outbox.enqueue(Effect(f"{key}:note", "odoo_note", {
            "ticket": ticket_id, "marker": key, "email_key": key,
            "body": (f"<p><b>Login request {verdict} in Slack</b> by {escape(name)} (Slack {escape(user)}): "
                     f"{escape(detail)}<br/>{escape(mailed)}<br/>{escape(key)}</p>")}))
        log.info("ticket %s: login request %s in Slack by %s: %s", ticket_id, verdict, user, detail)
        return self.notifier.ticket_event("decided", ticket_id, key, verdict=verdict, by_user_id=user, detail=detail)

    async def _approve(self, record: TicketRecord, facts: dict[str, Any], key: str, *,
                       resumed: bool) -> dict[str, Any]:
        """The LMS action a person approved, on the account as it is now (not as it was when
        escalated). ``resumed``: this click was recorded before (a retry), so its own LMS action
        may already be in the account's history: the limit was checked then."""
        auto = self.ctx.automation
        if auto is None:
            return {"refused": "the login automation is not configured"}
        account_email = str(facts.get("account") or facts.get("sender") or record.customer_email)
        try:
            account = await self.ctx.service("lms", auto.lms.account, account_email)
        except TransientError:
            raise  # retried by the outbox; the decision stays recorded under this click
        except BridgeError as exc:
            return {"refused": f"LMS check failed: {exc}"}
        if account is None:
            return {"refused": f"no LMS account for {account_email}"}
        if account.status not in ("active", "deactivated"):
            return {"refused": f"the LMS account's status is not one the bridge acts on ({account.raw_status or '?'})"}
        action = "reactivate" if account.status == "deactivated" else "send_reset"
        if not auto.cfg.dry_run and not resumed and not action_allowed(self.ctx, auto, account.email):
            return {"refused": "the automation limit for this account is reached"}
        if auto.cfg.dry_run:
            return {"action": action, "detail": f"{action} (dry run: nothing changed)"}
        done = await lms_action(self.ctx, auto, action, account.email, key=f"{key}:{action}")
        if done.get("transient"):
            raise TransientError(done["failed"], service="lms")  # the click is retried, its decision kept
        if "failed" in done:
            return {"refused": done["failed"]}
        return {"action": action, "detail": f"LMS {action} for {account.email}, reference {done['reference'] or '-'}"}

    async def _message(self, event: dict[str, Any], attempt: int) -> list[Effect]:
        """A person's message in a ticket's thread: a reply to the customer, or a note, or nothing."""
        channel, ts, user = event["channel"], event["ts"], event.get("user", "")
        thread = self.delivery.threads.get(f"{channel}:{event['thread_ts']}")
        record = self.ctx.tickets.get(thread["ticket"]) if thread else None
        if record is None:
            return []
        text = str(event.get("text") or "")
        key = f"slack-msg:{channel}:{ts}"
        prefix = self.cfg.reply_prefix
        if text[: len(prefix)].lower() == prefix.lower():
            return await self._reply(record, key, channel, ts, user, text[len(prefix):].strip(), attempt)
        if not self.cfg.copy_thread_messages:
            return []
        _, _, name = await self._odoo_user(user)
        self.ctx.outbox.enqueue(Effect(f"{key}:note", "odoo_note", {
            "ticket": record.ticket_id, "marker": key, "email_key": key,
            "body": f"<p><b>From Slack</b>, {escape(name)}:</p>{text_to_html(text)}<p>{escape(key)}</p>"}))
        return []

    async def _reply(self, record: TicketRecord, key: str, channel: str, ts: str, user: str,
                     text: str, attempt: int) -> list[Effect]:
        def tell(message: str) -> list[Effect]:
            return [ephemeral(f"{key}:ephemeral", channel, user, message, record.slack.get("ts", ""))]

        if not await self._allowed(user):
            log.warning("ticket %s: reply from Slack by %s refused: not allowed", record.ticket_id, user)
            return tell("Only the configured people can reply to customers from Slack. Nothing was sent.")
        if not text:
            return tell(f"Nothing to send: write your answer after `{self.cfg.reply_prefix}`.")
        if not record.customer_email:
            return tell("This ticket has no customer address to reply to.")
        odoo_user, _, name = await self._odoo_user(user)
        try:
            message_id = queue_ticket_mail(self.ctx, record, f"{key}:mail", template="agent_reply",
                                           kind=MessageKind.AGENT_REPLY, noted=True,
                                           values={"reply_text": text, "agent_name": name})
        except RejectedByService as exc:
            return tell(f"Not sent: {exc}")
        if not (attempt and await self.ctx.odoo(self.ctx.desk.has_note, record.ticket_id, message_id)):
            body = (f"<p><b>Emailed to the customer</b> from Slack by {escape(name)} "
                    f"({escape(record.customer_email)})<br/>Message-ID: {escape(message_id)}</p>{text_to_html(text)}")
            await self.ctx.odoo(self.ctx.desk.post_agent_note, record.ticket_id, body,
                                author_partner_id=(odoo_user or {}).get("partner_id"), message_id=message_id)
        log.info("ticket %s: reply from Slack by %s queued as %s", record.ticket_id, user, message_id)
        return self.notifier.ticket_event("agent_reply", record.ticket_id, key, by_user_id=user,
                                          recipient=record.customer_email, channel=channel, ts=ts)


def parse_interactivity(body: bytes) -> dict[str, Any]:
    """The JSON ``payload`` field of a form-encoded interactivity request."""
    fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
    return json.loads((fields.get("payload") or ["{}"])[0])


class SlackEndpoint:
    """POST /slack/actions (interactivity) and /slack/events (Events API) on the bridge's HTTP
    server: signature and 5-minute window checked by slack-sdk's SignatureVerifier, then accepted."""

    PATHS: ClassVar[dict[str, str]] = {"/slack/actions": "interactive", "/slack/events": "events"}

    def __init__(self, signing_secret: str, actions: SlackActions) -> None:
        self.verifier = SignatureVerifier(signing_secret)
        self.actions = actions

    def __call__(self, path: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        kind = self.PATHS[path]
        if not self.verifier.is_valid_request(body, dict(headers)):
            log.warning("slack: refused a request to %s with a bad or stale signature", path)
            return 401, {"error": "invalid signature"}
        try:
            payload = parse_interactivity(body) if kind == "interactive" else json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            return 400, {"error": "malformed body"}
        if not isinstance(payload, dict):
            return 400, {"error": "malformed body"}
        if kind == "events" and payload.get("type") == "url_verification":
            return 200, {"challenge": str(payload.get("challenge", ""))}
        if not self.actions.accept(kind, payload):
            return 503, {"error": "not recorded, try again"}
        return 200, {}
