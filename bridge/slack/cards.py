"""Block Kit for a ticket: the live card in the channel and the event messages in its thread.

Pure: every builder returns ``(fallback text, blocks)`` and does no I/O. Whatever came from email
or Odoo goes through ``escape``/``escaped`` in every mrkdwn string and in the fallback text, so
the only mentions and links in a message are the ones made here: the ticket link, a configured
mention and a Slack user id from a verified payload. plain_text objects are not parsed by Slack,
so they take raw text, clipped to Slack's limits. Mobile push shows only the fallback text, so it
is always there, short, and free of user mentions.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from bridge.slack.mrkdwn import (
    clip,
    escaped,
    first_lines,
    is_web_url,
    link,
    one_line,
    slack_user,
)

ACTION_IDS = ("ticket.take", "ticket.resolve", "login.approve", "login.deny")

HEADER_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
BUTTON_VALUE_LIMIT = 2000
BUTTON_URL_LIMIT = 3000
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FALLBACK_LIMIT = 300
MAX_FIELDS = 10  # Slack's limit for one section
FACT_KEY_LIMIT = 100
FACT_VALUE_LIMIT = 300
NAME_LIMIT = 300  # a person, address or stage inside a sentence
REASON_LIMIT = 1000

DECISION_BLOCK = "login_decision"
DECIDED_BLOCK = "login_decided"
_VERDICTS = {"approved": "Approved", "denied": "Denied"}
_FLATTEN_DEPTH = 4
_RENDERED_MENTION = re.compile(r"<!here>|<!channel>|<@[A-Z0-9]{2,20}>|<!subteam\^[A-Z0-9]{2,20}>")

Block = dict[str, Any]
Message = tuple[str, list[Block]]


@dataclass(frozen=True)
class CardState:
    """Everything the card shows; the same state always renders the same blocks."""

    ticket_id: int
    ref: str  # e.g. "HD-42"
    url: str  # link to the ticket in Odoo's web client, "" if unknown
    subject: str
    customer_name: str
    customer_email: str
    priority: str = ""  # label, e.g. "High"
    assignee: str = ""  # "" = unassigned
    stage: str = ""
    automation: str = ""  # e.g. "escalated: sender not verified", "" = none
    sla_due: str = ""  # next SLA deadline text when known
    category: str = ""  # the ticket's category label (categories.enabled), "" = not shown
    closed: bool = False
    escalated: bool = False


def card(state: CardState) -> Message:
    """The ticket's card: header, facts, status line and the buttons its state allows.

    Deterministic, so an update resends the whole card (chat.update keeps old blocks when
    ``blocks`` is left out).
    """
    ref = one_line(state.ref) or f"#{state.ticket_id}"
    subject = one_line(state.subject) or "(no subject)"
    fields = [
        _mrkdwn_field("Ticket", _ticket_link(state.url, ref)),
        _field("Customer", _who(state.customer_name, state.customer_email)),
        _field("Priority", state.priority),
        _field("Assignee", one_line(state.assignee) or "unassigned"),
        _field("Stage", state.stage),
    ]
    if one_line(state.category):
        fields.append(_field("Category", state.category))
    if one_line(state.automation):
        fields.append(_field("Automation", state.automation))
    if one_line(state.sla_due):
        fields.append(_field("Next SLA", state.sla_due))
    status = "Closed" if state.closed else "Escalated" if state.escalated else "Open"
    blocks: list[Block] = [
        {"type": "header", "block_id": "ticket_header", "text": _plain(subject, HEADER_LIMIT)},
        {"type": "section", "block_id": "ticket_fields", "fields": fields},
        {"type": "context", "block_id": "ticket_context",
         "elements": [{"type": "mrkdwn", "text": f"{status} · bridge"}]},
    ]
    buttons = _card_buttons(state, ref)
    if buttons:
        blocks.append({"type": "actions", "block_id": "ticket_actions", "elements": buttons})
    closed = " (closed)" if state.closed else ""
    return escaped(f"{ref}{closed}: {subject}", FALLBACK_LIMIT), blocks


def customer_replied(name: str, address: str, excerpt_text: str) -> Message:
    """The customer wrote again: who, and the first lines of what they wrote, quoted."""
    who = _who(name, address, empty="")
    head = f"Customer replied ({who})" if who else "Customer replied"
    text = f"*Customer replied* ({escaped(who, NAME_LIMIT)})" if who else "*Customer replied*"
    excerpt = first_lines(excerpt_text)
    if excerpt:
        text += "\n" + "\n".join(f">{line}" for line in excerpt.split("\n"))
    return escaped(head, FALLBACK_LIMIT), [_section(text)]


def automation_result(outcome: str, reason: str, details: dict[str, str]) -> Message:
    """What the login automation did (e.g. "reactivated", "reset", "escalated") and why."""
    outcome = one_line(outcome) or "done"
    reason = one_line(reason)
    text = f"*Automation: {escaped(outcome, NAME_LIMIT)}*"
    if reason:
        text += f" — {escaped(reason, REASON_LIMIT)}"
    fallback = f"Automation {outcome}: {reason}" if reason else f"Automation {outcome}"
    return escaped(fallback, FALLBACK_LIMIT), [_section(text, fields=_fact_fields(details))]


def escalation(reason: str, facts: dict[str, Any], mention: str, *, approvable: bool,
               ticket_id: int) -> Message:
    """A human is needed: the configured mention, the reason, the facts, and Approve/Deny when allowed.

    ``mention`` is already rendered by ``mrkdwn.mention`` from config, so it is placed as it is;
    anything else raises ValueError rather than reaching Slack unescaped.
    """
    if mention and not _RENDERED_MENTION.fullmatch(mention):
        raise ValueError(f"not a rendered Slack mention: {mention!r}")
    lead = f"{mention} " if mention else ""
    reason = one_line(reason) or "no reason given"
    text = f"{lead}*Escalated to a human*: {escaped(reason, REASON_LIMIT)}"
    blocks = [_section(text, fields=_fact_fields(facts))]
    if approvable:
        value = str(ticket_id)
        blocks.append({"type": "actions", "block_id": DECISION_BLOCK, "elements": [
            _button("Approve", "login.approve", value=value, style="primary"),
            _button("Deny", "login.deny", value=value, style="danger",
                    confirm=_confirm("Deny the request?", f"Deny the login request on ticket #{value}?",
                                     "Deny", "Cancel")),
        ]})
    fallback = lead + escaped(f"Escalated to a human: {reason}", FALLBACK_LIMIT - len(lead))
    return fallback, blocks


def decided(original_blocks: list[Block], verdict: str, by_user_id: str, detail: str) -> list[Block]:
    """The escalation's blocks with Approve/Deny replaced by who decided, so nobody clicks twice.

    ``verdict`` is "approved" or "denied"; the rest of the message is kept as it was.
    """
    label = _VERDICTS.get(verdict)
    if label is None:
        raise ValueError(f"verdict must be 'approved' or 'denied', not {verdict!r}")
    parts = [f"{label}{_by('', by_user_id)}"]
    if one_line(detail):
        parts.append(escaped(one_line(detail), REASON_LIMIT))
    outcome = {"type": "context", "block_id": DECIDED_BLOCK,
               "elements": [{"type": "mrkdwn", "text": " · ".join(parts)}]}
    blocks: list[Block] = []
    placed = False
    for block in original_blocks:
        if block.get("block_id") not in (DECISION_BLOCK, DECIDED_BLOCK):
            blocks.append(copy.deepcopy(block))
        elif not placed:
            blocks.append(outcome)
            placed = True
    if not placed:
        blocks.append(outcome)
    return blocks


def assigned(assignee: str, by_user_id: str = "") -> Message:
    """The ticket has a new assignee (or none)."""
    assignee = one_line(assignee)
    text = f"Assigned to *{escaped(assignee, NAME_LIMIT)}*" if assignee else "*Unassigned*"
    fallback = f"Assigned to {assignee}" if assignee else "Unassigned"
    return escaped(fallback, FALLBACK_LIMIT), [_section(text + _by("", by_user_id))]


def resolved(by: str = "", by_user_id: str = "") -> Message:
    """The ticket was resolved, in Odoo (``by``, a name) or from Slack (``by_user_id``)."""
    return _event("Resolved", by, by_user_id)


def reopened(by: str = "") -> Message:
    """The ticket was reopened."""
    return _event("Reopened", by, "")


def agent_replied(name: str, excerpt_text: str, *, mailed: bool) -> Message:
    """An agent answered in Odoo's chatter (``mailed``: the bridge emails it to the customer)."""
    who = one_line(name) or "An agent"
    what = "replied to the customer" if mailed else "replied in Odoo"
    text = f"*{escaped(who, NAME_LIMIT)}* {what}"
    lines = first_lines(excerpt_text)
    if lines:
        text += "\n" + "\n".join(f">{line}" for line in lines.split("\n"))
    return escaped(f"{who} {what}", FALLBACK_LIMIT), [_section(text)]


