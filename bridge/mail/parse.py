"""Raw RFC 822 bytes → ``InboundEmail``; hostile or broken input ends as ``UnparseableEmail``, never a crash."""

from __future__ import annotations

import binascii
import codecs
import email
import hashlib
import logging
import mimetypes
import re
import unicodedata
from email.message import Message
from email.policy import Compat32, compat32

import mailparser
from mailparser.dates import parse_mail_date
from mailparser.utils import as_string_safe, get_addresses

from bridge.ascii import ascii_lower
from bridge.errors import UnparseableEmail
from bridge.mail.htmltext import html_to_text
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
# Labels mail clients use for what is really the superset (as browsers do, per WHATWG Encoding).
_SUPERSETS = {
    "ascii": "utf-8",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_SPACES = re.compile(r"\s+")
_BRACKETED = re.compile(r"<([^<>]*)>")
_VALID_ID = re.compile(r"[^\s<>@]+@[^\s<>@]+")
_BROKEN_IDS = ("smtpin_added_broken@",)  # Gmail's placeholder for a missing id: shared, not unique
_MIME = mimetypes.MimeTypes()  # built-in table only, so extensions do not depend on /etc/mime.types
_EXTENSIONS = {"message/rfc822": "eml", "message/delivery-status": "txt", "text/rfc822-headers": "txt"}
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
        subject=_one_line(_decode_words(_cut(_first(headers, "subject"), MAX_ENCODED_HEADER_CHARS))),
        text="\n".join(plain) if plain else html_to_text(html_text),
        html=html_text,
        attachments=tuple(attachments),
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


# --- text decoding -------------------------------------------------------------------------------


def _codec(label: str | None) -> str | None:
    """Python codec for a MIME charset label, widened to its superset; None when unknown."""
    try:
        name = codecs.lookup(label.strip().strip('"').lower()).name if label else None
    except (LookupError, ValueError):
        return None
    return _SUPERSETS.get(name, name) if name else None


def _nfc(text: str) -> str:
    """windows-1258 and macOS send decomposed Vietnamese: compose it for display and search."""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def _strict(data: bytes, charset: str) -> str | None:
    try:
        text = data.decode(charset)
        text.encode("utf-8")  # some codecs (utf-7, utf-16) can yield lone surrogates
    except (LookupError, UnicodeError, ValueError, TypeError):
        return None
    return text


def _mostly_utf8(data: bytes) -> str | None:
    """UTF-8 with a few broken bytes (a cut or corrupted sequence) reads better repaired than as cp1252."""
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd") - data.count(b"\xef\xbf\xbd")
    valid = len(text) - len(text.encode("ascii", "ignore")) - bad
    return text if valid >= 20 * bad else None


def _decode_raw(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """Text of ``data`` and the codec used: declared → utf-8 → mostly-utf-8 → cp1252 → latin-1."""
    codec = _codec(declared)
    for charset in dict.fromkeys((codec or "utf-8", "utf-8")):
        text = _strict(data, charset)
        if text is not None:
            return text, charset
    text = _mostly_utf8(data)
    if text is not None:
        return text, "utf-8 with replacement characters"
    text = _strict(data, "cp1252")
    return (text, "cp1252") if text is not None else (data.decode("latin-1"), "latin-1")


def _decode_bytes(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """NFC text of ``data`` (see ``_decode_raw``) and the codec used."""
    text, used = _decode_raw(data, declared)
    return (_nfc(text) if used != "latin-1" else text), used


def _header_text(value: object) -> str:
    """A header value as clean text: 8-bit bytes decoded (utf-8 first), folding undone.

    Not NFC-composed: NFC maps KELVIN SIGN to "K" and U+037E to ";", and header values are
    compared in trust decisions (authserv-ids, domains, addresses); display text is composed
    where it is made (``_decode_words``).
    """
    text = str(value)
    if not text.isascii():
        text = _decode_raw(text.encode("utf-8", "surrogateescape"))[0]
    return _FOLD.sub("", text).replace("\r", " ").replace("\n", " ").strip()


def _charset_name(label: str) -> str:
    return label.split("*", 1)[0].strip().lower()  # RFC 2231 language suffix: utf-8*en


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    """Bytes of one encoded word, leniently (bad padding, stray characters); None if hopeless."""
    try:
        if encoding in "bB":
            data = re.sub(r"[^A-Za-z0-9+/]", "", payload)
            data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
            return binascii.a2b_base64(data + "=" * (-len(data) % 4))
        return binascii.a2b_qp(payload.encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return None


def _decode_words(text: str) -> str:
    """RFC 2047 decoding that also survives multibyte characters split across encoded words;
    the result is NFC-composed display text."""
    if "=?" not in text:
        return _nfc(text)
    out: list[str] = []
    run: tuple[str, bytearray] | None = None  # adjacent words of one charset: bytes joined first
    pos, after_word = 0, False
    for match in _ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        data = _word_bytes(match.group(2), match.group(3))
        charset = _charset_name(match.group(1))
        adjacent = after_word and data is not None and not between.strip()
        if run is not None and not (adjacent and charset == run[0]):
            out.append(_decode_bytes(bytes(run[1]), run[0])[0])
            run = None
        if not adjacent:
            out.append(between)  # whitespace between two encoded words is not text (RFC 2047 §6.2)
        if data is None:
            out.append(match.group(0))
        elif run is None:
            run = (charset, bytearray(data))
        else:
            run[1].extend(data)
        pos, after_word = match.end(), data is not None
    if run is not None:
        out.append(_decode_bytes(bytes(run[1]), run[0])[0])
    out.append(text[pos:])
    return _nfc("".join(out))


def _one_line(text: str, limit: int = 1000) -> str:
    """Single-line display text: control characters and whitespace runs become one space."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()[:limit]


# --- headers, addresses, ids ---------------------------------------------------------------------


def _header_fields(msg: Message) -> tuple[tuple[str, str], ...]:
    """Every header in order as (lower-case name, value), unfolded (not RFC 2047 decoded)."""
    fields = ((str(name).strip().lower(), _header_text(value)) for name, value in msg.raw_items())
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
            pairs.append((_one_line(_decode_words(name), 200), addr))
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
    return _one_line(_decode_words(values[0]), 200), ""


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


# --- MIME structure ------------------------------------------------------------------------------


def _walk(msg: Message, notes: dict[str, None]) -> tuple[list[str], list[str], list[Attachment]]:
    """Body texts and attachments in document order; attached messages are kept whole, not opened."""
    plain: list[str] = []
    html: list[str] = []
    attachments: list[Attachment] = []
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
        filename = _filename(part)
        if ctype.startswith("multipart/"):
            ctype = "text/plain"  # a multipart without a usable boundary: its text is all there is
        if ctype in ("text/plain", "text/html") and not (filename or in_attachment or disposition == "attachment"):
            text = _body_text(part, notes)
            if text.strip():
                (html if ctype == "text/html" else plain).append(text)
            continue
        attachments.append(
            Attachment(filename or _fallback_name(len(attachments) + 1, ctype), ctype, _payload(part, ctype))
        )
    return plain, html, attachments


def _body_text(part: Message, notes: dict[str, None]) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    declared = part.get_content_charset()
    text, used = _decode_bytes(data, declared)
    if declared and used != _codec(declared):
        notes[f"charset {declared[:40]!r} failed; decoded as {used}"] = None
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


def _filename(part: Message) -> str:
    """The attachment's name (RFC 2231 and RFC 2047 decoded), without path or control characters."""
    view = Message()  # raw 8-bit names would reach get_filename() as U+FFFD: decode them first
    for name, value in part.raw_items():
        if name.lower() in ("content-type", "content-disposition"):
            view[name] = _header_text(value)
    try:
        name = view.get_filename()
    except (LookupError, UnicodeError, ValueError):
        return ""
    if not name:
        return ""
    name = _decode_words(_header_text(name))
    name = _CONTROL.sub("", re.split(r"[/\\]", name)[-1]).strip().strip(".")
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = stem[:190] + dot + ext[:9] if dot and len(ext) < 10 else name[:200]
    return name


def _fallback_name(number: int, ctype: str) -> str:
    ext = _EXTENSIONS.get(ctype) or (_MIME.guess_extension(ctype, strict=False) or ".bin").lstrip(".")
    return f"attachment-{number}.{ext}"
