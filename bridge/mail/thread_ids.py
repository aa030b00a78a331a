"""Threading tokens: HMAC-signed Message-IDs, the ``[#HD-42]`` subject tag and conversation keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from collections.abc import Sequence

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


def make_message_id(ticket_id: int, domain: str, secret: bytes, kind: str = "ack", seed: str = "") -> str:
    """``<hd.{kind}.{ticket}.{nonce}.{sig}@{domain}>``: unique, and provably ours when it comes back.

    ``seed`` names the one logical message this is (the answer to one email): its nonce is then
    derived from it, so composing that message again, after a state restore, gives the same
    Message-ID and a mail client shows one message even if both copies arrive."""
    if isinstance(ticket_id, bool) or not isinstance(ticket_id, int) or not 0 <= ticket_id < 10**18:
        raise ValueError(f"ticket_id must be a non-negative int, got {ticket_id!r}")
    if not _KIND.fullmatch(kind):
        raise ValueError(f"kind must be 1-16 lower-case letters or digits, got {kind!r}")
    if not _DOMAIN.fullmatch(domain):
        raise ValueError(f"not a Message-ID domain: {domain!r}")
    if seed:
        digest = hmac.new(secret, f"nonce.{kind}.{ticket_id}.{seed}".encode(), hashlib.sha256).digest()[:9]
        nonce = base64.urlsafe_b64encode(digest).decode()
    else:
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


# A reference in the body of our mail (FreeScout's approach): when Gmail, SES or Outlook replace
# our Message-ID, and the customer's client drops References, the quoted body still names the
# ticket. Signed like our Message-IDs, so a marker someone writes by hand attaches nothing.
_BODY_REF = re.compile(r"\{#ref:(\d{1,18})\.([0-9a-f]{16})#\}")
MAX_BODY_REF_SCAN = 512 * 1024  # characters of a body searched for markers


def body_ref(ticket_id: int, secret: bytes) -> str:
    """``{#ref:42.<sig>#}``: put in our mail's text and (hidden) HTML."""
    return f"{{#ref:{ticket_id}.{_signature(secret, 'ref', ticket_id, '')}#}}"


def ticket_from_body(text: str, secret: bytes) -> int | None:
    """The ticket of the first correctly signed marker in ``text`` (in a top-posted reply the
    newest quoted mail of ours comes first), or None."""
    found = None
    for match in _BODY_REF.finditer(text[:MAX_BODY_REF_SCAN]):
        ticket = int(match.group(1))
        if hmac.compare_digest(_signature(secret, "ref", ticket, ""), match.group(2)):
            found = found if found is not None else ticket
    return found


def subject_tag(ticket_id: int, prefix: str) -> str:
    """The tag put in subjects, e.g. ``[#HD-42]`` for prefix ``HD-``."""
    return f"[#{prefix}{ticket_id}]"


def ticket_from_subject(subject: str, prefix: str | Sequence[str]) -> int | None:
    """The ticket of the LAST exact ``[#HD-42]`` tag (prefix case-insensitive; any of several
    when the mailboxes have their own), or None.

    The last one wins because our subjects end with the tag ("Re: {subject} [#HD-42]"): when a
    subject quotes an older ticket's tag, the newest tag we added is the rightmost.
    """
    prefixes = [prefix] if isinstance(prefix, str) else list(prefix)
    pattern = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    matches = re.findall(r"\[#(?:" + pattern + r")(\d{1,18})\]", subject, re.I)
    return int(matches[-1]) if matches else None


def strip_reply_prefixes(subject: str) -> str:
    """The subject without leading Re:/Fwd:/AW:/SV:/Trả lời:/Re[2]:… prefixes, however many."""
    text = unicodedata.normalize("NFC", subject).strip()
    while True:
        match = _REPLY_PREFIX.match(text)
        if not match:
            return text
        text = text[match.end() :].lstrip()


def conversation_key(email: InboundEmail, prefix: str | Sequence[str]) -> str:
    """Groups emails of one conversation for ordering: tag, else thread root, else the email itself."""
    ticket = ticket_from_subject(email.subject, prefix)
    if ticket is not None:
        return f"tag:{ticket}"
    if email.references:
        return email.references[0]
    return email.in_reply_to or email.key
