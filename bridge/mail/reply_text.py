"""The customer's new words in a follow-up: quoted history and signature cut off, forwards kept.

A follow-up is posted to the ticket's chatter, where the history it quotes is already there; what
an agent must read is the new text. ``new_text`` cuts, in this order of trust:

* HTML quote containers (Gmail, Thunderbird, Apple Mail, Yahoo, Outlook, Zimbra, Hotmail), when
  the email has HTML: they are marked before ``html_to_text`` so that what comes after a quote
  (bottom-posting) survives;
* ``>`` quoted blocks that an attribution ("On … wrote:", "Am … schrieb …:", "… đã viết:",
  "… написал:", a line ending in ":" that names an address) introduces, that quote mail headers,
  or that follow such a block (interleaved answers): the text between and after them is kept. A
  ``>`` block with none of these is the customer's own quoting ("> 5 users affected") and stays;
* the first history header outside quotes, to the end: an attribution with a date or address,
  Outlook's "-----Original Message-----" and its translations, a "From:/Sent:/Subject:" block
  (EN, DE, FR, ES, VI, RU, … labels) with the "____" line above it;
* then the signature of what is left: "-- ", a mobile client's line ("Sent from my iPhone",
  "Gửi từ iPhone của tôi", "Get Outlook for Android"), a sign-off with a name block below it,
  or a trailing block of short lines holding two or more addresses, URLs or phone numbers.

A forwarded message ("---------- Forwarded message ---------", "Begin forwarded message:") is
evidence the agent needs, so the note and the whole forwarded part are kept.

Why rules of our own and not mail-parser-reply 1.36 (measured as tests/unit/test_reply_text.py
measures; the library with all its languages): on talon's 24 quoted replies the library alone
matches 18, these rules 23, the library's cut passed through these rules 21; on our 53 replies
(tests/data/replies/) 29, 53 and 48. It has no Vietnamese or Russian markers, keeps the quote of
a bottom-posted reply, cuts a forward's content away and reads "From: … / To: …" lines of a
customer's own text as a header; it takes no HTML, so bottom-posting in HTML cannot be kept.

Every scan is linear: each line is looked at a bounded number of times through bounded slices,
and the HTML is walked once with patterns that consume what they scan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from bridge.mail.htmltext import MAX_HTML_CHARS, html_to_text

SCAN_CHARS = 400  # a line is judged by its first SCAN_CHARS characters: headers are short
MAX_ATTRIBUTION_LINES = 3  # "On …, Name <address>\nwrote:" wraps over at most three lines
MAX_INTRO_GAP = 3  # blank lines allowed between an attribution and the quote it introduces
MAX_HEADER_LINES = 12  # an Outlook header block is From, Sent, To, Cc, Subject and wrapped lists
MAX_SIGNATURE_LINES = 12  # a sign-off or contact block longer than this is text, not signature
SIGNATURE_LINE_CHARS = 72  # name, title, phone, address lines are short

# Private-use characters standing for the bounds of an HTML quote in the converted text.
_CITE, _SOFT, _END = "\ue000", "\ue001", "\ue002"
_MARKS = re.compile(f"[{_CITE}{_SOFT}{_END}]")
_OWN, _QUOTE, _CITED = 0, 1, 2  # a line's origin: own text, ``>``/plain-blockquote quote, sure quote


@dataclass(frozen=True)
class Reply:
    """What a follow-up adds: ``text`` to post, whether history was cut, the signature, the rule."""

    text: str
    quoted: bool
    signature: str
    method: str


def new_text(text: str, html: str = "") -> Reply:
    """The new words of a follow-up whose plain part is ``text`` and HTML part ``html``.

    The plain part decides when it shows a quote of its own; the HTML's quote containers decide
    when it does not, or when ``text`` is only the HTML converted (an HTML-only email), since they
    keep a bottom-posted answer that the converted text no longer tells from the quote.
    """
    text, html = text or "", _MARKS.sub("", html or "")  # marks in the HTML would fake quotes
    if not text.strip() and not html.strip():
        return Reply(text="", quoted=False, signature="", method="none")
    marked, names = _mark_html(html) if html else ("", [])
    converted = html_to_text(marked) if html else ""
    derived = _MARK_LINE.sub("", converted) if names else converted
    source = text if text.strip() else derived
    reply = _reply(_plain_lines(source), source)
    from_html = not text.strip() or _squashed(text) == _squashed(derived)
    if names and (from_html or not reply.quoted):
        html_reply = _reply(_marked_lines(converted, names), source)
        if html_reply.quoted:
            return html_reply
    return reply


def _squashed(text: str) -> str:
    return _WHITESPACE.sub("", text)


_WHITESPACE = re.compile(r"\s+")


# --- plain-text rules ---------------------------------------------------------------------------

_VERB_END = re.compile(
    r"(?<!\w)(?:wrote|writes|a\s+écrit|escribió|escreveu|ha\s+scritto|skrev|schreef|"
    r"napisał(?:\(a\))?|napsal(?:\(a\))?|написала?|написали|пишет|đã\s+viết|da\s+viet|kirjoitti|"
    r"yazdı|(?:schrieb|schreef)\s[^:]{1,160})\s*[:：]\s*$",
    re.IGNORECASE,
)
_VERB_INLINE = re.compile(
    r"(?<!\w)(?:wrote|a\s+écrit|escribió|escreveu|ha\s+scritto|schreef|написала?|đã\s+viết|da\s+viet|"
    r"schrieb\s[^:]{1,160})\s*[:：]\s",
    re.IGNORECASE,
)
_OPENER = re.compile(
    r"[-–—*\s]{0,6}(?:on|vào|vao|am|le|el|em|il|op|den|dne|w\s+dniu|in\s+data|"
    r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4})(?!\w)",
    re.IGNORECASE,
)
# Tried only where an "@" stands, so it stays linear on long runs without one.
_ADDRESS = re.compile(r"(?<=[\w.+'-])@[\w-]+(?:\.[\w-]+)+")
_STAMP = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|(?<!\d)(?:19|20)\d\d(?!\d)|(?<!\d)\d{1,2}:\d\d(?!\d)")
_SEPARATOR = re.compile(
    r"\s*-{2,}\s*(?:original message|ursprüngliche nachricht|message d'origine|mensaje original|"
    r"messaggio originale|oorspronkelijk bericht|originalmeddelande|mensagem original|"
    r"wiadomość oryginalna|původní zpráva|thư gốc|thu goc|исходное сообщение)\s*-{2,}\s*",
    re.IGNORECASE,
)
_FORWARD = re.compile(
    r"\s*(?:-{2,}[^-]{0,40}(?:forward|weitergeleitet|transféré|reenviado|inoltrato|encaminhada|"
    r"doorgestuurd|vidarebefordrat|chuyển tiếp|chuyen tiep|пересыла)[^-]{0,40}-{2,}|"
    r"(?:begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié|"
    r"inicio del mensaje reenviado|bắt đầu thư được chuyển tiếp)\s*:)\s*",
    re.IGNORECASE,
)
_RULE_LINE = re.compile(r"\s*(?:_{8,}|-{8,}|—{4,}|={8,})\s*")
_LABEL = re.compile(r"[\s*>]{0,6}([^\W\d_]{1,20}(?: [^\W\d_]{1,20}){0,2})\s{0,2}[:：]")
_LABELS = {
    "from": ("from", "von", "de", "từ", "tu", "от", "van", "da", "från", "fra", "od", "feladó"),
    "sent": (
        "sent", "date", "gesendet", "datum", "envoyé", "enviado", "enviado el", "fecha", "đã gửi", "ngày gửi",
        "ngày", "отправлено", "дата", "verzonden", "inviato", "data", "skickat", "wysłano", "odesláno",
    ),
    "to": ("to", "an", "à", "a", "para", "đến", "tới", "кому", "aan", "till", "do", "komu", "cc", "копия"),
    "subject": (
        "subject", "betreff", "objet", "asunto", "chủ đề", "tiêu đề", "тема", "onderwerp", "oggetto",
        "ämne", "temat", "předmět", "assunto",
    ),
}
_LABEL_KIND = {name: kind for kind, names in _LABELS.items() for name in names}

_MOBILE = re.compile(
    r"(?:sent from my|sent from (?:yahoo|mail|outlook|gmail|aol|icloud|proton|samsung|huawei|xiaomi)|"
    r"sent with|get outlook for|download outlook for|gửi từ|gui tu|được gửi từ|tải outlook|"
    r"envoyé de mon|envoyé depuis|obtenir outlook|von meinem|gesendet von meinem|gesendet mit|"
    r"outlook für|enviado desde|obtener outlook|отправлено с|отправлено из)\b.{0,80}|(?:sent )?via mobile",
    re.IGNORECASE,
)
_DASHES = re.compile(r"--\s*|—\s*")
_SIGN_OFF = re.compile(
    r"(?:best(?: regards| wishes)?|kind(?:est)? regards|regards|warm regards|many thanks|thanks(?: again)?|"
    r"thank you(?: very much)?|thanks and regards|thanks & regards|cheers|br|sincerely|yours sincerely|"
    r"yours truly|all the best|with thanks|thx|trân trọng|tran trong|thân ái|than ai|thân|"
    r"cảm ơn|cám ơn|cam on|em cảm ơn|em cam on|kính thư|kinh thu|mit freundlichen grüßen|"
    r"freundliche grüße|viele grüße|beste grüße|liebe grüße|mfg|lg|gruß|danke|vielen dank|"
    r"cordialement|bien cordialement|bien à vous|merci|salutations|saludos|un saludo|atentamente|"
    r"gracias|cordialmente|с уважением|спасибо|всего доброго)[\s,.!]*",
    re.IGNORECASE,
)
_CONTACT = re.compile(
    r"(?<=[\w.+'-])@[\w-]+\.\w|https?://|www\.|(?:\+?\d[\d ().-]{6,}\d)|"
    r"(?<!\w)(?:tel|phone|mobile|mob|fax|skype|đt|sđt|điện thoại|тел)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.?!:;]\s*$")


# --- the line model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lines:
    """An email's text as lines, each with its origin and the bounded start the rules read."""

    raw: list[str]  # as written (what is kept is returned from these)
    kinds: list[int]  # _OWN, _QUOTE or _CITED
    heads: list[str]  # the first SCAN_CHARS characters, trimmed, quote marks removed
    fields: list[str | None]  # the header field a head opens with ("from", "sent", …), if any
    regions: list[str]  # the HTML quote container a line stands in, "" for none