def bounced(recipient: str, status: str, hard: bool, until: str, diagnostic: str) -> Message:
    """Mail to the customer came back: hard (the address is suppressed until ``until``) or soft."""
    recipient = one_line(recipient) or "the customer"
    kind = "Mail bounced" if hard else "Mail delayed or refused for now"
    text = f":warning: *{kind}* for {escaped(recipient, NAME_LIMIT)}"
    if status:
        text += f" (status {escaped(one_line(status), 20)})"
    if diagnostic:
        text += f": {escaped(one_line(diagnostic), REASON_LIMIT)}"
    if until:
        text += f"\nThe bridge will not mail this address until {escaped(until, 40)} UTC."
    return escaped(f"{kind} for {recipient}", FALLBACK_LIMIT), [_section(text)]


def mailbox_alert(mailbox: str, problem: str, action: str) -> Message:
    """A mailbox cannot be read or answered (its credentials were refused): posted in the channel."""
    text = (f":rotating_light: *Mailbox {escaped(one_line(mailbox), NAME_LIMIT)} is not being read*: "
            f"{escaped(one_line(problem), REASON_LIMIT)}")
    if action:
        text += f"\n{escaped(one_line(action), REASON_LIMIT)}"
    return escaped(f"Mailbox {mailbox} is not being read: {problem}", FALLBACK_LIMIT), [_section(text)]


