"""Raw RFC 822 bytes → ``InboundEmail``; hostile or broken input ends as ``UnparseableEmail``, never a crash."""

from __future__ import annotations

import email
import hashlib
import logging
import re
from email.message import Message
from email.policy import Compat32, compat32

import mailparser
from mailparser.dates import parse_mail_date
from mailparser.utils import as_string_safe, get_addresses

from bridge.ascii import ascii_lower
from bridge.errors import UnparseableEmail
from bridge.mail.filenames import attachment_name, eml_name, fallback_name
from bridge.mail.htmltext import html_to_text
from bridge.mail.inline_images import INLINE_TYPES, content_id, mark_inline
from bridge.mail.textdecode import charset_codec, decode_bytes, decode_words, header_text
from bridge.mail.tnef import Unpacked, is_tnef
from bridge.mail.tnef import unpack as unpack_tnef
from bridge.models import Attachment, InboundEmail

# mail-parser WARNs "Email content ... not handled" for every non-text part and logs ERRORs for
# header trouble we already record as defects: noise in the bridge's log, not news.
logging.getLogger("mailparser").setLevel(logging.CRITICAL)

MAX_PARTS = 1000  # MIME parts read per email; the rest is ignored (MIME bombs)
MAX_DEPTH = 40  # multipart nesting read per email
_HEADER_SCAN = 1 << 20  # bytes searched for the end of the header section
# A header value holding encoded words is cut to this many characters (between words) as it is
# parsed: mail-parser decodes every header with the email package's decode_header, which is
# quadratic in the number of words (a 0.97 MB Subject of encoded words: 7.5 s). Displayed
# subjects are cut to 1000 characters anyway; 32 KiB of one-character words still fill them.
MAX_ENCODED_HEADER_CHARS = 32 * 1024