def _lines(raw: list[str], kinds: list[int], regions: list[str]) -> _Lines:
    heads = [
        _head(line.lstrip(" \t>") if kind == _QUOTE else line) for line, kind in zip(raw, kinds)
    ]
    return _Lines(raw, kinds, heads, [_field(head) for head in heads], regions)


def _head(line: str) -> str:
    """The bounded, trimmed start of a line: headers and markers are short."""
    return line[:SCAN_CHARS].strip().replace("\u200e", "").replace("\u200f", "")


def _field(head: str) -> str | None:
    match = _LABEL.match(head) if ":" in head[:48] or "：" in head[:48] else None
    return _LABEL_KIND.get(match.group(1).casefold()) if match else None


def _plain_lines(text: str) -> _Lines:
    raw = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return _lines(raw, [_QUOTE if line.lstrip(" \t")[:1] == ">" else _OWN for line in raw], [""] * len(raw))


_MARK_LINE = re.compile(f"([{_CITE}{_SOFT}]\\d*|{_END})")


def _marked_lines(text: str, names: list[str]) -> _Lines:
    """Lines of converted HTML, told apart by the marks ``_mark_html`` put around its quotes."""
    raw: list[str] = []
    kinds: list[int] = []
    regions: list[str] = []
    region, name = _OWN, ""
    for line in _MARK_LINE.sub("\n\\1\n", text).split("\n"):
        if line[:1] in (_CITE, _SOFT, _END) and _MARK_LINE.fullmatch(line):
            if line == _END:
                region, name = _OWN, ""
            else:
                number = int(line[1:] or -1)
                region = _CITED if line[0] == _CITE else _QUOTE
                name = names[number] if 0 <= number < len(names) else ""
            continue
        raw.append(line)
        kinds.append(region if region != _OWN else _QUOTE if line.lstrip(" \t")[:1] == ">" else _OWN)
        regions.append(name)
    return _lines(raw, kinds, regions)