def sla_warning(metric: str, deadline: str, used: int) -> Message:
    """An SLA target is getting close (``used``: per cent of its working time gone)."""
    text = (f":hourglass_flowing_sand: *SLA {escaped(one_line(metric), 40)}*: {used}% of the time used, "
            f"due {escaped(one_line(deadline), 60)}")
    return escaped(f"SLA {metric}: {used}% used, due {deadline}", FALLBACK_LIMIT), [_section(text)]


def sla_breach(metric: str, deadline: str, policy: str, target: str) -> Message:
    """An SLA target was missed, at ``deadline`` (its true time, even when seen later)."""
    text = (f":rotating_light: *SLA {escaped(one_line(metric), 40)} breached* at {escaped(one_line(deadline), 60)} "
            f"(policy {escaped(one_line(policy), NAME_LIMIT)}, target {escaped(one_line(target), 60)})")
    return escaped(f"SLA {metric} breached at {deadline}", FALLBACK_LIMIT), [_section(text)]


def sla_summary(policy: str, lines: list[str], paused_hours: float) -> Message:
    """The ticket closed: each metric met or missed, working time used, time paused."""
    body = "\n".join(f"• {escaped(one_line(line), 200)}" for line in lines) or "• no SLA target applied"
    text = f"*SLA summary* (policy {escaped(one_line(policy), NAME_LIMIT)})\n{body}\n• paused {paused_hours:.1f} h"
    return escaped(f"SLA summary: {'; '.join(lines) or 'no target'}", FALLBACK_LIMIT), [_section(text)]


def rated(answer: str) -> Message:
    """The customer rated the answer from the closing email (``good`` or ``bad``)."""
    icon = ":+1:" if answer == "good" else ":-1:"
    return f"Customer rating: {answer}", [_section(f"{icon} *Customer rating: {escaped(one_line(answer), 20)}*")]


def reply_failed(recipient: str, error: str) -> Message:
    """A reply to the customer could not be sent and went to the dead letters."""
    recipient, error = one_line(recipient) or "the customer", one_line(error) or "unknown error"
    text = (f":warning: *Reply not delivered* to {escaped(recipient, NAME_LIMIT)}: "
            f"{escaped(error, REASON_LIMIT)}\nIt is in the dead letters.")
    return escaped(f"Reply not delivered to {recipient}: {error}", FALLBACK_LIMIT), [_section(text)]


def agent_reply_sent(by_user_id: str, recipient: str) -> Message:
    """An agent's reply from Slack reached the customer's mail server."""
    recipient = one_line(recipient) or "the customer"
    text = f"*Reply sent* to {escaped(recipient, NAME_LIMIT)}{_by('', by_user_id)}"
    return escaped(f"Reply sent to {recipient}", FALLBACK_LIMIT), [_section(text)]


def note(text: str) -> Message:
    """Any other line for the thread, escaped; newlines kept."""
    body = escaped(text.strip(), SECTION_LIMIT) or "—"
    return escaped(one_line(text) or "—", FALLBACK_LIMIT), [_section(body)]


def _event(what: str, by: str, by_user_id: str) -> Message:
    """A one-line state change, with who did it."""
    name = one_line(by)
    fallback = f"{what} by {name}" if name and not by_user_id else what
    return escaped(fallback, FALLBACK_LIMIT), [_section(f"*{what}*{_by(by, by_user_id)}")]


