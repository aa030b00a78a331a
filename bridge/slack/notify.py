"""The Slack Notifier: ticket events and escalations as ordered Slack effects in the ticket's thread.

Every effect of one ticket is in the outbox group ``slack:<ticket>``, so its thread reads in the
order things happened. Messages are rendered here, when the event happens (bridge/slack/cards.py
escapes everything that came from email or Odoo); the card is rendered when it is posted or
refreshed, from the ticket's current state. Policy ``needs_human`` posts a card only for tickets
that need a person: other events reach Slack only once the ticket has a thread.
"""

from __future__ import annotations

import logging
from typing import Any

from bridge.config import SlackConfig
from bridge.pipeline.outbox import Effect
from bridge.slack import cards
from bridge.slack.mrkdwn import mention
from bridge.ticket_record import TicketBook

log = logging.getLogger("bridge.slack")

KIND = "slack"
APPROVABLE = ("login_escalated", "login_unsure", "automation_failed")  # another system's access is not


def group(ticket_id: int) -> str:
    return f"slack:{ticket_id}"


class SlackNotifier:
    """Builds the Slack effects; ``approvals`` says whether Approve/Deny can be answered (actions on,
    login automation configured)."""

    def __init__(self, cfg: SlackConfig, tickets: TicketBook, *, approvals: bool) -> None:
        self.cfg = cfg
        self.tickets = tickets
        self.approvals = approvals
        self.log = logging.getLogger("bridge.escalations")

    @property
    def _create_for_events(self) -> bool:
        return self.cfg.post == "all"

    def _thread(self, key: str, ticket_id: int, event: str, message: tuple[str, list[dict]], *,
                create: bool, save: str = "") -> Effect:
        text, blocks = message
        payload = {"op": "thread", "ticket": ticket_id, "event": event, "text": text, "blocks": blocks,
                   "create": create, "broadcast": event in self.cfg.broadcast, "effect": key}
        if save:
            payload["save"] = save
        return Effect(key, KIND, payload, group=group(ticket_id))

    def _mentioning(self, kind: str, message: tuple[str, list[dict]]) -> tuple[str, list[dict]]:
        """``message`` led by the configured mention for ``kind`` (unchanged when there is none)."""
        text, blocks = message
        target = mention(self.cfg.mention_for(kind))
        if not target:
            return message
        return f"{target} {text}", [{"type": "section", "text": {"type": "mrkdwn", "text": target}}, *blocks]

    def alert(self, key: str, *, mailbox: str, problem: str, action: str, channel: str = "") -> list[Effect]:
        """A problem of the bridge itself (a mailbox's credentials): one message in the channel,
        with the mention configured for ``mailbox_auth``."""
        text, blocks = self._mentioning("mailbox_auth", cards.mailbox_alert(mailbox, problem, action))
        self.log.error("mailbox %s: %s (%s)", mailbox, problem, action)
        return [Effect(f"slack:alert:{key}", KIND, {"op": "alert", "channel": channel or self.cfg.channel,
                                                     "text": text, "blocks": blocks, "effect": key})]

    def card_refresh(self, key: str, ticket_id: int, *, create: bool, durable: bool = False,
                     **changes: Any) -> Effect:
        """Post the card (``create``) or re-render it, with ``changes`` to the ticket's Slack facts
        recorded in the same write; a refresh queued later makes this one a no-op."""
        version = self.tickets.bump_card(ticket_id, durable=durable, **changes)
        return Effect(key, KIND, {"op": "card", "ticket": ticket_id, "version": version, "create": create,
                                  "effect": key}, group=group(ticket_id))

    def escalation(self, ticket_id: int, reason: str, facts: dict[str, Any], *, kind: str, key: str) -> list[Effect]:
        self.log.warning("ticket %s: escalated to a human (%s): %s", ticket_id, kind, reason)
        approvable = self.approvals and kind in APPROVABLE
        escalation = {"key": key, "kind": kind, "reason": reason, "facts": facts, "approvable": approvable, "ts": "",
                      "decided": None}
        message = cards.escalation(reason, facts, mention(self.cfg.mention_for(kind)), approvable=approvable,
                                   ticket_id=ticket_id)
        return [
            self._thread(f"slack:escalation:{key}", ticket_id, "escalation", message, create=True, save="escalation"),
            self.card_refresh(f"slack:card:escalation:{key}", ticket_id, create=True, durable=True,
                              escalation=escalation),
        ]

    def ticket_event(self, event: str, ticket_id: int, key: str, **detail: Any) -> list[Effect]:
        build = {
            "new_ticket": self._new_ticket,
            "customer_replied": self._customer_replied,
            "assigned": self._assigned,
            "resolved": self._resolved,
            "reopened": self._reopened,
            "agent_replied": self._agent_replied,
            "rated": self._rated,
            "bounced": self._bounced,
            "sla_warning": self._sla_warning,
            "sla_breach": self._sla_breach,
            "sla_summary": self._sla_summary,
            "sla_card": self._sla_card,
            "decided": self._decided,
            "agent_reply": self._agent_reply,
            "reply_failed": self._reply_failed,
        }.get(event)
        return build(ticket_id, key, **detail) if build else []

    def _new_ticket(self, ticket_id: int, key: str, *, category: str = "other", automation: str = "",
                    outcome: str = "", automation_reason: str = "",
                    details: dict[str, str] | None = None, assignee: str = "") -> list[Effect]:
        effects = [self.card_refresh(f"slack:new:{key}", ticket_id, create=self._create_for_events, category=category,
                                     **({"automation": automation} if automation else {}))]
        if assignee:  # auto-assigned by the bridge as it was created
            effects.append(self._thread(f"slack:assigned:{key}", ticket_id, "assigned",
                                        cards.assigned(f"{assignee} (auto-assigned)"), create=False))
        if outcome and outcome != "escalated":  # an escalation has its own message
            effects.append(self._thread(f"slack:automation:{key}", ticket_id, "automation",
                                        cards.automation_result(outcome, automation_reason, details or {}),
                                        create=False))
        return effects

    def _customer_replied(self, ticket_id: int, key: str, *, name: str, address: str, text: str) -> list[Effect]:
        return [self._thread(f"slack:reply:{key}", ticket_id, "customer_replied",
                             cards.customer_replied(name, address, text), create=self._create_for_events)]

    def _assigned(self, ticket_id: int, key: str, *, assignee: str, by_user_id: str = "") -> list[Effect]:
        return [self._thread(f"slack:assigned:{key}", ticket_id, "assigned", cards.assigned(assignee, by_user_id),
                             create=False),
                self.card_refresh(f"slack:card:assigned:{key}", ticket_id, create=False)]

    def _resolved(self, ticket_id: int, key: str, *, by: str = "", by_user_id: str = "") -> list[Effect]:
        return [self._thread(f"slack:resolved:{key}", ticket_id, "resolved", cards.resolved(by, by_user_id),
                             create=False),
                self.card_refresh(f"slack:card:resolved:{key}", ticket_id, create=False)]

    def _reopened(self, ticket_id: int, key: str, *, by: str = "") -> list[Effect]:
        return [self._thread(f"slack:reopened:{key}", ticket_id, "reopened", cards.reopened(by), create=False),
                self.card_refresh(f"slack:card:reopened:{key}", ticket_id, create=False)]

    def _agent_replied(self, ticket_id: int, key: str, *, name: str, text: str, mailed: bool) -> list[Effect]:
        return [self._thread(f"slack:agent-replied:{key}", ticket_id, "agent_replied",
                             cards.agent_replied(name, text, mailed=mailed), create=False)]

    def _bounced(self, ticket_id: int, key: str, *, recipient: str, status: str, hard: bool, until: str,
                 diagnostic: str) -> list[Effect]:
        """Mail to the customer bounced: a person may need to find another way to reach them."""
        message = cards.bounced(recipient, status, hard, until, diagnostic)
        if hard:
            message = self._mentioning("reply_failed", message)
        return [self._thread(f"slack:bounced:{key}", ticket_id, "reply_failed", message, create=hard),
                self.card_refresh(f"slack:card:bounced:{key}", ticket_id, create=hard)]

    def _sla_warning(self, ticket_id: int, key: str, *, metric: str, deadline: str, policy: str,
                     used: int) -> list[Effect]:
        return [self._thread(f"slack:{key}", ticket_id, "sla_warning", cards.sla_warning(metric, deadline, used),
                             create=False),
                self.card_refresh(f"slack:card:{key}", ticket_id, create=False)]

    def _sla_breach(self, ticket_id: int, key: str, *, metric: str, deadline: str, policy: str,
                    target: str) -> list[Effect]:
        """A breach needs a person: the configured mention, in the thread (created if need be)."""
        message = self._mentioning("sla_breach", cards.sla_breach(metric, deadline, policy, target))
        return [self._thread(f"slack:{key}", ticket_id, "sla_breach", message, create=True),
                self.card_refresh(f"slack:card:{key}", ticket_id, create=True)]

    def _sla_summary(self, ticket_id: int, key: str, *, policy: str, lines: list[str], paused: float) -> list[Effect]:
        return [self._thread(f"slack:{key}", ticket_id, "sla_summary", cards.sla_summary(policy, lines, paused),
                             create=False)]

    def _sla_card(self, ticket_id: int, key: str) -> list[Effect]:
        """The next deadline changed: re-render the card (it reads the text from the record)."""
        return [self.card_refresh(f"slack:card:sla:{key}", ticket_id, create=False)]

    def _rated(self, ticket_id: int, key: str, *, answer: str) -> list[Effect]:
        return [self._thread(f"slack:rated:{key}", ticket_id, "rated", cards.rated(answer), create=False)]

    def _decided(self, ticket_id: int, key: str, *, verdict: str, by_user_id: str, detail: str) -> list[Effect]:
        """Replace the escalation's buttons with who decided what, and refresh the card."""
        return [Effect(f"slack:decided:{key}", KIND, {"op": "decided", "ticket": ticket_id, "verdict": verdict,
                                                      "by": by_user_id, "detail": detail, "effect": key},
                       group=group(ticket_id)),
                self.card_refresh(f"slack:card:decided:{key}", ticket_id, create=False)]

    def _agent_reply(self, ticket_id: int, key: str, *, by_user_id: str, recipient: str, channel: str,
                     ts: str) -> list[Effect]:
        """The ✓ on the thread message that was emailed."""
        return [Effect(f"slack:react:{key}", KIND, {"op": "react", "ticket": ticket_id, "channel": channel, "ts": ts,
                                                    "name": "white_check_mark", "effect": key},
                       group=group(ticket_id))]

    def _reply_failed(self, ticket_id: int, key: str, *, recipient: str, error: str) -> list[Effect]:
        message = self._mentioning("reply_failed", cards.reply_failed(recipient, error))
        return [self._thread(f"slack:reply-failed:{key}", ticket_id, "reply_failed", message, create=True),
                self.card_refresh(f"slack:card:reply-failed:{key}", ticket_id, create=True)]


def ephemeral(key: str, channel: str, user: str, text: str, thread_ts: str = "") -> Effect:
    """A message only ``user`` sees (an explanation or a refusal); not part of any thread's order."""
    return Effect(key, KIND, {"op": "ephemeral", "channel": channel, "user": user, "text": text,
                              "thread_ts": thread_ts, "effect": key})
