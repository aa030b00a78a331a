"""The sender's own words in an email's text, apart from quoted history, forwarded mail and signature.

What a person writes on top says what they want; the history below a reply repeats an earlier
message (often the very problem they now say is solved), a forwarded system mail says what a
system claimed, and a signature says nothing. Classifiers read the own words first and the
forwarded part separately, weighted down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A reply header line: "On Tue, 3 Dec 2026 at 09:14, IT <it@x> wrote:" (may wrap onto a second
# line), "Vào Th 3, 3 thg 12, 2026 lúc 09:14 IT <it@x> đã viết:", Outlook's separators.
_REPLY_HEADER = re.compile(
    r"^\s*(?:on\b.{0,300}?\bwrote\s*:|vào\b.{0,300}?\bđã viết\s*:|v[aà]o\b.{0,300}?\bda viet\s*:"
    r"|-{2,}\s*original message\s*-{2,}|-{2,}\s*thư gốc\s*-{2,}|_{10,})\s*$",
    re.IGNORECASE | re.MULTILINE | re.DOTALL,
)
_OUTLOOK_HEADER = re.compile(r"^\s*(?:from|từ)\s*:.*\n\s*(?:sent|date|đã gửi|ngày)\s*:", re.IGNORECASE | re.MULTILINE)
_FORWARD = re.compile(
    r"^\s*(?:-{2,}\s*(?:forwarded message|thư chuyển tiếp|thu chuyen tiep)\s*-{2,}|begin forwarded message\s*:"
    r"|-{2,}\s*(?:mail|tin nhắn) chuyển tiếp\s*-{2,})\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_SIGN_OFF = re.compile(
    r"^\s*(?:best(?: regards| wishes)?|kind regards|regards|warm regards|cheers|thanks(?: and regards)?|"
    r"thank you|many thanks|br|trân trọng|tran trong|thân ái|than ai|thân|cảm ơn(?: anh chị)?|cam on|"
    r"em cảm ơn|em cam on|kính thư|kinh thu)[\s,.!]*$",
    re.IGNORECASE,
)
_SIGNATURE_START = re.compile(r"^\s*(?:--\s*|sent from my .*|get outlook for .*|gửi từ .*|gui tu .*)$", re.IGNORECASE)
MAX_SIGNATURE_LINES = 8


@dataclass(frozen=True)
class Parts:
    """An email's text cut into what the sender wrote and what they forwarded."""

    own: str
    forwarded: str


def _cut_at_reply(text: str) -> str:
    cuts = [m.start() for m in (_REPLY_HEADER.search(text), _OUTLOOK_HEADER.search(text)) if m]
    return text[: min(cuts)] if cuts else text


def _drop_signature(lines: list[str]) -> list[str]:
    """Lines before a signature: after ``-- `` or "Sent from my…", or after a sign-off line that
    only a few short lines follow (a sign-off with more text below is not the end)."""
    for index, line in enumerate(lines):
        if _SIGNATURE_START.match(line):
            return lines[:index]
    for index in range(len(lines) - 1, -1, -1):
        if _SIGN_OFF.match(lines[index]):
            rest = [line for line in lines[index + 1:] if line.strip()]
            if len(rest) <= MAX_SIGNATURE_LINES and all(len(line) <= 80 for line in rest):
                return lines[:index]
            break
    return lines


def own_words(text: str) -> Parts:
    """The sender's own text (quoted ``>`` lines, reply history and signature removed) and the
    forwarded part (its own history and signature kept: it is read as evidence, not as intent)."""
    forwarded = ""
    match = _FORWARD.search(text)
    if match:
        text, forwarded = text[: match.start()], text[match.end():]
    text = _cut_at_reply(text)
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    own = "\n".join(_drop_signature(lines)).strip()
    return Parts(own=own, forwarded=forwarded.strip())
