"""Where the bridge tells people that a human is needed: the Notifier seam behind the outbox.

Any stage escalates through ``Context.escalate``, which queues an ``escalation`` outbox effect
(durable, once per key); the App's handler hands it to the Notifier it owns. Escalations do not
depend on the login automation being on. Today's Notifier writes one WARNING line per
escalation to ``bridge.escalations``; the Slack notifier replaces it through the same interface.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol


class Notifier(Protocol):
    """Delivers an escalation; raising a TransientError makes the outbox retry it."""

    async def escalate(self, ticket_id: int, reason: str, facts: dict[str, Any]) -> None: ...


class LogNotifier:
    """Escalations as one WARNING line each, until the Slack notifier replaces it."""

    def __init__(self) -> None:
        self.log = logging.getLogger("bridge.escalations")

    async def escalate(self, ticket_id: int, reason: str, facts: dict[str, Any]) -> None:
        self.log.warning("ticket %s: escalated to a human: %s (sender %s)", ticket_id, reason,
                         facts.get("sender", "?"))
