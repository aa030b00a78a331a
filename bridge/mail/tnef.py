"""winmail.dat (TNEF, ``application/ms-tnef``) → the files and text Outlook packed into it.

Outlook and Exchange wrap a message's attachments in TNEF when they think the recipient is
Outlook too; any other reader sees one opaque ``winmail.dat``. tnefparse does the decoding. What
it cannot do safely is bounded here first, in one linear pass over the object headers: it copies
the rest of the stream for every object it reads (quadratic on a stream of many tiny objects),
and it reads a cut-off stream without complaint. A stream that is cut off, fails a checksum, is
too costly to read, or holds something we cannot turn into a file or text (an RTF-only body, an
embedded Outlook item) stays attached as it came, with a note saying why.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass, field

from tnefparse import TNEF
from tnefparse.mapi import IMESSAGE_SIG
from tnefparse.properties import MAPI_ATTACH_LONG_FILENAME

from bridge.mail.filenames import guessed_type, safe_filename
from bridge.mail.textdecode import decode_bytes
from bridge.models import Attachment

# tnefparse logs a WARNING or ERROR for every oddity it steps over; the parse notes say what matters.
logging.getLogger("tnefparse").setLevel(logging.CRITICAL)

TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
MAX_COPY_BYTES = 2 << 30  # bytes tnefparse may copy while reading one stream (≈0.5 s here)
MAX_EMBEDDED = 8  # embedded Outlook items in one stream (each is read as a stream of its own)
_SIGNATURE = struct.pack("<I", TNEF.TNEF_SIGNATURE)
_OBJECT_HEAD = struct.Struct("<BHHI")  # level, name, type, length; data and a 2-byte checksum follow


@dataclass
class Unpacked:
    """What a winmail.dat gave: its files, its body (plain and/or HTML), and, when it has to
    stay attached as it came, the reason (``kept``)."""

    files: list[Attachment] = field(default_factory=list)
    text: str = ""
    html: str = ""
    kept: str = ""


def is_tnef(content_type: str, filename: str) -> bool:
    """A TNEF part by its type, or by its well-known name when the type says nothing."""
    return content_type in TNEF_TYPES or (
        content_type == "application/octet-stream" and filename.lower() in ("winmail.dat", "win.dat"))


def unpack(data: bytes) -> Unpacked:
    """The files and body of a TNEF stream; never raises: what cannot be read is ``kept``."""
    if not data.startswith(_SIGNATURE):
        return Unpacked(kept="not a TNEF stream")
    problem = _scan(data)
    if problem:
        return Unpacked(kept=problem)
    try:
        tnef = TNEF(data, do_checksum=True)
        if not all(obj.good_checksum for obj in tnef.objects):
            return Unpacked(kept="a checksum does not match: the file is damaged")
        result = Unpacked(text=_text(tnef.body, tnef.codepage), html=_text(tnef.htmlbody, tnef.codepage))
        embedded = 0
        for number, item in enumerate(tnef.attachments, 1):
            if hasattr(item, "embed"):
                embedded += 1
                continue
            name = safe_filename(_name(item, tnef.codepage)) or f"winmail-{number}.bin"
            result.files.append(Attachment(name, guessed_type(name), bytes(item.data)))
        has_rtf = tnef.rtfbody is not None and not (result.text or result.html)
    except Exception as exc:  # tnefparse has no error tree of its own: anything is a damaged file
        return Unpacked(kept=f"it cannot be read ({type(exc).__name__})")
    if embedded:
        result.kept = f"it holds {embedded} embedded Outlook item(s), which are not unpacked"
    elif has_rtf:
        result.kept = "its text is in RTF only, which is not read here"
    elif not (result.files or result.text or result.html):
        result.kept = "it holds no files and no text"
    return result


def _scan(data: bytes) -> str:
    """Why tnefparse must not read ``data`` ("" when it may): cut off mid-object, too many
    embedded items, or more copying than MAX_COPY_BYTES (its cost, counted the way it reads)."""
    starts = [6]
    found = data.find(IMESSAGE_SIG)
    while found >= 0:
        if len(starts) > MAX_EMBEDDED:
            return f"it holds more than {MAX_EMBEDDED} embedded Outlook items"
        starts.append(found + len(IMESSAGE_SIG) + 6)  # an embedded stream: signature, key, objects
        found = data.find(IMESSAGE_SIG, found + 1)
    copied = 0
    for offset in starts:
        size = len(data)
        top = offset == 6
        while offset + 12 < size:
            length = _OBJECT_HEAD.unpack_from(data, offset)[3] + 11
            if top and offset + length > size:
                return f"it is cut off after {size} bytes: the file is damaged"
            copied += size - offset
            if copied > MAX_COPY_BYTES:
                return "it has too many parts to unpack safely"
            offset += min(size - offset, length)
    return ""


def _name(item: object, codepage: str | None) -> str:
    """An attachment's long file name, else its short one (read in the stream's code page where
    tnefparse would insist on UTF-8)."""
    long_names = [a.data for a in item.mapi_attrs if a.name == MAPI_ATTACH_LONG_FILENAME]
    if long_names and isinstance(long_names[0], str):
        return long_names[0]
    try:
        return item.name
    except UnicodeDecodeError:
        return item._name.decode(codepage or "cp1252", "replace").strip("\x00")


def _text(value: str | bytes | None, codepage: str | None) -> str:
    """A TNEF body as text (tnefparse leaves it as bytes when the stream names no code page)."""
    if not value:
        return ""
    text = decode_bytes(value, codepage)[0] if isinstance(value, bytes) else value
    return text.replace("\r\n", "\n").replace("\r", "\n").strip("\x00")