_MESSAGE_HEADERS = frozenset(
    "from sender to cc bcc subject date message-id received return-path reply-to mime-version "
    "content-type delivered-to in-reply-to references".split()
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPACES = re.compile(r"\s+")
_BRACKETED = re.compile(r"<([^<>]*)>")
_VALID_ID = re.compile(r"[^\s<>@]+@[^\s<>@]+")
_BROKEN_IDS = ("smtpin_added_broken@",)  # Gmail's placeholder for a missing id: shared, not unique
_UNFOLDED = compat32.clone(max_line_length=0)


def _cut(value: str, limit: int) -> str:
    """At most ``limit`` characters of ``value``, cut at whitespace when there is some in the second half."""
    if len(value) <= limit:
        return value
    head = value[:limit]
    space = max(head.rfind(" "), head.rfind("\t"), head.rfind("\n"))
    return (head[:space] if space > limit // 2 else head).rstrip()


class _CappedHeaders(Compat32):
    """compat32, except that a header value holding encoded words is cut to
    ``MAX_ENCODED_HEADER_CHARS``; the names of cut headers are appended to ``cut`` (a fresh list per
    parse, set with ``clone(cut=[])``)."""

    cut: list[str] | None = None

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        if len(value) > MAX_ENCODED_HEADER_CHARS and "=?" in value:
            value = _cut(value, MAX_ENCODED_HEADER_CHARS)
            if self.cut is not None:
                self.cut.append(name)
        return name, value


_CAPPED = _CappedHeaders()


def parse_email(raw: bytes) -> InboundEmail:
    """Parse one raw email; every failure is an ``UnparseableEmail`` with a reason."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise UnparseableEmail(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    try:
        return _parse(raw)
    except UnparseableEmail:
        raise
    except Exception as exc:  # the contract: only UnparseableEmail leaves this module
        raise UnparseableEmail(f"parser failure: {type(exc).__name__}: {exc}"[:300]) from exc


def _parse(raw: bytes) -> InboundEmail:
    body = raw.lstrip(b" \t\r\n")
    if not body:
        raise UnparseableEmail("empty input")
    if b"\x00" in _header_section(body):
        raise UnparseableEmail("NUL bytes in the header section: binary data, not an email")
    notes: dict[str, None] = {}  # an ordered set of defects
    policy = _CAPPED.clone(cut=[])
    msg: Message = email.message_from_bytes(body, policy=policy)  # what mail-parser itself would build
    try:
        notes.update(dict.fromkeys(sorted(mailparser.MailParser(msg).defects_categories)))
    except Exception as exc:  # mail-parser choked: the stdlib's view of the message is enough
        msg = email.message_from_bytes(body, policy=policy)
        notes[f"mail-parser failed ({type(exc).__name__}); used the stdlib parser"] = None
    notes.update((f"{name} header longer than {MAX_ENCODED_HEADER_CHARS} characters with encoded words: cut", None)
                 for name in dict.fromkeys(policy.cut or ()))
    fields = _header_fields(msg)
    headers = _by_name(fields)
    if not headers:
        raise UnparseableEmail("no header lines: not an email")
    if not _MESSAGE_HEADERS & headers.keys():
        raise UnparseableEmail("none of the message headers (From, To, Subject, Date, Message-ID, …)")

    plain, html, attachments = _walk(msg, notes)
    from_name, from_addr = _sender(headers.get("from", ()), notes)
    reply_to = _address_list(headers.get("reply-to", ()))
    message_id = _first_id(headers.get("message-id", ()))
    if headers.get("message-id") and message_id is None:
        notes["invalid Message-ID"] = None
    date_header = headers.get("date", ())
    html_text = "\n".join(html)
    return InboundEmail(
        key=message_id or "sha256:" + hashlib.sha256(raw).hexdigest(),
        message_id=message_id,
        from_name=from_name,
        from_addr=from_addr,
        reply_to=reply_to[0] if reply_to else None,
        to=_address_list(headers.get("to", ())),
        cc=_address_list(headers.get("cc", ())),
        subject=_one_line(decode_words(_cut(_first(headers, "subject"), MAX_ENCODED_HEADER_CHARS))),
        text="\n".join(plain) if plain else html_to_text(html_text),
        html=html_text,
        attachments=mark_inline(attachments, html_text),
        in_reply_to=_first_id(headers.get("in-reply-to", ())),
        references=_ids(" ".join(headers.get("references", ()))),
        date=parse_mail_date(date_header[0]).value if date_header else None,
        headers=headers,
        size=len(raw),
        defects=tuple(notes),
        header_fields=fields,
    )


def _header_section(data: bytes) -> bytes:
    """The bytes before the first empty line (bounded), where binary garbage gives itself away."""
    head = data[:_HEADER_SCAN]
    ends = [i for i in (head.find(b"\n\n"), head.find(b"\r\n\r\n")) if i >= 0]
    return head[: min(ends)] if ends else head


def _one_line(text: str, limit: int = 1000) -> str:
    """Single-line display text: control characters and whitespace runs become one space."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()[:limit]


# --- headers, addresses, ids ---------------------------------------------------------------------


def _header_fields(msg: Message) -> tuple[tuple[str, str], ...]:
    """Every header in order as (lower-case name, value), unfolded (not RFC 2047 decoded)."""
    fields = ((str(name).strip().lower(), header_text(value)) for name, value in msg.raw_items())
    return tuple(field for field in fields if field[0])


def _by_name(fields: tuple[tuple[str, str], ...]) -> dict[str, tuple[str, ...]]:
    """Lower-case name → all its values in order (the same string objects as in ``fields``)."""
    collected: dict[str, list[str]] = {}
    for name, value in fields:
        collected.setdefault(name, []).append(value)
    return {name: tuple(values) for name, values in collected.items()}


def _first(headers: dict[str, tuple[str, ...]], name: str) -> str:
    values = headers.get(name, ())
    return values[0] if values else ""


def _mailboxes(value: str) -> list[tuple[str, str]]:
    """(decoded display name, lower-case address) pairs; items without a usable address dropped.

    Only A-Z are lower-cased: Unicode folding maps KELVIN SIGN to "k", another person's address.
    """
    pairs = []
    for name, addr in get_addresses(value):
        addr = ascii_lower(addr.strip())
        if "@" in addr and not _CONTROL.search(addr) and " " not in addr:
            pairs.append((_one_line(decode_words(name), 200), addr))
    return pairs


def _sender(values: tuple[str, ...], notes: dict[str, None]) -> tuple[str, str]:
    """Display name and address of the first From; the raw text as name when there is no address."""
    if not values:
        notes["missing From"] = None
        return "", ""
    mailboxes = _mailboxes(values[0])
    if mailboxes:
        return mailboxes[0]
    notes["From without a usable address"] = None
    return _one_line(decode_words(values[0]), 200), ""


def _address_list(values: tuple[str, ...]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for value in values:
        seen.update((addr, None) for _, addr in _mailboxes(value))
    return tuple(seen)


def _strip_comments(text: str) -> str:
    """Remove RFC 5322 comments (nested, with quoted pairs) in one linear pass."""
    if "(" not in text:
        return text
    out, depth, escaped = [], 0, False
    for char in text:
        if depth:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == "(":
                depth += 1
            elif char == ")":
                depth -= 1
        elif char == "(":
            depth = 1
        else:
            out.append(char)
    return "".join(out)


def _normalise_id(candidate: str) -> str | None:
    inner = _SPACES.sub("", candidate)
    if len(inner) > 500 or not _VALID_ID.fullmatch(inner) or inner.lower().startswith(_BROKEN_IDS):
        return None
    return f"<{inner}>"


def _ids(text: str) -> tuple[str, ...]:
    """Message-IDs in order, de-duplicated; bare ``id@host`` tokens accepted when no <…> exists."""
    text = _strip_comments(text)
    candidates = _BRACKETED.findall(text) or [t for t in re.split(r"[\s,]+", text) if "@" in t]
    seen: dict[str, None] = {}
    for candidate in candidates:
        normalised = _normalise_id(candidate)
        if normalised:
            seen[normalised] = None
    return tuple(seen)


def _first_id(values: tuple[str, ...]) -> str | None:
    ids = _ids(values[0]) if values else ()
    return ids[0] if ids else None


def message_id_key(value: str) -> str | None:
    """The email key a Message-ID header value gives (as ``parse_email`` finds it), or None."""
    return _first_id((value,))


# --- MIME structure ------------------------------------------------------------------------------


def _walk(msg: Message, notes: dict[str, None]) -> tuple[list[str], list[str], list[Attachment]]:
    """Body texts and attachments in document order; attached messages are kept whole, not opened,
    winmail.dat is unpacked (its body is the email's text only when the email has no other)."""
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
    packed: list[Unpacked] = []
    stack: list[tuple[Message, int, bool]] = [(msg, 0, False)]
    seen = 0
    while stack:
        part, depth, in_attachment = stack.pop()
        seen += 1
        if seen > MAX_PARTS:
            notes[f"more than {MAX_PARTS} MIME parts; the rest was ignored"] = None
            break
        notes.update((type(defect).__name__, None) for defect in part.defects)
        ctype = part.get_content_type()
        disposition = (part.get_content_disposition() or "").lower()
        if ctype.startswith("multipart/") and part.is_multipart():
            if depth >= MAX_DEPTH:
                notes[f"MIME nesting deeper than {MAX_DEPTH}; the rest was ignored"] = None
                continue
            inner = in_attachment or disposition == "attachment"
            stack.extend((child, depth + 1, inner) for child in reversed(part.get_payload()))
            continue
        filename = attachment_name(part)
        if ctype.startswith("multipart/"):
            ctype = "text/plain"  # a multipart without a usable boundary: its text is all there is
        if ctype in ("text/plain", "text/html") and not (filename or in_attachment or disposition == "attachment"):
            text = _body_text(part, notes)
            if text.strip():
                (html if ctype == "text/html" else plain).append(text)
            continue
        attachment = _attachment(part, ctype, filename, len(attachments) + 1)
        if is_tnef(ctype, filename):
            unpacked = unpack_tnef(attachment.payload)
            packed.append(unpacked)
            attachments.extend(unpacked.files)
            if not unpacked.kept:
                continue
            notes[f"{attachment.filename} kept as it came: {unpacked.kept}"] = None
        attachments.append(attachment)
    if not (plain or html):
        plain = [unpacked.text for unpacked in packed if unpacked.text.strip()]
        html = [unpacked.html for unpacked in packed if unpacked.html.strip()]
    return plain, html, attachments


def _attachment(part: Message, ctype: str, filename: str, number: int) -> Attachment:
    """A non-body part as an attachment: a forwarded message is named from its subject, an image
    keeps its Content-ID for the inline check."""
    payload = _payload(part, ctype)
    if not filename and ctype == "message/rfc822" and part.is_multipart() and part.get_payload():
        filename = eml_name(decode_words(header_text(part.get_payload()[0].get("subject", ""))))
    cid = content_id(header_text(part.get("content-id", ""))) if ctype in INLINE_TYPES else ""
    return Attachment(filename or fallback_name(number, ctype), ctype, payload, cid)


def _body_text(part: Message, notes: dict[str, None]) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    declared = part.get_content_charset()
    text, used = decode_bytes(data, declared)
    if declared and used != charset_codec(declared):
        notes[f"charset {declared[:40]!r} does not fit the text; decoded as {used}"] = None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _payload(part: Message, ctype: str) -> bytes:
    """Decoded attachment bytes; message/* parts are serialised back so bounce checks can read them."""
    if part.is_multipart():
        children = part.get_payload()
        if ctype == "message/delivery-status":
            blocks = ("\n".join(f"{k}: {v}" for k, v in block.raw_items()) for block in children)
            return "\n\n".join(blocks).encode("utf-8", "surrogateescape")
        return b"".join(_flatten(child) for child in children)
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def _flatten(msg: Message) -> bytes:
    try:
        return msg.as_bytes(policy=_UNFOLDED)
    except Exception:  # odd charsets defeat the generator; mail-parser's flattener degrades instead
        return as_string_safe(msg).encode("utf-8", "surrogateescape")
