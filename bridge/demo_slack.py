"""The Slack side of `bridge demo`: the stand-in's config, timeline lines for Slack effects, an
Approve click played through the signed endpoint, and the threads as ops engineers see them."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.sandbox.lms import LmsSandbox
from bridge.sandbox.slack import SlackSandbox
from bridge.sandbox.slack_signing import (
    block_action,
    interactivity_body,
    post_signed,
    sign,
)
from bridge.sandbox.smtp_sink import SmtpSink
from bridge.slack.actions import action_key
from bridge.slack.cards import DECIDED_BLOCK
from bridge.slack.mrkdwn import mention

if TYPE_CHECKING:
    from bridge.app import App

CHANNEL = "C0SUPPORT"
LEAD_ID, LEAD_EMAIL, LEAD_NAME = "U0DEMOLEAD", "agent.lead@example.com", "Demo Lead"
WEBHOOK_TOKEN = "demo-webhook-token-not-for-production"
CLIP = 100
THREAD_EVENTS = {"customer_replied": "customer replied", "automation": "automation result",
                 "assigned": "assigned", "resolved": "resolved", "reply_failed": "reply not delivered",
                 "agent_reply": "agent reply"}
CARD_REASONS = {"escalation": "escalated", "decided": "decision shown", "assigned": "assignee shown",
                "resolved": "resolved", "reply-failed": "reply not delivered"}


def start_slack() -> SlackSandbox:
    """The Web API stand-in, with the support channel and the approver in it."""
    slack = SlackSandbox(channels=(CHANNEL,))
    slack.add_user(LEAD_ID, LEAD_EMAIL, LEAD_NAME)
    return slack


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def slack_sections(slack: SlackSandbox, port: int) -> dict[str, Any]:
    """The ``slack`` and ``http`` config sections: a card per ticket, signed actions on the HTTP port."""
    return {
        "slack": {"enabled": True, "base_url": slack.url, "bot_token": slack.bot_token, "channel": CHANNEL,
                  "mentions": {"login_escalated": "subteam:S0ITSUPPORT", "automation_failed": "here"},
                  "actions": "http", "signing_secret": slack.signing_secret, "approvers": [LEAD_ID],
                  "pace_seconds": 0, "timeout_seconds": 5, "max_retries": 1},
        "http": {"host": "127.0.0.1", "port": port, "webhook_token": WEBHOOK_TOKEN},
    }


def clip(text: str, limit: int = CLIP) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class SlackNarrator:
    """Turns finished Slack effects (and the effects of a click) into timeline lines."""

    def __init__(self, slack: SlackSandbox, lms: LmsSandbox, is_email: Callable[[str], bool]) -> None:
        self.slack, self.lms, self.is_email = slack, lms, is_email
        self.app: App | None = None
        self.cards: dict[int, tuple[str, str]] = {}  # ticket → (channel, ts) of its card
        self.escalated: list[int] = []  # tickets whose escalation (with buttons) is in their thread

    def origin(self, key: str) -> str:
        """The email behind an effect key (``slack:new:<email key>``, ``slack:card:escalation:<email key>``), else "slack"."""
        for prefix in ("slack:card:", "slack:"):
            if key.startswith(prefix):
                rest = key[len(prefix):].partition(":")[2]
                return rest if self.is_email(rest) else "slack"
        return "slack"

    def describe(self, event: str, key: str, record: dict[str, Any]) -> list[tuple[str, str, float | None]]:
        """(origin, text, when: a time.time() or None for now) lines for one outbox event; [] for
        effects that are not Slack's."""
        kind, payload = record.get("kind"), record.get("payload") or {}
        if key.startswith("slack-action:") and kind in ("smtp", "odoo_note") and event == "sent":
            return [("slack", f"decision mail {payload.get('template')} sent over SMTP: {payload.get('subject')!r}"
                     if kind == "smtp" else "decision documented on the ticket (internal note)", None)]
        if kind not in ("slack", "slack_action"):
            return []
        if event == "dead":
            return [(self.origin(key), f"Slack: {payload.get('op', kind)} FAILED: {record.get('last_error')}", None)]
        if event != "sent":
            return []
        if kind == "slack_action":
            return self._performed(key, payload)
        lines: list[str] = []
        ticket = payload.get("ticket")
        slack_state = self.state(ticket) if ticket else {}
        if ticket and ticket not in self.cards and slack_state.get("ts"):
            self.cards[ticket] = (slack_state["channel"], slack_state["ts"])
            lines.append(f"Slack: card posted for ticket #{ticket} in {slack_state['channel']}")
            posted = True
        else:
            posted = False
        op = payload.get("op")
        if op == "card" and not posted and slack_state.get("ts") \
                and payload.get("version", 0) >= int(slack_state.get("card_version", 0)):
            reason = CARD_REASONS.get(key.split(":")[2] if key.startswith("slack:card:") else "")
            lines.append("Slack: card updated" + (f" ({reason})" if reason else ""))
        elif op == "thread" and slack_state.get("ts"):
            lines.append(self._thread_line(ticket, payload, slack_state))
        elif op == "decided":
            lines.append(f"Slack: Approve/Deny buttons replaced: {payload['verdict']} by <@{payload['by']}>")
        elif op == "react":
            lines.append("Slack: ✓ reaction on the thread message that was emailed")
        elif op == "ephemeral":
            shown = [e for e in self.slack.ephemerals if e["user"] == payload.get("user")]
            lines.append(f"Slack: ephemeral to <@{payload.get('user')}>: "
                         + clip(shown[-1]["text"] if shown else "", 80))
        origin = self.origin(key)
        return [(origin, line, None) for line in lines]

    def state(self, ticket: int) -> dict[str, Any]:
        record = self.app.ctx.tickets.get(int(ticket)) if self.app is not None else None
        return dict(record.slack) if record is not None else {}

    def _thread_line(self, ticket: int, payload: dict[str, Any], state: dict[str, Any]) -> str:
        event = payload.get("event", "")
        also = ", also in the channel" if payload.get("broadcast") else ""
        if event != "escalation":
            return f"Slack: thread reply ({THREAD_EVENTS.get(event, event)}){also}"
        escalation = state.get("escalation") or {}
        assert self.app is not None
        target = mention(self.app.cfg.slack.mention_for(str(escalation.get("kind", ""))))
        if escalation.get("approvable") and ticket not in self.escalated:
            self.escalated.append(ticket)
        return (f"Slack: escalation in the thread, mentioning {target or 'nobody'}"
                + (", with Approve/Deny buttons" if escalation.get("approvable") else "") + also)

    def _performed(self, key: str, payload: dict[str, Any]) -> list[tuple[str, str, float | None]]:
        request = payload.get("request") or {}
        if payload.get("kind") != "interactive":
            return [("slack", "Slack: thread message handled", None)]
        action = (request.get("actions") or [{}])[0]
        lines: list[tuple[str, str, float | None]] = [
            ("slack", (f"Slack: {action.get('action_id')} by <@{request.get('user', {}).get('id')}> performed "
                       f"on ticket #{action.get('value')}"), None)]
        for done in self.lms.actions:  # shown when the LMS did it
            if str(done.get("key", "")).startswith(key):
                lines.append(("slack", f"LMS {done['action']} for {done['email']} (reference {done['reference']})",
                              done["at"]))
        return lines


