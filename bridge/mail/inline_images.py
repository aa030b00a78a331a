"""Inline images: which of an email's images its HTML shows by ``cid:``, and chatter HTML that
shows them where the sender put them.

Odoo's own mail gateway does this in ``mail.thread._process_attachments_for_post``: an ``<img
src="cid:…">`` whose Content-ID names an attachment of the message becomes ``/web/image/<id>?
access_token=<token>``. Over the external API the bridge cannot hand Odoo the parts themselves
(``message_post(attachments=…)`` wants raw bytes, which neither JSON-RPC nor XML-RPC carries),
so it does the same in two steps: the body made here carries ``<img src="cid:…">`` tags of the
bridge's own making, with the email's words in it as escaped text only (the email's HTML never
passes), and the Odoo adapter points them at the ir.attachment records it created
(bridge/odoo/attachments.py). Remote images (tracking pixels) and ``data:`` URLs are never shown.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import replace
from html import escape
from urllib.parse import unquote

from bridge.mail.htmltext import html_to_text, text_to_html
from bridge.models import Attachment

# Shown inline by a browser as a picture and nothing else (SVG can carry markup: an attachment).
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
_CID_URL = re.compile(r"\s*cid:", re.I)


def content_id(value: str) -> str:
    """A Content-ID header value as ``cid:`` URLs name it: without angle brackets and spaces."""
    return value.strip().strip("<>").strip()


def cid_of(src: str) -> str:
    """The Content-ID an img ``src`` names (RFC 2392: ``cid:`` and the id, %-encoded), lower-cased
    for comparison; "" when it is not a ``cid:`` URL."""
    found = _CID_URL.match(src)
    return content_id(unquote(src[found.end():])).lower() if found else ""


def shown_cids(html: str) -> set[str]:
    """The Content-IDs (lower-cased) the HTML shows in ``<img>`` tags, as the chatter renders it."""
    found: set[str] = set()

    def collect(src: str, alt: str) -> str:
        found.add(cid_of(src))
        return ""

    html_to_text(html, image=collect)
    return found - {""}


def mark_inline(attachments: Sequence[Attachment], html: str) -> tuple[Attachment, ...]:
    """``attachments`` with ``content_id`` left only on the images the HTML shows: a Content-ID
    nothing in the body points to is an ordinary attachment."""
    if not any(a.content_id for a in attachments):
        return tuple(attachments)
    shown = shown_cids(html)
    return tuple(a if not a.content_id or a.content_id.lower() in shown else replace(a, content_id="")
                 for a in attachments)


def image_tag(image: Attachment, alt: str = "") -> str:
    """The bridge's own ``<img>`` for an inline image, to be pointed at its Odoo attachment."""
    return f'<img src="cid:{escape(image.content_id)}" alt="{escape(alt or image.filename)}">'


def images_html(images: Sequence[Attachment]) -> str:
    """Inline images shown one per paragraph (those the text does not place)."""
    return "".join(f"<p>{image_tag(image)}</p>" for image in images)


def chatter_html(html: str, images: Sequence[Attachment]) -> str:
    """The HTML body as escaped text with each of ``images`` back where the body shows it; images
    it does not place (beyond the converted part, or only in CSS) follow the text."""
    by_cid = {image.content_id.lower(): image for image in images if image.content_id}
    nonce = secrets.token_hex(8)  # the email cannot know it, so it cannot forge a placeholder
    placed: list[tuple[Attachment, str]] = []

    def place(src: str, alt: str) -> str:
        image = by_cid.get(cid_of(src))
        if image is None:
            return ""
        placed.append((image, alt))
        return f" [{nonce}:{len(placed) - 1}] "

    body = text_to_html(html_to_text(html, image=place))
    for number, (image, alt) in enumerate(placed):
        body = body.replace(f"[{nonce}:{number}]", image_tag(image, alt))
    shown = {id(image) for image, _ in placed}
    return body + images_html([image for image in by_cid.values() if id(image) not in shown])
