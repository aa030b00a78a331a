"""Outgoing mail: Jinja2 templates (text + HTML) → a MIME message with threading headers and a kind."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from collections.abc import Sequence
from email import encoders
from email.header import Header
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import formataddr, formatdate
from pathlib import Path

import idna
import jinja2

from bridge.errors import ConfigurationError, Undeliverable
from bridge.mail.thread_ids import body_ref, make_message_id, strip_reply_prefixes, subject_tag
from bridge.models import Attachment, InboundEmail

# The defaults ship inside the package (pyproject.toml package-data); tickets.templates_dir, when
# set, is a folder of overrides consulted first, file by file.
PACKAGED_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
# Every template the code renders: <name>.subject.j2, .txt.j2 and .html.j2 must exist for each.
TEMPLATE_NAMES = ("ack", "login_reactivated", "login_reset", "login_escalated", "login_denied", "agent_reply",
                  "closed", "reminder", "closed_no_response", "attachments_left_out")
NOTICE_TEMPLATES = ("digest",)  # mail on no ticket (Composer.notice): the support leads' digest
TEMPLATE_PARTS = ("subject", "txt", "html")


class MessageKind(enum.StrEnum):
    """What an outgoing mail is: decides its automatic-reply headers and its Message-ID token."""

    ACKNOWLEDGEMENT = "acknowledgement"
    AUTOMATION_OUTCOME = "automation_outcome"
    AGENT_REPLY = "agent_reply"
    CLOSING_NOTICE = "closing_notice"
    REMINDER = "reminder"
    FILES_LEFT_OUT = "files_left_out"
    DIGEST = "digest"  # the support leads' weekly digest: no ticket, no customer

    @property
    def automatic(self) -> bool:
        """Sent by the bridge on its own (RFC 3834 Auto-Submitted), not written by a person."""
        return self is not MessageKind.AGENT_REPLY

    @property
    def id_token(self) -> str:
        """The ``kind`` part of its Message-ID (bridge/mail/thread_ids.py). Ids are verified with
        the token they carry, so ids minted before kinds existed (``ack``, ``login``) still verify."""
        return _ID_TOKENS[self]


_ID_TOKENS = {
    MessageKind.ACKNOWLEDGEMENT: "ack",  # unchanged from before kinds existed
    MessageKind.AUTOMATION_OUTCOME: "auto",  # was "login" (the template's prefix)
    MessageKind.AGENT_REPLY: "agent",
    MessageKind.CLOSING_NOTICE: "close",
    MessageKind.REMINDER: "remind",
    MessageKind.FILES_LEFT_OUT: "files",
    MessageKind.DIGEST: "digest",
}


class _PlainShortLines(Compat32):
    """compat32 folding at 78 columns, except that a header line that is already short plain
    ASCII is written as it is, which is what Header.encode returns for it after splitting and
    re-joining it word by word: that was 40% of the CPU of composing a reply.

    With ``raw_utf8`` (a message for an SMTPUTF8 session, RFC 6532) a non-ASCII string value, an
    internationalised address, is written as UTF-8 as it is: compat32 would turn it into an
    encoded word, which is not an address any more."""

    raw_utf8 = False

    def _fold(self, name: str, value: object, sanitize: bool) -> str:
        if isinstance(value, str) and "\r" not in value and "\n" not in value:
            if value.isascii() and len(name) + 2 + len(value) <= (self.max_line_length or 78):
                return f"{name}: {value}{self.linesep}"
            if self.raw_utf8 and not value.isascii():
                return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


# Long headers (References with many ids) fold at 78 columns: RFC 5322 forbids lines over 998.
_FOLDING = _PlainShortLines(max_line_length=78)
_FOLDING_UTF8 = _PlainShortLines(max_line_length=78, raw_utf8=True)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ADDRESS = re.compile(r"[^\s\x00-\x1f\x7f<>()\[\],;:\"@]+@[^\s\x00-\x1f\x7f<>()\[\],;:\"@]+")
_MAX_ADDRESS = 254  # RFC 5321's path limit (256) less the angle brackets


@dataclass(frozen=True)
class OutgoingMail:
    """A composed mail, ready for the outbox.

    ``raw`` is a str: ASCII, or (``needs_smtputf8``) UTF-8 headers for an internationalised
    address, which the SMTP adapter sends encoded as UTF-8 in an SMTPUTF8 session."""

    message_id: str
    sender: str
    recipient: str
    subject: str
    text: str
    raw: str
    kind: MessageKind
    template: str
    needs_smtputf8: bool = False
    cc: tuple[str, ...] = ()
    mailbox: str = ""  # the mailbox it is sent from (its SMTP server)

    @property
    def recipients(self) -> list[str]:
        """Everyone on the envelope: the customer, then the Cc's."""
        return [self.recipient, *self.cc]