# --- history ------------------------------------------------------------------------------------


def _header_block(lines: _Lines, start: int) -> bool:
    """Whether lines from ``start`` are a mail header block: From, a date, and a subject or address."""
    seen: set[str] = set()
    address, loose = False, 0
    for index in range(start, min(len(lines.raw), start + MAX_HEADER_LINES)):
        if lines.kinds[index] != lines.kinds[start] or not lines.heads[index]:
            break
        field = lines.fields[index]
        if field is None:
            loose += 1  # a wrapped To: list
            if loose > 2 or not seen:
                break
        else:
            seen.add(field)
            loose = 0
        address = address or _ADDRESS.search(lines.heads[index]) is not None
    return {"from", "sent"} <= seen and ("subject" in seen or address)


def _attribution(lines: _Lines, end: int, strict: bool) -> int | None:
    """First line of an attribution that ends at line ``end``, or None.

    Strict (history follows unquoted): "On …/Vào …/Am …/<date> … wrote:" with a date or address.
    Loose (a quote follows): also any "… wrote:" or a line ending in ":" that holds an address.
    """
    if lines.kinds[end] != _OWN or not lines.heads[end].endswith((":", "：")):
        return None
    first, opened = end, False
    for index in range(end, max(-1, end - MAX_ATTRIBUTION_LINES), -1):
        if lines.kinds[index] != _OWN or not lines.heads[index]:
            break
        if _OPENER.match(lines.heads[index]):
            first, opened = index, True
            break
    joined = " ".join(lines.heads[first:end + 1])
    verb = _VERB_END.search(joined) is not None
    address = _ADDRESS.search(joined) is not None
    if verb and (opened or address) and _STAMP.search(joined):
        return first
    if not strict and (verb or address):
        return first
    return None


