"""Decodings the standard codecs do not give: a charset detector for undeclared 8-bit text, and
ISO-2022-JP as Japanese mailers really write it.

Python's ``iso2022_jp`` codecs refuse what Windows and many phones send under that label
(Microsoft's CP50220): half-width katakana after ``ESC ( I`` and NEC's row 13 (①, ㈱, №).
Re-coding the escapes into Shift_JIS bytes and reading them as cp932, as Windows does, keeps
every character instead of losing the email to escape-sequence garbage.
"""

from __future__ import annotations

import charset_normalizer

DETECT_BYTES = 64 * 1024  # the detector reads at most this much: its cost grows with the input
MIN_COHERENCE = 0.3  # a language recognised in the detected text; below it, cp1252 is the safer guess
MAX_CHAOS = 0.1
_WESTERN = {"cp1252", "latin_1", "iso8859_15", "cp1250", "iso8859_2", "cp850", "mac_roman"}


def detect(data: bytes) -> str | None:
    """The codec a detector finds for ``data`` with confidence, else None.

    Only a detection that also recognises a language counts: on short Western text the detector
    picks a neighbour of cp1252 (cp1250 reads "coûte" as "coűte"), so Western results are left to
    the caller's cp1252 and only other scripts (KOI8-R, cp1251, cp1253, Big5, …) are taken."""
    best = charset_normalizer.from_bytes(data[:DETECT_BYTES]).best()
    if best is None or best.encoding in _WESTERN:
        return None
    if best.coherence < MIN_COHERENCE or best.chaos > MAX_CHAOS:
        return None
    return best.encoding


def _jis_pair_to_sjis(first: int, second: int) -> bytes:
    lead = (first - 0x21) // 2 + 0x81
    lead += 0x40 if lead > 0x9F else 0
    if first % 2:
        trail = second + 0x1F + (1 if second >= 0x60 else 0)
    else:
        trail = second + 0x7E
    return bytes((lead, trail))


def iso2022jp_as_cp932(data: bytes) -> str | None:
    """ISO-2022-JP (with CP50220's extensions) decoded through cp932; None if it is not that."""
    out = bytearray()
    mode = "ascii"
    i, size = 0, len(data)
    while i < size:
        byte = data[i]
        if byte == 0x1B:
            seq = data[i + 1 : i + 3]
            if seq in (b"(B", b"(J"):
                mode = "ascii"
            elif seq in (b"$@", b"$B"):
                mode = "jis0208"
            elif seq == b"(I":
                mode = "kana"
            else:
                return None
            i += 3
        elif byte in (0x0A, 0x0D):  # a line end leaves any double-byte mode (RFC 1468)
            out.append(byte)
            mode = "ascii"
            i += 1
        elif byte >= 0x80:
            return None
        elif mode == "jis0208":
            if i + 1 >= size or not (0x21 <= byte <= 0x7E and 0x21 <= data[i + 1] <= 0x7E):
                return None
            out += _jis_pair_to_sjis(byte, data[i + 1])
            i += 2
        elif mode == "kana":
            if not 0x21 <= byte <= 0x5F:
                return None
            out.append(byte + 0x80)
            i += 1
        else:
            out.append(byte)
            i += 1
    try:
        return out.decode("cp932")
    except UnicodeDecodeError:
        return None
