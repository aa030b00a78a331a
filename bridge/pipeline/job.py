"""The journal of one email's trip through the pipeline, persisted after every stage."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

from bridge.models import InboundEmail


@dataclass
class Job:
    """Progress of one email: which stages finished and what they produced.

    ``results`` maps a stage name to its recorded result; a stage whose name is present is done
    and is never run again, which is what makes a restart resume where it stopped.
    """

    key: str
    status: str = "active"  # active | done | quarantined
    results: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    rejections: int = 0
    last_error: str = ""
    subject: str = ""
    sender: str = ""
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    email: InboundEmail | None = field(default=None, compare=False)
    resumed: bool = field(default=False, compare=False)  # loaded from the journal, not new

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        known = {k: v for k, v in data.items() if k in JOURNALED}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """The journal record (no deep copy: it is JSON-encoded at once)."""
        return {name: getattr(self, name) for name in JOURNALED}

    def done(self, stage: str) -> bool:
        return stage in self.results

    def result(self, stage: str) -> dict[str, Any]:
        return self.results.get(stage) or {}

    def email_and_ticket(self) -> tuple[InboundEmail, int]:
        """For the stages after the ticket stage: the email being processed and its ticket."""
        ticket = self.ticket_id
        assert self.email is not None and ticket is not None
        return self.email, ticket

    @property
    def ticket_id(self) -> int | None:
        for stage in ("ticket", "route"):
            ticket = self.result(stage).get("ticket")
            if ticket:
                return int(ticket)
        return None


JOURNALED = tuple(f.name for f in fields(Job) if f.name not in ("email", "resumed"))
