"""Outgoing replies: Jinja2 templates (text + HTML) → a MIME message with threading headers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.policy import Compat32
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate
from pathlib import Path

import jinja2

from bridge.errors import ConfigurationError, RejectedByService
from bridge.mail.thread_ids import make_message_id, strip_reply_prefixes, subject_tag
from bridge.models import InboundEmail


class _PlainShortLines(Compat32):
    """compat32 folding at 78 columns, except that a header line that is already short plain
    ASCII is written as it is, which is what Header.encode returns for it after splitting and
    re-joining it word by word: that was 40% of the CPU of composing a reply."""

    def _fold(self, name: str, value: object, sanitize: bool) -> str:
        if (
            isinstance(value, str)
            and value.isascii()
            and len(name) + 2 + len(value) <= (self.max_line_length or 78)
            and "\r" not in value
            and "\n" not in value
        ):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


# Long headers (References with many ids) fold at 78 columns: RFC 5322 forbids lines over 998.
_FOLDING = _PlainShortLines(max_line_length=78)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+")


@dataclass(frozen=True)
class OutgoingMail:
    """A composed reply, ready for the outbox."""

    message_id: str
    sender: str
    recipient: str
    subject: str
    text: str
    raw: str


def _one_line(text: str, limit: int = 200) -> str:
    """Header-safe text: no control characters (no header injection), bounded length."""
    return _CONTROL.sub(" ", text).strip()[:limit]


class Composer:
    """Renders the operator-overridable templates into replies that thread in every client."""

    def __init__(
        self,
        templates_dir: str | Path,
        *,
        from_address: str,
        from_name: str,
        domain: str,
        secret: bytes,
        tag_prefix: str,
        max_references: int = 32,
    ) -> None:
        path = Path(templates_dir)
        if not path.is_dir():
            raise ConfigurationError(f"tickets.templates_dir: {path} is not a folder")
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(path)),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self.from_address = from_address
        self.from_name = from_name
        self.domain = domain
        self.secret = secret
        self.tag_prefix = tag_prefix
        self.max_references = max_references
        self.loop_token = from_address.lower()

    def _render(self, name: str, **values: object) -> str:
        try:
            return self._env.get_template(name).render(**values)
        except jinja2.TemplateError as exc:
            raise ConfigurationError(f"template {name}: {exc}") from exc

    def acknowledgement(self, email: InboundEmail, ticket_id: int) -> OutgoingMail:
        """The reply that tells a customer their ticket exists and how to follow up."""
        return self.reply(email, ticket_id, template="ack", kind="ack")

    def reply(
        self, email: InboundEmail, ticket_id: int, *, template: str, kind: str, values: dict | None = None
    ) -> OutgoingMail:
        """Any templated reply to ``email``: ``<template>.subject.j2``, ``.txt.j2``, ``.html.j2``;
        ``values`` add to the standard ones (``lang``, ``test_mode`` for the login replies)."""
        tag = subject_tag(ticket_id, self.tag_prefix)
        untagged = re.sub(rf"\s*\[#{re.escape(self.tag_prefix)}\d+\]", "", _one_line(email.subject), flags=re.I)
        original = strip_reply_prefixes(untagged).strip() or "(no subject)"
        values = {
            "customer_name": _one_line(email.from_name) or email.from_addr,
            "customer_email": email.from_addr,
            "subject": original,
            "ticket_id": ticket_id,
            "ticket_tag": tag,
            "team_name": self.from_name,
            "lang": "en",
            "test_mode": False,
            **(values or {}),
        }
        subject = _one_line(self._render(f"{template}.subject.j2", **values), 250)
        text = self._render(f"{template}.txt.j2", **values)
        html = self._render(f"{template}.html.j2", **values)
        message_id = make_message_id(ticket_id, self.domain, self.secret, kind=kind)
        if not _ADDRESS.fullmatch(email.from_addr):
            raise RejectedByService(f"cannot reply to {email.from_addr!r}: not a plain address", service="smtp")
        try:
            recipient = formataddr((values["customer_name"], email.from_addr), charset="utf-8")
            sender = formataddr((self.from_name, self.from_address), charset="utf-8")
        except (ValueError, UnicodeError) as exc:
            raise RejectedByService(f"cannot reply to {email.from_addr!r}: {exc}", service="smtp") from exc

        # compat32 MIME classes: several times cheaper than EmailMessage's header parsing, which
        # dominated the cost of a reply under load; every header value here is ours or sanitised.
        msg = MIMEMultipart("alternative")
        msg["From"] = sender
        msg["To"] = recipient
        msg["Subject"] = Header(subject, "utf-8") if not subject.isascii() else subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id
        if email.message_id:
            references = [*email.references, email.message_id][-self.max_references :]
            msg["In-Reply-To"] = email.message_id
            msg["References"] = " ".join(references)
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
        msg["X-Loop"] = self.loop_token
        msg["X-Bridge-Template"] = template
        msg.attach(MIMEText(text, "plain", "utf-8"))
        msg.attach(MIMEText(html, "html", "utf-8"))
        return OutgoingMail(
            message_id=message_id,
            sender=self.from_address,
            recipient=email.from_addr,
            subject=subject,
            text=text,
            raw=msg.as_string(maxheaderlen=78, policy=_FOLDING),
        )
