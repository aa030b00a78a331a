"""How an email's attachments are stored in Odoo: markup made inert, so it never runs in Odoo's
origin; inline images linked from the chatter the way Odoo's own mail gateway links them."""

from __future__ import annotations

import re
import uuid
from html import unescape
from pathlib import PurePosixPath

INERT_MIMETYPE = "application/octet-stream"
# Types saying nothing about the content: then the file's extension tells what a browser would make of it.
_GENERIC_TYPES = frozenset({
    "application/octet-stream", "binary/octet-stream", "text/plain", "application/unknown",
    "application/x-unknown", "application/download", "application/force-download", "application/x-download",
})
_MARKUP_EXTENSIONS = frozenset({
    ".html", ".htm", ".xhtml", ".xht", ".shtml", ".shtm", ".svg", ".svgz", ".xml", ".xsl", ".xslt",
})
# The src of the bridge's own inline-image tags (bridge/mail/inline_images.py). Email text in a
# body is escaped, so a literal `src="cid:` can only be one of those tags.
_INLINE_SRC = re.compile(r'src="cid:([^"]*)"')


def _renders_as_markup(mimetype: str) -> bool:
    """Whether a browser shows this type as a document that can run scripts: HTML and XHTML,
    text/x-server-parsed-html, SVG, XML and XSLT (``+xml`` suffixes included; Office's
    ``vnd.openxmlformats-…`` types are not XML documents to a browser)."""
    subtype = mimetype.partition("/")[2]
    return "html" in subtype or "svg" in subtype or subtype in ("xml", "xsl", "xslt") or subtype.endswith("+xml")


def stored_mimetype(filename: str, content_type: str) -> str:
    """The mimetype an email's attachment is stored with in Odoo.

    Markup (by its type, or by its extension when the type is generic or missing) is stored as
    ``application/octet-stream``, the file name kept: Odoo serves an attachment with its stored
    type, so an HTML or SVG file from a stranger would otherwise open as a live page in Odoo's
    origin, with the agent's session, when an agent clicks it. A missing type is stored as that
    too rather than left to Odoo, which would guess it from the name or the content.
    """
    kind = content_type.partition(";")[0].strip().lower() or INERT_MIMETYPE
    extension = PurePosixPath(filename.strip().lower()).suffix
    if _renders_as_markup(kind) or (kind in _GENERIC_TYPES and extension in _MARKUP_EXTENSIONS):
        return INERT_MIMETYPE
    return content_type.strip() or INERT_MIMETYPE


def access_token() -> str:
    """A new ir.attachment access token, made as Odoo makes them (``_generate_access_token``)."""
    return str(uuid.uuid4())


def image_url(attachment_id: int, token: str) -> str:
    """Where Odoo serves an attachment as an image: what ``_process_attachments_for_post`` writes
    into a posted body for a ``cid:`` image (the token lets notified followers' mail show it too)."""
    return f"/web/image/{attachment_id}?access_token={token}"


def link_inline_images(body_html: str, urls: dict[str, str]) -> str:
    """``body_html`` with each inline-image tag pointed at its attachment's URL (``urls``: Content-ID
    → URL); a tag whose image was not stored is left without a source."""
    return _INLINE_SRC.sub(lambda found: f'src="{urls.get(unescape(found.group(1)), "")}"', body_html)