async def play_approve(app: App, slack: SlackSandbox, sink: SmtpSink, narrator: SlackNarrator, port: int,
                       add: Callable[[str, str], None], wait_seconds: float) -> str:
    """Click Approve, as the lead, on the first escalated login request; "" once the decision
    mail is sent and the outbox is idle, else what went wrong."""
    waiting = [t for t in narrator.escalated
               if not ((narrator.state(t).get("escalation") or {}).get("decided"))]
    if not waiting:
        add("slack", "Slack: no escalated login request is waiting for a decision: no Approve click played")
        return ""
    ticket = waiting[0]
    escalation = narrator.state(ticket)["escalation"]
    channel, card_ts = narrator.cards[ticket]
    payload = block_action(user_id=LEAD_ID, action_id="login.approve", value=str(ticket), channel=channel,
                           message_ts=escalation["ts"], thread_ts=card_ts,
                           message=slack.find(channel, escalation["ts"]), username=LEAD_EMAIL.split("@")[0])
    body = interactivity_body(payload)
    status, _ = await asyncio.to_thread(post_signed, f"http://127.0.0.1:{port}/slack/actions", body,
                                        sign(slack.signing_secret, body))
    add("slack", f"Slack: Approve clicked by {LEAD_NAME} on ticket #{ticket} (signed request, HTTP {status})")
    if status != 200:
        return f"the Approve click was answered HTTP {status}"
    mail_key = f"{action_key('interactive', payload)}:mail"
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        mail = app.store.outbox.get(mail_key) or {}
        sent_id = (mail.get("payload") or {}).get("message_id") if mail.get("status") == "sent" else None
        if sent_id and not app.outbox.pending() \
                and any(m.message.get("Message-ID", "").strip() == sent_id for m in sink.messages):
            return ""
        if mail.get("status") == "dead":
            return f"the decision mail failed: {mail.get('last_error')}"
        told = [e["text"] for e in slack.ephemerals if e["user"] == LEAD_ID]
        if told and not app.outbox.pending():  # refused: the lead was told why, nothing else comes
            return f"refused, Slack told the lead: {told[-1]}"
        await asyncio.sleep(0.02)
    return "no decision mail in time"


def print_threads(slack: SlackSandbox, narrator: SlackNarrator, tickets: list[int]) -> None:
    """Each card with its thread, as the channel shows it (fallback texts)."""
    print(f"\nSlack: the threads in {CHANNEL} (fallback texts as stored: <!subteam^…> is a live mention,"
          " &lt;…&gt; text from email, inert)")
    print("-----")
    for ticket, (channel, ts) in sorted(narrator.cards.items()):
        parent, *replies = slack.thread(channel, ts) or [{}]
        edited = " (edited)" if parent.get("edited") else ""
        print(f"ticket #{ticket:<3} {clip(parent.get('text', ''))}{edited}   [{len(replies)} thread repl"
              f"{'y' if len(replies) == 1 else 'ies'}]")
        for reply in replies:
            marks = (" (edited)" if reply.get("edited") else "") + "".join(
                f" :{r['name']}:" for r in reply.get("reactions", []))
            print(f"    └ {clip(reply.get('text', ''))}{marks}")
            for block in reply.get("blocks", []):
                if block.get("block_id") == DECIDED_BLOCK:
                    print(f"      {clip(' '.join(e.get('text', '') for e in block.get('elements', [])))}")
    uncarded = [f"#{t}" for t in sorted(tickets) if t not in narrator.cards]
    if uncarded:
        print(f"no card (mail recorded only, nobody to tell): ticket {', '.join(uncarded)}")
    calls = {m: len(slack.calls(m)) for m in ("chat.postMessage", "chat.update", "chat.postEphemeral")}
    print(f"\nSlack calls: {calls['chat.postMessage']} posts, {calls['chat.update']} updates, "
          f"{calls['chat.postEphemeral']} ephemerals; cards: {len(narrator.cards)}")
