"""Plain typed values passed between the stages: the parsed email, guard verdicts, ticket refs."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class Attachment:
    """One attachment of an inbound email.

    ``content_id`` (the Content-ID, without angle brackets) is set only on an image the email's
    HTML shows inline by ``cid:``: the chatter shows it there (bridge/mail/inline_images.py)."""

    filename: str
    content_type: str
    payload: bytes
    content_id: str = ""

    @property
    def size(self) -> int:
        return len(self.payload)


@dataclass(frozen=True)
class ArcEvidence:
    """What the ARC chain of an email proves (RFC 8617), checked once at intake where the raw bytes are.

    ``cv`` is the chain validation result: only ``"pass"`` makes ``auth_results`` (the
    ARC-Authentication-Results value of the highest instance, ``i=`` tag included) the sealer's
    word. ``signer`` is the ``d=`` of that instance's ARC-Seal, ASCII lower-cased; it, ``instance``
    and ``auth_results`` are best effort ("" / 0) when the chain is unreadable.
    """

    cv: Literal["pass", "fail", "none"]
    instance: int
    signer: str
    auth_results: str
    reason: str


@dataclass(frozen=True)
class InboundEmail:
    """An inbound email after parsing; every text field is already decoded to str.

    ``key`` identifies the email for the whole bridge: its Message-ID (with angle brackets) when
    it has one, else ``sha256:<hex>`` of the raw bytes, so a re-fetch of the same bytes dedupes.
    ``headers`` holds the loop- and trust-relevant headers, names lower-cased, values unfolded;
    a header that appears several times (Authentication-Results, Received) keeps every value.
    ``header_fields`` is every header in message order as (lower-case name, value), the same
    string objects as in ``headers``: where a header stands relative to another one (an
    Authentication-Results above our Received) is evidence the dict cannot hold. Empty for an
    email that was not parsed from bytes (a ticket created in Odoo).
    ``arc`` is the checked ARC chain, None when it was not checked (no trusted ARC signer
    configured) or the email carries no ARC set.
    """

    key: str
    message_id: str | None
    from_name: str
    from_addr: str
    reply_to: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    text: str
    html: str
    attachments: tuple[Attachment, ...]
    in_reply_to: str | None
    references: tuple[str, ...]
    date: datetime | None
    headers: dict[str, tuple[str, ...]]
    size: int
    defects: tuple[str, ...] = ()
    header_fields: tuple[tuple[str, str], ...] = ()
    arc: ArcEvidence | None = None
    mailbox: str = ""  # the name of the mailbox it was read from (set by the intake)

    def header(self, name: str) -> str:
        """First value of a header (name case-insensitive), or "" when absent."""
        values = self.headers.get(name.lower(), ())
        return values[0] if values else ""

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this email answers, newest last (References, then In-Reply-To)."""
        ids = list(self.references)
        if self.in_reply_to and self.in_reply_to not in ids:
            ids.append(self.in_reply_to)
        return tuple(ids)


class GuardAction(str, enum.Enum):
    """What the loop guard allows for an email."""

    PROCESS = "process"  # record on a ticket and answer
    RECORD_ONLY = "record_only"  # record on a ticket, never answer
    BOUNCE = "bounce"  # a bounce of our own mail: an internal note on its ticket, never answered
    DROP = "drop"  # do not record: quarantine with the reason (exact loop, excluded sender)


@dataclass(frozen=True)
class GuardVerdict:
    """The guard's decision with the reason shown in logs and on quarantine records."""

    action: GuardAction
    reason: str = ""
    about: str = ""  # BOUNCE: the Message-ID of our mail that bounced
    spam: bool = False  # RECORD_ONLY as spam (tagged); DROP as spam: moved to ``folder``
    folder: str = ""  # DROP: the folder the email goes to instead of the quarantine
    unverified: bool = False  # RECORD_ONLY as a forged-looking sender: still ticketed and escalated, never answered