def _inline_attribution(head: str) -> bool:
    """Yahoo's mobile layout: "On <date>, Name <address> wrote:   <the quoted text>" on one line."""
    if not _OPENER.match(head):
        return False
    verb = _VERB_INLINE.search(head)
    return verb is not None and _STAMP.search(head, 0, verb.start()) is not None


def _rise(lines: _Lines, start: int) -> int:
    """Where a history header really starts: above it, blank lines and a "____" or "-----" rule."""
    index = start
    while index > 0 and lines.kinds[index - 1] == _OWN and not lines.heads[index - 1]:
        index -= 1
    above = lines.heads[index - 1] if index > 0 and lines.kinds[index - 1] == _OWN else ""
    return index - 1 if _RULE_LINE.fullmatch(above) or _SEPARATOR.fullmatch(above) else start


def _intro(lines: _Lines, quote: int) -> int | None:
    """First line of the attribution that introduces the quote starting at line ``quote``."""
    gap = quote - 1
    while gap >= 0 and quote - gap <= MAX_INTRO_GAP and lines.kinds[gap] == _OWN and not lines.heads[gap]:
        gap -= 1
    return _attribution(lines, gap, strict=False) if gap >= 0 else None


def _opens_like_mail(lines: _Lines, start: int, end: int) -> bool:
    """Whether a quote block opens like quoted mail: headers, an attribution or a separator."""
    index = next((i for i in range(start, min(end, start + MAX_INTRO_GAP + 1)) if lines.heads[i]), None)
    if index is None:
        return False
    head = lines.heads[index]
    return (
        _header_block(lines, index)
        or _SEPARATOR.fullmatch(head) is not None
        or head.endswith(":") and _VERB_END.search(head) is not None and _STAMP.search(head) is not None
    )


@dataclass(frozen=True)
class _Cut:
    """The outcome of the history scan: which lines stay, and where the rest begins."""

    keep: list[bool]
    end: int  # lines from here on are history (or, with forward, the forwarded part)
    method: str
    forward: bool