def _one_line(text: str, limit: int = 200) -> str:
    """Header-safe text: no control characters (no header injection), bounded length."""
    return _CONTROL.sub(" ", text).strip()[:limit]


def envelope_address(address: str) -> tuple[str, bool]:
    """``address`` as it goes on the envelope and in the headers, and whether that needs SMTPUTF8.

    An ASCII local part at an internationalised domain is written with the domain's A-labels
    (IDNA 2008, UTS 46), which every server accepts; only a non-ASCII local part needs SMTPUTF8.
    """
    if address.isascii():
        return address, False
    local, _, domain = address.rpartition("@")
    if local.isascii():
        try:
            return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}", False
        except idna.IDNAError:
            pass  # not a valid IDN: only a server that takes UTF-8 as it is may make sense of it
    return address, True


def _mailbox(name: str, address: str) -> str:
    """``Name <address>`` for a header: the name as formataddr writes it (an encoded word when it
    is not ASCII), the address as it is, UTF-8 included (RFC 6532)."""
    if address.isascii():
        return formataddr((name, address), charset="utf-8")
    if not name:
        return address
    placeholder = "placeholder@invalid"
    phrase = formataddr((name, placeholder), charset="utf-8").removesuffix(f" <{placeholder}>")
    return f"{phrase} <{address}>"


def _attachment_part(attachment: Attachment) -> MIMEBase:
    """One file as a base64 MIME part, its name as an RFC 2231 parameter when it is not ASCII."""
    maintype, _, subtype = (attachment.content_type or "").partition("/")
    if not (maintype and subtype) or _CONTROL.search(attachment.content_type):
        maintype, subtype = "application", "octet-stream"
    part = MIMEBase(maintype, subtype)
    part.set_payload(attachment.payload)
    encoders.encode_base64(part)
    name = _one_line(attachment.filename, 200).replace('"', "'") or "attachment"
    part.add_header("Content-Disposition", "attachment", filename=name if name.isascii() else ("utf-8", "", name))
    return part


_HIDDEN = ('<div style="display:none;max-height:0;overflow:hidden;font-size:0;line-height:0;color:transparent" '
           'aria-hidden="true">{}</div>')


def _with_hidden(html: str, ref: str) -> str:
    """The marker as an invisible block at the end of the HTML body (quoted along with it)."""
    block = _HIDDEN.format(ref)
    at = html.lower().rfind("</body>")
    return html[:at] + block + html[at:] if at >= 0 else html + block


def template_loader(override: str | Path | None) -> jinja2.BaseLoader:
    """The packaged templates, behind the override folder when one is configured."""
    packaged = jinja2.FileSystemLoader(str(PACKAGED_TEMPLATES))
    if not override:
        return packaged
    path = Path(override)
    if not path.is_dir():
        raise ConfigurationError(f"tickets.templates_dir: {path} is not a folder")
    return jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(path)), packaged])


