"""The bridge's durable record of each ticket it handles: per-ticket facts that outlive one email.

Per-email jobs say what happened to an email; what Slack threads, SLA clocks and agent replies
need is per ticket: who the customer is, which Message-IDs the conversation last had in each
direction (so an outgoing mail threads under the newest one), and rooms for the Slack thread
and the SLA clocks. The record lives in the ``tickets`` table, keyed by the ticket id.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bridge.models import InboundEmail
from bridge.store import Table


@dataclass
class TicketRecord:
    """What the bridge knows of one ticket; ``slack`` and ``sla`` belong to those features."""

    ticket_id: int
    model: str
    customer_email: str = ""
    customer_name: str = ""
    subject: str = ""  # the ticket's subject as the customer wrote it (replies are composed from it)
    origin: str = "email"  # email | odoo (created directly in Odoo)
    mailbox: str = ""  # the mailbox it came in by (its name; one top-level mailbox: its IMAP folder)
    first_message_id: str = ""
    last_inbound_message_id: str = ""
    last_outbound_message_id: str = ""
    inbound_count: int = 0
    outbound: list[dict[str, str]] = field(default_factory=list)  # [{message_id, kind, template}], newest last
    # The Slack thread (bridge/slack/): channel, ts (the card), card_version (refreshes asked for),
    # automation (the outcome shown on the card), escalation (the open one, for Approve/Deny).
    slack: dict[str, Any] = field(default_factory=dict)
    sla: dict[str, Any] = field(default_factory=dict)  # clocks and events already posted (the SLA issue)
    # Odoo's side as the bridge last knew it (bridge/pipeline/conversation.py): stage_id, closed,
    # assignee_id, closures (how often it was closed), closed_at, and changed_at, when the bridge
    # itself last changed the ticket (a watcher's read older than that is stale); for follow-ups
    # customer_wrote_at and the wait last reminded (reminded, reminded_at).
    odoo: dict[str, Any] = field(default_factory=dict)
    cc: list[str] = field(default_factory=list)  # the Cc's of the customer's first email
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TicketRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Outgoing mails remembered per ticket: the newest matter for threading; the rest is in Odoo.
MAX_OUTBOUND = 20


class TicketBook:
    """Reads and updates ticket records; every write is one committed put of the whole record.

    Writes are not waited for (the writer thread keeps their order): a record lost in a crash is
    rebuilt from the next email or reply, and nothing outside is done twice because of it.
    """

    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, ticket_id: int) -> TicketRecord | None:
        data = self.table.get(str(ticket_id))
        return TicketRecord.from_dict(data) if data else None

    def get_many(self, ticket_ids: list[int]) -> dict[int, TicketRecord]:
        """The records of these tickets that exist, in one read."""
        return {int(key): TicketRecord.from_dict(data)
                for key, data in self.table.get_many([str(i) for i in ticket_ids]).items() if data}

    def _save(self, record: TicketRecord, *, durable: bool = False) -> TicketRecord:
        record.updated_at = time.time()
        self.table.put(str(record.ticket_id), record.to_dict(), durable=durable)
        return record

    def update_slack(self, ticket_id: int, *, durable: bool = False, **changes: Any) -> TicketRecord | None:
        """Merge ``changes`` into the record's Slack facts; ``durable`` for the card's ts (a lost
        one would make the next event post a second card)."""
        record = self.get(ticket_id)
        if record is None:
            return None
        record.slack = {**record.slack, **changes}
        return self._save(record, durable=durable)

    def bump_card(self, ticket_id: int, *, durable: bool = False, **changes: Any) -> int:
        """Ask for one more card refresh, with the Slack facts that changed (one write for both);
        returns its version (older queued refreshes are skipped)."""
        record = self.get(ticket_id)
        if record is None:
            return 0
        version = int(record.slack.get("card_version", 0)) + 1
        record.slack = {**record.slack, **changes, "card_version": version}
        self._save(record, durable=durable)
        return version

    def update_sla(self, ticket_id: int, *, durable: bool = False, **changes: Any) -> TicketRecord | None:
        """Merge ``changes`` into the record's SLA facts; ``durable`` for the events posted (a lost
        one would be posted again)."""
        record = self.get(ticket_id)
        if record is None:
            return None
        record.sla = {**record.sla, **changes}
        return self._save(record, durable=durable)

    def update_odoo(self, ticket_id: int, *, by_bridge: bool = False, **changes: Any) -> TicketRecord | None:
        """Merge ``changes`` into what the bridge knows of the ticket in Odoo; ``by_bridge``: the
        bridge itself made this change just now, so a watcher read from before it is stale."""
        record = self.get(ticket_id)
        if record is None:
            return None
        record.odoo = {**record.odoo, **changes, **({"changed_at": time.time()} if by_bridge else {})}
        return self._save(record)

    def seen(
        self, ticket_id: int, *, model: str, customer_email: str, customer_name: str, origin: str, mailbox: str,
        inbound_message_id: str = "", subject: str = "", cc: tuple[str, ...] = (),
    ) -> TicketRecord:
        """A ticket the bridge handles (new from an email, created in Odoo, or a follow-up), and
        the customer message now on it if any: the existing record is kept, missing facts are
        filled in. One read and one write: this runs for every email."""
        record = self.get(ticket_id) or TicketRecord(ticket_id=ticket_id, model=model, origin=origin, mailbox=mailbox)
        record.customer_email = record.customer_email or customer_email
        record.customer_name = record.customer_name or customer_name
        record.subject = record.subject or subject
        record.cc = record.cc or list(cc)
        if inbound_message_id and record.last_inbound_message_id != inbound_message_id:
            record.first_message_id = record.first_message_id or inbound_message_id
            record.last_inbound_message_id = inbound_message_id
            record.inbound_count += 1
            record.odoo = {**record.odoo, "customer_wrote_at": time.time()}  # a new wait for follow-ups
        return self._save(record)

    def outbound(self, ticket_id: int, message_id: str, *, kind: str, template: str) -> None:
        """The bridge sent this mail on the ticket."""
        record = self.get(ticket_id)
        if record is None or any(sent["message_id"] == message_id for sent in record.outbound):
            return
        record.last_outbound_message_id = message_id
        record.outbound = [*record.outbound, {"message_id": message_id, "kind": kind, "template": template}][
            -MAX_OUTBOUND:
        ]
        self._save(record)


def reply_target(record: TicketRecord) -> InboundEmail:
    """The ticket's conversation as the email a new mail answers: to the customer, threaded under
    the newest message of either direction, with the ticket's subject (for replies that do not
    answer one particular email: a decision or an agent's answer from Slack)."""
    newest = record.last_outbound_message_id or record.last_inbound_message_id or None
    references = tuple(dict.fromkeys(m for m in (record.first_message_id, record.last_inbound_message_id)
                                     if m and m != newest))
    return InboundEmail(
        key=f"ticket:{record.ticket_id}", message_id=newest, from_name=record.customer_name,
        from_addr=record.customer_email, reply_to=None, to=(), cc=(), subject=record.subject, text="", html="",
        attachments=(), in_reply_to=None, references=references, date=None, headers={}, size=0,
    )
