"""The names attachments are stored under: decoded however the sender's client wrote them, and safe.

Clients write names every way there is: RFC 2231 (``filename*=utf-8''…``, continued over
``filename*0*``, ``*1*`` …), RFC 2047 words inside the quoted name (forbidden there, written by
Outlook and Gmail all the same), raw 8-bit bytes, a charset label that does not fit the bytes, an
encoded word that never closes. Each is decoded with the same charset fallback chain as the body
(bridge/mail/textdecode.py); what comes out is made harmless: no path, no control characters, no
bidirectional overrides (``invoice\u202efdp.exe`` shows as "invoiceexe.pdf"), a bounded length.
"""

from __future__ import annotations

import mimetypes
import re
from email.message import Message

from bridge.mail.textdecode import decode_bytes, decode_words, header_text

MAX_NAME_CHARS = 200
MAX_EML_STEM_CHARS = 100  # a forwarded message's file name is its subject, cut here
_MIME = mimetypes.MimeTypes()  # built-in table only, so extensions do not depend on /etc/mime.types
_EXTENSIONS = {"message/rfc822": "eml", "message/delivery-status": "txt", "text/rfc822-headers": "txt"}
_UNCLOSED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?]*$")  # "=?utf-8?Q?Rapport_d=C3=A9taill=C3=A9.pdf"
_SPACE_LIKE = re.compile(r"[\t\n\r\x0b\x0c]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Bidirectional embeddings, overrides, isolates and marks: they reorder how a name is shown.
_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r" {2,}")
_NOT_IN_FILE_NAMES = re.compile(r'[\\/:*?"<>|]+')  # a subject's slashes are words, not folders


def attachment_name(part: Message) -> str:
    """The decoded, safe name a MIME part gives its file (Content-Disposition ``filename``, else
    Content-Type ``name``); "" when it names none."""
    view = Message()  # raw 8-bit names would reach get_param() as U+FFFD: decode them first
    for name, value in part.raw_items():
        if name.lower() in ("content-type", "content-disposition"):
            view[name] = header_text(value)
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        try:
            value = view.get_param(param, header=header)
        except (LookupError, UnicodeError, ValueError, IndexError):
            continue
        if value:
            return safe_filename(_decoded(value))
    return ""


def _decoded(value: str | tuple[str | None, str | None, str]) -> str:
    """A parameter value as text: RFC 2231 bytes through the charset chain (the declared label
    first), then any RFC 2047 words, an unterminated last one included."""
    if isinstance(value, tuple):  # RFC 2231: (charset, language, text %-decoded as Latin-1)
        charset, _, text = value
        try:
            value = decode_bytes(text.encode("latin-1"), charset or None)[0]
        except UnicodeEncodeError:  # the raw header held 8-bit text already decoded
            value = text
    value = header_text(value.strip('"'))
    if _UNCLOSED_WORD.search(value):
        value += "?="
    return decode_words(value)


def safe_filename(name: str) -> str:
    """``name`` as a file name Odoo can show and an agent can save: the last path component, no
    control or bidi characters, single spaces, no leading or trailing dots, at most
    MAX_NAME_CHARS (the extension kept); "" when nothing is left."""
    name = re.split(r"[/\\]", name)[-1]
    name = _CONTROL.sub("", _SPACE_LIKE.sub(" ", _BIDI.sub("", name)))
    name = _SPACES.sub(" ", name).strip(" .")
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        cut = MAX_NAME_CHARS - 10
        name = stem[:cut].rstrip(" .") + dot + ext[:9] if dot and len(ext) < 10 else name[:MAX_NAME_CHARS]
    return name


def eml_name(subject: str) -> str:
    """The file name of a forwarded message: its subject (``Facture n° 42 / 2026`` →
    ``Facture n° 42 - 2026.eml``); "" when the subject gives nothing to go by."""
    stem = safe_filename(_NOT_IN_FILE_NAMES.sub("-", subject))[:MAX_EML_STEM_CHARS].rstrip(" .")
    return f"{stem}.eml" if stem.strip("-") else ""


def fallback_name(number: int, content_type: str) -> str:
    """``attachment-<n>.<ext>`` for a part that names no file, the extension from its type."""
    ext = _EXTENSIONS.get(content_type) or (_MIME.guess_extension(content_type, strict=False) or ".bin").lstrip(".")
    return f"attachment-{number}.{ext}"


def guessed_type(filename: str) -> str:
    """The MIME type a file's extension suggests (for files unpacked from winmail.dat, which
    carry none); ``application/octet-stream`` when it suggests nothing."""
    return _MIME.guess_type(filename, strict=False)[0] or "application/octet-stream"
