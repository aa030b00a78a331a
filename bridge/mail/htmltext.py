"""Untrusted email HTML → readable plain text, and plain text → safe HTML for Odoo.

``html_to_text`` uses its own linear tokenizer instead of ``html.parser.HTMLParser``: on the
CPython this project runs (3.11.7, before the CVE-2025-6069 fix) HTMLParser is quadratic on
unterminated tags and comments (96 KB of ``<a `` takes ~80 s) and raises ``AssertionError`` on
``<![`` runs. Every regex below consumes what it scans, so the whole pass is O(n); entities are
decoded with the stdlib ``html.unescape``.
"""

from __future__ import annotations

import html
import re
from typing import Callable

MAX_HTML_CHARS = 2_000_000  # bigger HTML is cut here: the text of a sane email is far smaller
MAX_LINKS = 500  # link bombs: after this many, links are shown as their text only
TRUNCATED = "\n\n[… message truncated]"

_TOKEN = re.compile(
    r"(?P<comment><!--.*?(?:-->|\Z))"  # comments end at EOF when unterminated, as in HTML5
    r"|<(?P<end>/)?(?P<tag>[A-Za-z][^\s/>]*)(?P<attrs>[^>]*)(?:>|\Z)"
    r"|(?P<decl><[!?/][^>]*(?:>|\Z))"  # doctype, CDATA, processing instruction, bogus comment
    r"|(?P<text>(?:[^<]++|<(?![A-Za-z/!?]))++)",  # text, stray "<" included: every position matches
    re.S,
)
_RAW_TEXT_END = {
    "script": re.compile(r"</script\b[^>]*(?:>|\Z)|\Z", re.I),
    "style": re.compile(r"</style\b[^>]*(?:>|\Z)|\Z", re.I),
}
_HREF = re.compile(r"""(?:^|[\s"'/])href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_SRC = re.compile(r"""(?:^|[\s"'/])src\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_ALT = re.compile(r"""(?:^|[\s"'/])alt\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.I)
_SPACES = re.compile(r"\s+")
_INVISIBLE = re.compile("[\u00ad\u034f\u200b-\u200d\u2060\ufeff]")  # preheader padding tricks
_MANY_BLANK_LINES = re.compile(r"\n{4,}")
_TRAILING_SPACES = re.compile(r"[ \t]+\n")
_SCHEME = re.compile(r"^(?:https?://|mailto:|tel:)", re.I)

_PARAGRAPH = frozenset(
    "p h1 h2 h3 h4 h5 h6 blockquote pre table ul ol dl hr address figure form fieldset".split()
)
_LINE = frozenset(
    "div tr li dt dd section article header footer main nav aside center caption thead tbody "
    "tfoot body html option legend figcaption details summary noscript".split()
)
_CELL = frozenset(("td", "th"))


class _TextBuilder:
    """Collects output text; block boundaries ask for *at least* n newlines, so they do not stack."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = 0  # newlines the next text needs before it (0, 1 or 2)
        self.newlines = 0  # newlines already at the end of the output (capped at 2)

    def _append(self, data: str) -> None:
        if data:
            self.parts.append(data)
            stripped = data.rstrip("\n")
            ending = len(data) - len(stripped)
            self.newlines = min(2, self.newlines + ending if not stripped else ending)

    def _flush(self) -> None:
        if self.pending and self.parts:
            self._append("\n" * max(0, self.pending - self.newlines))
        self.pending = 0

    def block(self, newlines: int) -> None:
        self.pending = max(self.pending, newlines)

    def newline(self) -> None:
        self._flush()
        self._append("\n")

    def text(self, data: str) -> None:
        data = _SPACES.sub(" ", _INVISIBLE.sub("", data))
        self._flush()
        if not self.parts or self.newlines or self.parts[-1].endswith(" "):
            data = data.lstrip(" ")
        self._append(data)

    def verbatim(self, data: str) -> None:
        self._flush()
        self._append(data.replace("\r\n", "\n").replace("\r", "\n"))

    def mark(self) -> int:
        self._flush()
        return len(self.parts)

    def since(self, mark: int) -> str:
        return "".join(self.parts[mark:])

    def result(self) -> str:
        text = _TRAILING_SPACES.sub("\n", "".join(self.parts))
        return _MANY_BLANK_LINES.sub("\n\n\n", text).strip()


def _attribute(pattern: re.Pattern[str], attrs: str | None) -> str:
    """An attribute's value from a tag's attribute text, entities decoded; "" when absent."""
    found = pattern.search(attrs or "")
    return html.unescape(next(g for g in found.groups() if g is not None)) if found else ""


def _link_suffix(href: str, text: str) -> str:
    """What to print after a link's text: "(url)" unless the url adds nothing."""
    url = html.unescape(href).strip()
    if not url or url.startswith("#") or url.lower().startswith(("javascript:", "data:")):
        return ""
    shown = _SPACES.sub(" ", text).strip()
    if _SCHEME.sub("", url).rstrip("/").lower() == _SCHEME.sub("", shown).rstrip("/").lower():
        return ""
    return f" ({url})" if shown else f" {url}"


def html_to_text(markup: str, image: Callable[[str, str], str] | None = None) -> str:
    """Readable text of an HTML body; never raises, linear in the input, bounded output.

    ``image(src, alt)``, when given, is asked for the text that stands where an ``<img>`` is (the
    chatter puts inline images back there, bridge/mail/inline_images.py); without it images leave
    no text."""
    if not isinstance(markup, str) or not markup:
        return ""
    truncated = len(markup) > MAX_HTML_CHARS
    source = markup[:MAX_HTML_CHARS]
    out = _TextBuilder()
    in_head = template_depth = pre_depth = links = 0
    link: tuple[str, int] | None = None
    pos, size = 0, len(source)
    while pos < size:
        match = _TOKEN.match(source, pos)
        assert match is not None  # "<" + letter, "!", "?" or "/" is markup; anything else is text
        pos = match.end()
        tag = (match.group("tag") or "").lower()
        if match.group("text") is not None:
            if not (in_head or template_depth):
                data = html.unescape(match.group("text"))
                out.verbatim(data) if pre_depth else out.text(data)
            continue
        if not tag:
            continue  # comment or declaration
        if match.group("end"):
            if tag == "head":
                in_head = 0
            elif tag == "template":
                template_depth = max(0, template_depth - 1)
            elif tag == "pre":
                pre_depth = max(0, pre_depth - 1)
            if tag == "a" and link is not None:
                suffix = _link_suffix(link[0], out.since(link[1])) if links < MAX_LINKS else ""
                links += 1
                out.text(suffix)
                link = None
        else:
            if tag in _RAW_TEXT_END:
                pos = _RAW_TEXT_END[tag].search(source, pos).end()
                continue
            if tag == "head":
                in_head = 1
            elif tag == "body":
                in_head = 0
            elif tag == "template":
                template_depth += 1
            elif tag == "pre":
                pre_depth += 1
            if in_head or template_depth:
                continue
            if tag == "br":
                out.newline()
            elif tag == "img" and image is not None:
                shown = image(_attribute(_SRC, match.group("attrs")), _attribute(_ALT, match.group("attrs")))
                if shown:
                    out.text(shown)
            elif tag == "a":
                href = _HREF.search(match.group("attrs") or "")
                link = (next(g for g in href.groups() if g is not None), out.mark()) if href else None
        if in_head or template_depth:
            continue
        if tag in _PARAGRAPH:
            out.block(2)
        elif tag in _LINE:
            out.block(1)
        elif tag in _CELL:
            out.text(" ")
        if tag == "li" and not match.group("end"):
            out.text("- ")
    text = out.result()
    return text + TRUNCATED if truncated else text


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


def text_to_html(text: str) -> str:
    """Escaped HTML for untrusted text: blank lines start a <p>, single newlines become <br>."""
    if not text:
        return ""
    clean = _CONTROL_CHARS.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).strip("\n")
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(clean) if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line, quote=True) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