def _scan(lines: _Lines) -> _Cut:
    """Drop quoted blocks that are history and find the first history header outside quotes."""
    kinds = list(lines.kinds)  # a forward that Gmail wraps as a quote turns back into own text
    lines = replace(lines, kinds=kinds)
    size = len(kinds)
    keep = [True] * size
    method, history = "", False
    index = 0
    while index < size:
        if kinds[index] != _OWN:
            end = index
            while end < size and kinds[end] != _OWN:
                end += 1
            cited = _CITED in kinds[index:end]
            first = next((head for head in lines.heads[index:end] if head), "")
            if cited and _FORWARD.fullmatch(first):
                kinds[index:end] = [_OWN] * (end - index)
                continue
            intro = _intro(lines, index)
            if cited or history or intro is not None or _opens_like_mail(lines, index, end):
                start = index if intro is None else intro
                keep[start:end] = [False] * (end - start)
                if not method:
                    region = next((name for name in lines.regions[index:end] if name), "")
                    method = f"html:{region}" if region else "attribution" if intro is not None else "quote"
                history = True
            index = end
            continue
        head = lines.heads[index]
        if head:
            if _FORWARD.fullmatch(head):
                return _Cut(keep, index, method or "forward", forward=True)
            if _SEPARATOR.fullmatch(head):
                return _Cut(keep, index, method or "separator", forward=False)
            if lines.fields[index] and _header_block(lines, index):
                return _Cut(keep, _rise(lines, index), method or "header", forward=False)
            if _inline_attribution(head):
                return _Cut(keep, index, method or "attribution", forward=False)
            first_line = _attribution(lines, index, strict=True)
            if first_line is not None:
                after = index + 1
                while after < size and kinds[after] == _OWN and not lines.heads[after]:
                    after += 1
                if after >= size or kinds[after] == _OWN:
                    return _Cut(keep, first_line, method or "attribution", forward=False)
        index += 1
    return _Cut(keep, size, method, forward=False)


# --- signature ----------------------------------------------------------------------------------


def _signature_start(heads: list[str]) -> int | None:
    """Index of the first signature line among the heads of the kept lines."""
    for index, head in enumerate(heads):
        if head[:1] in ("-", "—") and _DASHES.fullmatch(head):
            return index
        if len(head) <= 120 and _MOBILE.fullmatch(head):
            named = index >= 2 and not heads[index - 2] and _name_like(heads[index - 1])
            return index - 1 if named and any(heads[: index - 2]) else index
    filled = [index for index, head in enumerate(heads) if head]
    for position in range(len(filled) - 2, max(0, len(filled) - 2 - MAX_SIGNATURE_LINES), -1):
        if len(heads[filled[position]]) <= 40 and _SIGN_OFF.fullmatch(heads[filled[position]]):
            below = [heads[index] for index in filled[position + 1:]]
            if _name_like(below[0]) and all(_signature_like(head) for head in below[1:]):
                return filled[position]
            break
    return _contact_block(heads)


def _name_like(head: str) -> bool:
    """The line under a sign-off that makes it a signature: a name, not a sentence or a number."""
    words = head.split()
    return 0 < len(words) <= 5 and not any(char.isdigit() for char in head) and not (
        len(words) > 3 and _SENTENCE_END.search(head)
    )


def _signature_like(head: str) -> bool:
    """A short title, company, address or contact line, not a sentence or a P.S."""
    if len(head) > SIGNATURE_LINE_CHARS or head.lower().startswith(("p.s", "ps:", "ps ")):
        return False
    words = head.split()
    lower = sum(1 for word in words[1:] if word[:1].islower())
    sentence = len(words) > 4 and _SENTENCE_END.search(head) is not None
    return _CONTACT.search(head) is not None or len(words) <= 8 and lower <= 3 and not sentence


def _contact_block(heads: list[str]) -> int | None:
    """Start of the trailing paragraphs of short lines holding two or more contact details.

    Only when a line of real text stands above them: a short note of contact details alone
    ("my new number is …") is the message itself.
    """
    start, contacts, pending, count = None, 0, 0, 0
    for index in range(len(heads) - 1, -1, -1):
        head = heads[index]
        if not head:
            if count:
                start, contacts, pending = index + 1, contacts + pending, 0
            continue
        count += 1
        if count > MAX_SIGNATURE_LINES or not _signature_like(head):
            return start if start is not None and contacts >= 2 else None
        pending += _CONTACT.search(head) is not None
    return None


# --- the reply ----------------------------------------------------------------------------------