def _by(by: str, by_user_id: str) -> str:
    """The " by …" suffix: a Slack user as a mention, a name from Odoo escaped, nothing for nobody."""
    if by_user_id:
        return f" by {slack_user(clip(one_line(by_user_id), 40))}"
    name = one_line(by)
    return f" by {escaped(name, NAME_LIMIT)}" if name else ""


def _who(name: str, address: str, empty: str = "—") -> str:
    """The raw text "Name <address>" (the caller escapes it), or whichever part is known."""
    name, address = one_line(name), one_line(address)
    if name and address:
        return f"{name} <{address}>"
    return name or address or empty


def _ticket_link(url: str, ref: str) -> str:
    """The ticket reference, linked to Odoo when the URL is safe and fits in a field."""
    budget = FIELD_LIMIT - len("*Ticket*\n")
    linked = link(url, clip(ref, 100))
    return linked if len(linked) <= budget else escaped(ref, budget)


def _field(label: str, value: str) -> Block:
    """A ``*label*`` field for raw text from email or Odoo, escaped and clipped; "—" when empty."""
    head = f"*{label}*\n"
    return _mrkdwn_field(label, escaped(one_line(value) or "—", FIELD_LIMIT - len(head)))


def _mrkdwn_field(label: str, mrkdwn: str) -> Block:
    """A ``*label*`` field whose value is already safe mrkdwn."""
    return {"type": "mrkdwn", "text": f"*{label}*\n{mrkdwn}"}


def _fact_fields(facts: dict[str, Any]) -> list[Block]:
    """The first ``MAX_FIELDS`` facts as fields, nested dicts flattened to dotted keys."""
    return [
        _mrkdwn_field(escaped(one_line(key), FACT_KEY_LIMIT),
                      escaped(one_line(value) or "—", FACT_VALUE_LIMIT))
        for key, value in islice(_flatten(facts), MAX_FIELDS)
    ]


def _flatten(facts: dict[Any, Any], prefix: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """(dotted key, text) pairs: {"hr": {"status": "active"}} gives ("hr.status", "active")."""
    for key, value in facts.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < _FLATTEN_DEPTH:
            yield from _flatten(value, f"{name}.", depth + 1)
        else:
            yield name, "" if value is None else str(value)


def _section(text: str, *, fields: list[Block] | None = None) -> Block:
    """A mrkdwn section; ``text`` is already escaped and within ``SECTION_LIMIT``."""
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if fields:
        block["fields"] = fields
    return block


def _plain(text: str, limit: int) -> Block:
    """A plain_text object: raw text (Slack does not parse it), on one line, clipped."""
    return {"type": "plain_text", "text": clip(one_line(text), limit) or "—", "emoji": True}


def _button(text: str, action_id: str, *, value: str = "", style: str = "", url: str = "",
            confirm: Block | None = None) -> Block:
    """A button; ``value`` carries a ticket id, so one too long for Slack is a bug, not clipped."""
    if len(value) > BUTTON_VALUE_LIMIT:
        raise ValueError(f"button value longer than {BUTTON_VALUE_LIMIT} characters")
    button: Block = {"type": "button", "action_id": action_id, "text": _plain(text, BUTTON_TEXT_LIMIT)}
    if value:
        button["value"] = value
    if style:
        button["style"] = style
    if url:
        button["url"] = url
    if confirm:
        button["confirm"] = confirm
    return button


def _confirm(title: str, text: str, yes: str, no: str) -> Block:
    """A confirm dialog, all plain_text within Slack's limits."""
    return {"title": _plain(title, 100), "text": _plain(text, 300),
            "confirm": _plain(yes, 30), "deny": _plain(no, 30)}


def _card_buttons(state: CardState, ref: str) -> list[Block]:
    """Take while unassigned, Resolve while open, Open in Odoo when the URL is safe."""
    value = str(state.ticket_id)
    buttons: list[Block] = []
    if not state.closed and not one_line(state.assignee):
        buttons.append(_button("Take", "ticket.take", value=value))
    if not state.closed:
        buttons.append(_button("Resolve", "ticket.resolve", value=value, style="primary",
                               confirm=_confirm("Resolve the ticket?", f"Mark {ref} as resolved in Odoo?",
                                                "Resolve", "Cancel")))
    if is_web_url(state.url) and len(state.url) <= BUTTON_URL_LIMIT:
        buttons.append(_button("Open in Odoo", "ticket.open", url=state.url))
    return buttons
