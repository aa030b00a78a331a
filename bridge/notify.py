"""Where the bridge tells people about tickets: the Notifier seam behind the outbox.

Stages hand ticket events to ``Context.notifier`` and escalate through ``Context.escalate``,
which queues an ``escalation`` outbox effect (durable, once per key) whose handler asks the
Notifier. A Notifier does no I/O itself: it answers with the outbox effects that deliver the
news (Slack posts, see bridge/slack/notify.py), so everything it causes is durable, keyed and
retried like any other effect. Escalations do not depend on the login automation being on.
Without Slack the LogNotifier writes one WARNING line per escalation to ``bridge.escalations``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from bridge.pipeline.outbox import Effect


class Notifier(Protocol):
    """Turns what happened to a ticket into the effects that tell people; ``key`` names the cause
    (an email key, an escalation key) so asking twice gives the same effects."""

    def escalation(self, ticket_id: int, reason: str, facts: dict[str, Any], *, kind: str, key: str) -> list[Effect]:
        """A human is needed; ``kind`` (login_escalated, automation_failed, reply_failed) picks who."""
        ...

    def ticket_event(self, event: str, ticket_id: int, key: str, **detail: Any) -> list[Effect]:
        """Something happened on a ticket (new_ticket, customer_replied, assigned, resolved, …)."""
        ...

    def alert(self, key: str, *, mailbox: str, problem: str, action: str, channel: str = "") -> list[Effect]:
        """The bridge itself needs a person (a mailbox's credentials were refused); once per ``key``."""
        ...


class LogNotifier:
    """Escalations as one WARNING line each; other events are not worth a line of their own."""

    def __init__(self) -> None:
        self.log = logging.getLogger("bridge.escalations")

    def escalation(self, ticket_id: int, reason: str, facts: dict[str, Any], *, kind: str, key: str) -> list[Effect]:
        self.log.warning("ticket %s: escalated to a human (%s): %s (sender %s)", ticket_id, kind, reason,
                         facts.get("sender", "?"))
        return []

    def ticket_event(self, event: str, ticket_id: int, key: str, **detail: Any) -> list[Effect]:
        return []

    def alert(self, key: str, *, mailbox: str, problem: str, action: str, channel: str = "") -> list[Effect]:
        self.log.error("mailbox %s: %s (%s)", mailbox, problem, action)
        return []