def _join(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def _reply(lines: _Lines, original: str) -> Reply:
    cut = _scan(lines)
    kept = [index for index in range(cut.end) if cut.keep[index]]
    quoted = (cut.end < len(lines.raw) and not cut.forward) or len(kept) < cut.end
    start = _signature_start([lines.heads[index] for index in kept])
    split = len(kept) if start is None else start
    body = _join([lines.raw[index] for index in kept[:split]])
    signature = _join([lines.raw[index] for index in kept[split:]])
    if cut.forward:
        forwarded = _join(lines.raw[cut.end:])
        body = f"{body}\n\n{forwarded}" if body.strip() else forwarded
    if not body.strip():
        return Reply(text=original.strip(), quoted=False, signature="", method="fallback")
    method = cut.method or ("signature" if signature else "none")
    return Reply(text=body, quoted=quoted, signature=signature, method=method)


# --- HTML markers -------------------------------------------------------------------------------

_TAG = re.compile(r"<!--.*?(?:-->|\Z)|<(/?)([A-Za-z][^\s/>]*)([^>]*)(?:>|\Z)", re.S)
_ATTR = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>"']+)))?""")
_RAW_TEXT_END = {
    "script": re.compile(r"</script\b[^>]*(?:>|\Z)|\Z", re.I),
    "style": re.compile(r"</style\b[^>]*(?:>|\Z)|\Z", re.I),
}
# Classes of an element that holds a quoted message; what follows the element is kept.
_QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix", "protonmail_quote", "zmail_extra")
# Ids (Outlook on the web prefixes them with "x_") after which everything is history.
_TAIL_IDS = frozenset(
    (
        "divRplyFwdMsg", "appendonsend", "OLK_SRC_BODY_SECTION", "mail-editor-reference-message-container",
        "stopSpelling", "zwchr",
    )
)


def _attributes(raw: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for match in _ATTR.finditer(raw):
        name = match.group(1).lower()
        if name not in found:
            found[name] = next((g for g in match.group(2, 3, 4) if g is not None), "")
    return found


def _marker(tag: str, raw_attrs: str) -> tuple[str, str] | None:
    """("cite" | "soft" | "tail", name) when this start tag opens a quote, else None."""
    if "=" not in raw_attrs:
        return ("soft", "blockquote") if tag == "blockquote" else None
    attrs = _attributes(raw_attrs)
    element_id = attrs.get("id", "")
    element_id = element_id[2:] if element_id.startswith("x_") else element_id
    if element_id in _TAIL_IDS:
        return "tail", element_id
    classes = attrs.get("class", "").split()
    name = next((name for name in _QUOTE_CLASSES if name in classes), None)
    if name is not None:
        return "cite", name
    if tag == "blockquote":
        cite = attrs.get("type", "").lower() == "cite"
        return ("cite", "blockquote-cite") if cite else ("soft", "blockquote")
    return None


def _mark_html(html: str) -> tuple[str, list[str]]:
    """The HTML with marks around its quote containers (a tail marker's to the end), and their names.

    Only outermost containers are marked; nested quotes belong to them.
    """
    source = html[:MAX_HTML_CHARS]
    out: list[str] = []
    names: list[str] = []
    region: tuple[str, int] | None = None  # tag and nesting depth of the open quote element
    copied = scan = 0
    for match in _TAG.finditer(source):
        if match.start() < scan:
            continue  # inside a script or style skipped below
        scan = match.end()
        closing, tag = match.group(1), (match.group(2) or "").lower()
        if tag in _RAW_TEXT_END and not closing:
            scan = _RAW_TEXT_END[tag].search(source, scan).end()
            continue
        if region is not None:
            if tag == region[0]:
                depth = region[1] + (-1 if closing else 1)
                region = (tag, depth) if depth else None
                if region is None:
                    out.append(source[copied:scan] + f"<div>{_END}</div>")
                    copied = scan
            continue
        found = None if closing or not tag else _marker(tag, match.group(3) or "")
        if found is None:
            continue
        kind, name = found
        out.append(source[copied:match.start()])
        copied = match.start()
        out.append(f"<div>{_SOFT if kind == 'soft' else _CITE}{len(names)}</div>")
        names.append(name)
        if kind == "tail":
            return "".join(out) + source[copied:] + f"<div>{_END}</div>", names
        region = (tag, 1)
    out.append(source[copied:])
    if region is not None:
        out.append(f"<div>{_END}</div>")
    return "".join(out), names
