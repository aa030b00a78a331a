"""Slack mrkdwn from untrusted text: escaping, clipping by characters, and the mentions and links we make.

Email and Odoo text is hostile: an unescaped ``<!channel>`` or ``<https://evil|Reset>`` would
become a real mass mention or a fake link. Only ``&``, ``<`` and ``>`` are control characters;
encoding anything else shows up as ``&#39;`` in Slack. Limits count characters, never bytes.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

ELLIPSIS = "…"

_ESCAPE_COST = {"&": len("&amp;"), "<": len("&lt;"), ">": len("&gt;")}
# Whitespace, C0/C1 controls, zero-width space and bidi overrides: each run becomes one space.
_NOT_ONE_LINE = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b\u202a-\u202e\u2066-\u2069]+")
_ID = re.compile(r"[A-Z0-9]{2,20}")
_TARGET = re.compile(r"(user|subteam):(.*)", re.DOTALL)
_URL_FORBIDDEN = re.compile(r"[<>|\s\x00-\x1f\x7f-\x9f]")


def escape(text: str) -> str:
    """``text`` with Slack's three control characters encoded, ``&`` first so nothing is encoded twice."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text``, ending in "…" when something was cut."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1].rstrip() + ELLIPSIS


def escaped(text: str, limit: int) -> str:
    """``escape(text)`` in at most ``limit`` characters; the raw text is cut, so no entity is halved.

    Linear: the full length comes from ``str.count``, and the cut point is searched only in the
    first ``limit`` raw characters (each costs at least one escaped character).
    """
    full = len(text) + 4 * text.count("&") + 3 * (text.count("<") + text.count(">"))
    if full <= limit:
        return escape(text)
    if limit <= 0:
        return ""
    budget = limit - len(ELLIPSIS)
    cut = 0
    for char in text[:budget]:
        cost = _ESCAPE_COST.get(char, 1)
        if cost > budget:
            break
        budget -= cost
        cut += 1
    return escape(text[:cut].rstrip()) + ELLIPSIS


def one_line(text: str) -> str:
    """``text`` with newlines, control characters and whitespace runs as single spaces, stripped."""
    return _NOT_ONE_LINE.sub(" ", text).strip()


def first_lines(text: str, lines: int = 4, limit: int = 500) -> str:
    """The first ``lines`` non-empty, non-quoted lines of a customer's text, escaped, in ``limit`` characters.

    Lines starting with ">" are the quoted history of earlier mail, not what the customer wrote now.
    """
    kept: list[str] = []
    for line in text.splitlines():
        if len(kept) >= lines:
            break
        line = one_line(line)
        if line and not line.startswith(">"):
            kept.append(line)
    return escaped("\n".join(kept), limit)


def mention(target: str) -> str:
    """The mrkdwn for a configured mention target; raises ValueError for anything else.

    Targets: "" (nobody), "here", "channel", "user:<ID>", "subteam:<ID>" with ``ID`` in
    ``[A-Z0-9]{2,20}``. Never call it with text from email or Odoo.
    """
    if target in ("", "here", "channel"):
        return f"<!{target}>" if target else ""
    match = _TARGET.fullmatch(target)
    if match is None or _ID.fullmatch(match.group(2)) is None:
        raise ValueError(f"not a Slack mention target: {target!r} "
                         "(use '', 'here', 'channel', 'user:U…' or 'subteam:S…')")
    kind, ident = match.groups()
    return f"<@{ident}>" if kind == "user" else f"<!subteam^{ident}>"


def slack_user(user_id: str) -> str:
    """``<@ID>`` for a well-formed Slack user id (from a verified payload); anything else escaped, never a mention."""
    return f"<@{user_id}>" if _ID.fullmatch(user_id) else escape(user_id)


def is_web_url(url: str) -> bool:
    """Whether ``url`` is http(s) with a host and nothing that could end or split a Slack link."""
    if _URL_FORBIDDEN.search(url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def link(url: str, label: str) -> str:
    """``<url|label>`` with the label escaped; just the escaped label when ``url`` is not a safe web URL."""
    text = escape(one_line(label))
    if not is_web_url(url):
        return text
    return f"<{escape(url)}|{text}>" if text else f"<{escape(url)}>"