class Composer:
    """Renders the templates (packaged, or the operator's overrides) into mail that threads in
    every client and says what kind of mail it is."""

    def __init__(
        self,
        templates_dir: str | Path | None,
        *,
        from_address: str,
        from_name: str,
        domain: str,
        secret: bytes,
        tag_prefix: str,
        max_references: int = 32,
        mailbox: str = "",
        loop_token: str = "",
    ) -> None:
        """``templates_dir``: a folder of overrides, or empty/None for the packaged templates only.
        ``mailbox`` names the mailbox the mail goes out from; ``loop_token`` (X-Loop, one for
        the whole bridge so the guard knows every mailbox's mail) defaults to the From address."""
        self._env = jinja2.Environment(
            loader=template_loader(templates_dir),
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
        self.mailbox = mailbox
        self.loop_token = loop_token or from_address.lower()

    def _render(self, name: str, **values: object) -> str:
        try:
            return self._env.get_template(name).render(**values)
        except jinja2.TemplateError as exc:
            raise ConfigurationError(f"template {name}: {exc}") from exc

    def acknowledgement(self, email: InboundEmail, ticket_id: int) -> OutgoingMail:
        """The reply that tells a customer their ticket exists and how to follow up."""
        return self.reply(email, ticket_id, template="ack", kind=MessageKind.ACKNOWLEDGEMENT)

    def reply(
        self,
        email: InboundEmail,
        ticket_id: int,
        *,
        template: str,
        kind: MessageKind | str,
        values: dict | None = None,
        attachments: Sequence[Attachment] = (),
        cc: Sequence[str] = (),
        seed: str = "",
    ) -> OutgoingMail:
        """Any templated mail in answer to ``email``: ``<template>.subject.j2``, ``.txt.j2``,
        ``.html.j2``; ``values`` add to the standard ones (``lang``, ``test_mode`` for the login
        replies). ``cc``: more addresses, each left out when it is not a plain address. ``seed``
        makes the Message-ID a function of it (see make_message_id).
        Raises Undeliverable for an address no mail can ever be sent to."""
        kind = MessageKind(kind)
        recipient, recipient_utf8 = self._recipient(email.from_addr)
        sender, sender_utf8 = envelope_address(self.from_address)
        copies = [self._copy(address) for address in dict.fromkeys(cc) if address.lower() != email.from_addr.lower()]
        cc_addresses = tuple(address for address, _ in filter(None, copies))
        needs_smtputf8 = recipient_utf8 or sender_utf8 or any(utf8 for _, utf8 in filter(None, copies))

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
        subject, text, html = self._render_parts(template, values)
        message_id = make_message_id(ticket_id, self.domain, self.secret, kind=kind.id_token, seed=seed)
        ref = body_ref(ticket_id, self.secret)  # threads the answer when a provider replaced our Message-ID

        # compat32 MIME classes: several times cheaper than EmailMessage's header parsing, which
        # dominated the cost of a reply under load; every header value here is ours or sanitised.
        body = MIMEMultipart("alternative")
        body.attach(MIMEText(f"{text.rstrip()}\n\n{ref}\n", "plain", "utf-8"))
        body.attach(MIMEText(_with_hidden(html, ref), "html", "utf-8"))
        msg = body if not attachments else MIMEMultipart("mixed")
        if attachments:
            msg.attach(body)
            for attachment in attachments:
                msg.attach(_attachment_part(attachment))
        msg["From"] = _mailbox(self.from_name, sender)
        msg["To"] = recipient  # the bare address: the sender's display name is theirs to choose, not ours to echo
        if cc_addresses:
            msg["Cc"] = ", ".join(cc_addresses)
        msg["Subject"] = Header(subject, "utf-8") if not subject.isascii() else subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id
        if email.message_id:
            references = [*email.references, email.message_id][-self.max_references :]
            msg["In-Reply-To"] = email.message_id
            msg["References"] = " ".join(references)
        self._mark(msg, kind, template, "auto-replied" if kind.automatic else "")
        return OutgoingMail(
            message_id=message_id,
            sender=sender,
            recipient=recipient,
            subject=subject,
            text=text,
            raw=msg.as_string(maxheaderlen=78, policy=_FOLDING_UTF8 if needs_smtputf8 else _FOLDING),
            kind=kind,
            template=template,
            needs_smtputf8=needs_smtputf8,
            cc=cc_addresses,
            mailbox=self.mailbox,
        )

    def notice(self, recipients: Sequence[str], *, template: str, kind: MessageKind, values: dict,
               seed: str) -> OutgoingMail:
        """A mail of the bridge's own that answers no email (the weekly digest to the support
        leads): the same templates, headers and signed Message-ID (ticket 0, derived from
        ``seed``), without threading. Raises Undeliverable when no recipient can be mailed."""
        found = [copy for copy in (self._copy(a) for a in dict.fromkeys(recipients)) if copy]
        if not found:
            raise Undeliverable("no address to send it to")
        addresses = [address for address, _ in found]
        sender, sender_utf8 = envelope_address(self.from_address)
        needs_smtputf8 = sender_utf8 or any(utf8 for _, utf8 in found)
        subject, text, html = self._render_parts(template, {"team_name": self.from_name, **values})
        message_id = make_message_id(0, self.domain, self.secret, kind=kind.id_token, seed=seed)
        msg = MIMEMultipart("alternative")
        msg.attach(MIMEText(text, "plain", "utf-8"))
        msg.attach(MIMEText(html, "html", "utf-8"))
        msg["From"] = _mailbox(self.from_name, sender)
        msg["To"] = ", ".join(addresses)
        msg["Subject"] = Header(subject, "utf-8") if not subject.isascii() else subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id
        self._mark(msg, kind, template, "auto-generated")
        return OutgoingMail(message_id=message_id, sender=sender, recipient=addresses[0], subject=subject, text=text,
                            raw=msg.as_string(maxheaderlen=78, policy=_FOLDING_UTF8 if needs_smtputf8 else _FOLDING),
                            kind=kind, template=template, needs_smtputf8=needs_smtputf8, cc=tuple(addresses[1:]),
                            mailbox=self.mailbox)

    def _render_parts(self, template: str, values: dict) -> tuple[str, str, str]:
        """``<template>``'s subject (one header-safe line), text and HTML."""
        subject = _one_line(self._render(f"{template}.subject.j2", **values), 250)
        return subject, self._render(f"{template}.txt.j2", **values), self._render(f"{template}.html.j2", **values)

    def _mark(self, msg: MIMEMultipart, kind: MessageKind, template: str, auto_submitted: str) -> None:
        """The headers that say what the mail is: RFC 3834's Auto-Submitted (``auto_submitted``,
        none for a person's answer), the loop token the guard knows, its kind and its template."""
        if auto_submitted:
            msg["Auto-Submitted"] = auto_submitted
            msg["X-Auto-Response-Suppress"] = "All"
        msg["X-Loop"] = self.loop_token
        msg["X-Bridge-Kind"] = kind.value
        msg["X-Bridge-Template"] = template

    @classmethod
    def _copy(cls, address: str) -> tuple[str, bool] | None:
        """A Cc address as it goes out, or None for one no mail can be sent to."""
        try:
            return cls._recipient(address)
        except Undeliverable:
            return None

    @staticmethod
    def _recipient(address: str) -> tuple[str, bool]:
        """The address a reply goes to, and whether it needs SMTPUTF8; Undeliverable when there is
        none. The reason never repeats the address: it reaches logs and notes."""
        if not _ADDRESS.fullmatch(address):
            raise Undeliverable("cannot reply: the sender's address is not a plain address", service="smtp")
        if len(address.encode("utf-8")) > _MAX_ADDRESS:
            raise Undeliverable(f"cannot reply: the sender's address is longer than {_MAX_ADDRESS} bytes",
                                service="smtp")
        return envelope_address(address)
