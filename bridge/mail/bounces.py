"""Delivery failures of the bridge's own mail: what a bounce says (RFC 3464 delivery status, or
the plain-text clues older servers give), and which addresses are not mailed for a while.

A hard bounce (status 5.x.x: no such mailbox, domain does not exist) suppresses the address for
``bounces.suppress_days``, as Zammad does, so the bridge does not keep mailing a dead address and
hurting the domain's reputation; a soft one (4.x.x: mailbox full, try later) is only noted. The
outbox's mail handler consults the suppressions before every send.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from bridge.ascii import ascii_lower
from bridge.models import InboundEmail
from bridge.store import Table

SCAN_BYTES = 64 * 1024
PREFIX = "bounce_suppress:"  # + lower-case address, in the meta table
_STATUS = re.compile(r"^\s*Status\s*:\s*([245])\.(\d{1,3})\.(\d{1,3})", re.I | re.M)
_ACTION = re.compile(r"^\s*Action\s*:\s*([A-Za-z-]+)", re.I | re.M)
_RECIPIENT = re.compile(r"^\s*(?:Final|Original)-Recipient\s*:\s*rfc822\s*;\s*<?([^\s<>;]+@[^\s<>;]+)>?", re.I | re.M)
_TEXT_STATUS = re.compile(r"\b([45])\.(\d{1,3})\.(\d{1,3})\b")
_TEXT_CODE = re.compile(r"\b(5[05]\d|4[25]\d)[\s-]")
_PERMANENT = re.compile(r"failed permanently|permanent (?:failure|error)|user unknown|no such (?:user|mailbox)", re.I)
_DIAGNOSTIC = re.compile(r"^\s*Diagnostic-Code\s*:\s*(?:smtp\s*;\s*)?(.+)$", re.I | re.M)


@dataclass(frozen=True)
class Bounce:
    """What a delivery report says: for whom, the status (``5.1.1``, "" if none), whether it is
    final (hard), and the server's words (bounded)."""

    recipient: str
    status: str
    hard: bool
    diagnostic: str


def read_bounce(email: InboundEmail) -> Bounce:
    """The delivery report's facts: the message/delivery-status part first, then the headers
    and text of a report without one."""
    reports = [a.payload[:SCAN_BYTES].decode("utf-8", "replace") for a in email.attachments
               if a.content_type == "message/delivery-status"]
    text = "\n".join(reports) or email.text[:SCAN_BYTES]
    status = _STATUS.search(text) or (_TEXT_STATUS.search(email.text[:SCAN_BYTES]) if not reports else None)
    action = _ACTION.search(text)
    recipient = _RECIPIENT.search(text)
    address = recipient.group(1) if recipient else email.header("x-failed-recipients").split(",")[0].strip()
    code = ".".join(status.groups()) if status else ""
    if code:
        hard = code.startswith("5") and not (action and action.group(1).lower() in ("delayed", "relayed"))
    else:  # no status at all: a 5xx reply code or the words of a permanent failure are the clues
        found = _TEXT_CODE.search(email.text[:SCAN_BYTES])
        hard = bool(found and found.group(1).startswith("5") or _PERMANENT.search(email.text[:SCAN_BYTES]))
    diagnostic = _DIAGNOSTIC.search(text)
    words = (diagnostic.group(1) if diagnostic else "").strip()[:300]
    return Bounce(ascii_lower(address.strip("<>")), code, hard, words)


class Suppressions:
    """Addresses not mailed until a moment, after a hard bounce; kept in the meta table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def suppress(self, address: str, days: float, reason: str, now: float | None = None) -> dict[str, Any]:
        moment = time.time() if now is None else now
        entry = {"until": moment + days * 86400, "since": moment, "reason": reason[:300]}
        self.table.put(PREFIX + ascii_lower(address.strip()), entry)
        return entry

    def active(self, address: str, now: float | None = None) -> dict[str, Any] | None:
        """The suppression of this address if it still runs, else None."""
        entry = self.table.get(PREFIX + ascii_lower(address.strip()))
        moment = time.time() if now is None else now
        if not entry or float(entry.get("until", 0)) <= moment:
            return None
        return entry
