"""Bytes and header values of an email → text: the charset fallback chain (declared → UTF-8 →
a detector sure of a non-Western script → cp1252 → Latin-1) and lenient RFC 2047 words."""

from __future__ import annotations

import binascii
import codecs
import re
import unicodedata

from bridge.mail.charsets import detect, iso2022jp_as_cp932

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
_SINGLE_BYTE_WESTERN = {"cp1252", "latin_1", "iso8859_15"}
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def charset_codec(label: str | None) -> str | None:
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
    """Text of ``data`` and the codec used: declared (but UTF-8 when a single-byte Western label
    sits on valid multi-byte UTF-8) → utf-8 → mostly-utf-8 → a detector sure of a non-Western
    script → cp1252 → latin-1. ISO-2022-JP that its codec refuses is read as Windows does."""
    codec = charset_codec(declared)
    if codec in _SINGLE_BYTE_WESTERN and not data.isascii():
        text = _strict(data, "utf-8")  # "Ã¼" pairs: cp1252 text is almost never valid UTF-8
        if text is not None:
            return text, f"utf-8 (declared {codec})"
    for charset in dict.fromkeys((codec or "utf-8", "utf-8")):
        text = _strict(data, charset)
        if text is not None and not (charset == "utf-8" and codec and codec.startswith("iso2022") and "\x1b" in text):
            return text, charset
    if codec and codec.startswith("iso2022_jp"):
        text = iso2022jp_as_cp932(data)
        if text is not None:
            return text, "iso-2022-jp as cp932"
    text = _mostly_utf8(data)
    if text is not None:
        return text, "utf-8 with replacement characters"
    detected = detect(data)
    if detected:
        text = _strict(data, detected)
        if text is not None:
            return text, f"{detected} (detected)"
    text = _strict(data, "cp1252")
    return (text, "cp1252") if text is not None else (data.decode("latin-1"), "latin-1")


def decode_bytes(data: bytes, declared: str | None = None) -> tuple[str, str]:
    """NFC text of ``data`` (see ``_decode_raw``) and the codec used."""
    text, used = _decode_raw(data, declared)
    return (_nfc(text) if used != "latin-1" else text), used


def header_text(value: object) -> str:
    """A header value as clean text: 8-bit bytes decoded (utf-8 first), folding undone.

    Not NFC-composed: NFC maps KELVIN SIGN to "K" and U+037E to ";", and header values are
    compared in trust decisions (authserv-ids, domains, addresses); display text is composed
    where it is made (``decode_words``).
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


def decode_words(text: str) -> str:
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
            out.append(decode_bytes(bytes(run[1]), run[0])[0])
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
        out.append(decode_bytes(bytes(run[1]), run[0])[0])
    out.append(text[pos:])
    return _nfc("".join(out))
