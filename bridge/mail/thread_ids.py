"""Threading tokens: HMAC-signed Message-IDs, the ``[#HD-42]`` subject tag and conversation keys."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata

from bridge.ascii import ascii_lower
from bridge.models import InboundEmail

_KIND = re.compile(r"[a-z0-9]{1,16}")
_TOKEN = re.compile(r"hd\.([a-z0-9]{1,16})\.(\d{1,18})\.([A-Za-z0-9_-]{12})\.([0-9a-f]{16})@([^\s<>@]+)")
_DOMAIN = re.compile(r"[^\s<>@()\[\]\\,;:\"]+")
_REPLY_PREFIX = re.compile(
    r"\s*(?:re|fwd?|aw|wg|sv|vs|antw|tr|tl|trả lời|chuyển tiếp)\s*(?:\[\d{1,4}\]|\(\d{1,4}\))?\s*[:：]",
    re.I,
)


def _signature(secret: bytes, kind: str, ticket_id: int, nonce: str) -> str:
    return hmac.new(secret, f"{kind}.{ticket_id}.{nonce}".encode(), hashlib.sha256).hexdigest()[:16]


def make_message_id(ticket_id: int, domain: str, secret: bytes, kind: str = "ack") -> str:
    """``<hd.{kind}.{ticket}.{nonce}.{sig}@{domain}>``: unique, and provably ours when it comes back."""
    if isinstance(ticket_id, bool) or not isinstance(ticket_id, int) or not 0 <= ticket_id < 10**18:
        raise ValueError(f"ticket_id must be a non-negative int, got {ticket_id!r}")
    if not _KIND.fullmatch(kind):
        raise ValueError(f"kind must be 1-16 lower-case letters or digits, got {kind!r}")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"not a Message-ID domain: {domain!r}")
    nonce = secrets.token_urlsafe(9)  # 9 random bytes → 12 url-safe characters
    return f"<hd.{kind}.{ticket_id}.{nonce}.{_signature(secret, kind, ticket_id, nonce)}@{domain}>"


def _token(message_id: str, domain: str) -> re.Match[str] | None:
    """The parts of an id in our format at ``domain`` (the domain compared case-insensitively)."""
    match = _TOKEN.fullmatch(message_id.strip().removeprefix("<").removesuffix(">").strip())
    return match if match and ascii_lower(match.group(5)) == ascii_lower(domain.strip()) else None


def minted_here(message_id: str, domain: str) -> bool:
    """Has our token shape at our domain; the signature is NOT checked (survives a secret change)."""
    return _token(message_id, domain) is not None


def ticket_from_message_id(message_id: str, domain: str, secret: bytes) -> int | None:
    """The ticket an id of ours names; None for foreign, malformed or forged ids."""
    match = _token(message_id, domain)
    if match is None:
        return None
    kind, ticket, nonce, signature = match.group(1, 2, 3, 4)
    expected = _signature(secret, kind, int(ticket), nonce)
    return int(ticket) if hmac.compare_digest(expected, signature) else None


def subject_tag(ticket_id: int, prefix: str) -> str:
    """The tag put in subjects, e.g. ``[#HD-42]`` for prefix ``HD-``."""
    return f"[#{prefix}{ticket_id}]"


def ticket_from_subject(subject: str, prefix: str) -> int | None:
    """The ticket of the LAST exact ``[#HD-42]`` tag (prefix case-insensitive), or None.

    The last one wins because our subjects end with the tag ("Re: {subject} [#HD-42]"): when a
    subject quotes an older ticket's tag, the newest tag we added is the rightmost.
    """
    matches = re.findall(r"\[#" + re.escape(prefix) + r"(\d{1,18})\]", subject, re.I)
    return int(matches[-1]) if matches else None


def strip_reply_prefixes(subject: str) -> str:
    """The subject without leading Re:/Fwd:/AW:/SV:/Trả lời:/Re[2]:… prefixes, however many."""
    text = unicodedata.normalize("NFC", subject).strip()
    while True:
        match = _REPLY_PREFIX.match(text)
        if not match:
            return text
        text = text[match.end() :].lstrip()


def conversation_key(email: InboundEmail, prefix: str) -> str:
    """Groups emails of one conversation for ordering: tag, else thread root, else the email itself."""
    ticket = ticket_from_subject(email.subject, prefix)
    if ticket is not None:
        return f"tag:{ticket}"
    if email.references:
        return email.references[0]
    return email.in_reply_to or email.key
