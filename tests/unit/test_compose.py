"""Composing replies: header lines stay within RFC 5322 limits, the fast path for short header
lines writes exactly what compat32's own folding writes, internationalised addresses (RFC 6532),
message kinds, and bodies that never relay what an unverified sender wrote."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from email.header import Header
from email.policy import compat32

import pytest

from bridge.errors import ConfigurationError, Undeliverable
from bridge.mail.compose import _FOLDING, Composer, MessageKind
from bridge.mail.parse import parse_email
from bridge.mail.thread_ids import make_message_id, ticket_from_message_id

SECRET = b"k" * 32


def _composer(from_address: str = "support@example.com") -> Composer:
    return Composer(None, from_address=from_address, from_name="Support Team",
                    domain="example.com", secret=SECRET, tag_prefix="HD-")


def _inbound(references: list[str], subject: str = "Printer broken") -> bytes:
    return (
        "From: Alice <alice@customer.example>\r\nTo: support@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <m1@customer.example>\r\n"
        f"References: {' '.join(references)}\r\n\r\nIt prints blank pages.\r\n"
    ).encode()


def test_many_long_references_fold_below_the_line_limit() -> None:
    refs = [f"<{'x' * 60}.{n}@mail.customer.example>" for n in range(40)]
    mail = _composer().reply(parse_email(_inbound(refs)), 42, template="ack", kind=MessageKind.ACKNOWLEDGEMENT)
    lines = mail.raw.split("\n")
    assert max(len(line.rstrip("\r")) for line in lines) <= 998
    header_block = mail.raw.split("\n\n", 1)[0]
    assert all(len(line) <= 78 or " " not in line.strip() for line in header_block.splitlines())
    parsed = email.message_from_string(mail.raw)
    assert parsed["References"].split()[-1] == "<m1@customer.example>"
    assert parsed["In-Reply-To"] == "<m1@customer.example>"


@pytest.mark.parametrize("value", [
    "plain words", "two  spaces", " leading space", "trailing space ", "tab\there", "=?utf-8?q?x?=",
    "<id@host>", "Alice <alice@example.com>", "x" * 60, "a b " * 17, "", ";;;", "Mon, 23 Nov 2026 10:00:00 GMT",
])
def test_fast_path_matches_compat32(value: str) -> None:
    ours = _FOLDING.fold("Subject", value)
    theirs = compat32.clone(max_line_length=78).fold("Subject", value)
    assert ours == theirs


def test_non_ascii_and_header_objects_still_go_through_compat32() -> None:
    header = Header("Máy in hỏng", "utf-8")
    assert _FOLDING.fold("Subject", header) == compat32.clone(max_line_length=78).fold("Subject", header)
    mail = _composer().reply(parse_email(_inbound(["<a@b>"], subject="=?utf-8?b?TcOheSBpbiBo4buPbmc=?=")), 7,
                             template="ack", kind=MessageKind.ACKNOWLEDGEMENT)
    subject = email.message_from_string(mail.raw)["Subject"]
    decoded = str(email.header.make_header(email.header.decode_header(subject)))
    assert "Máy in hỏng" in decoded and "[#HD-7]" in decoded


def _from(address: str, name: str = "Jörg Döe", subject: str = "Printer broken") -> bytes:
    return (
        f"From: {name} <{address}>\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
        "Message-ID: <m2@customer.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello\r\n"
    ).encode()


def test_reply_to_an_internationalised_address_is_composed_for_smtputf8() -> None:
    """The reported email: `'ascii' codec can't encode` from formataddr, then quarantine."""
    inbound = parse_email(_from("jdöe@mächine.example"))
    assert inbound.from_addr == "jdöe@mächine.example"
    mail = _composer().reply(inbound, 9, template="ack", kind=MessageKind.ACKNOWLEDGEMENT)
    assert mail.needs_smtputf8
    assert mail.recipient == "jdöe@mächine.example" and mail.sender == "support@example.com"
    assert "\nTo: jdöe@mächine.example\n" in mail.raw  # RFC 6532: the address as it is, in UTF-8
    parsed = email.message_from_string(mail.raw, policy=email.policy.SMTPUTF8)
    assert parsed["To"].addresses[0].addr_spec == "jdöe@mächine.example"
    assert parsed["From"].addresses[0].addr_spec == "support@example.com"
    assert "[#HD-9]" in str(parsed["Subject"])
    assert all(len(line.encode()) <= 998 for line in mail.raw.splitlines())


def test_internationalised_domain_alone_is_written_as_a_labels_without_smtputf8() -> None:
    mail = _composer().reply(parse_email(_from("joe@mächine.example")), 9, template="ack",
                             kind=MessageKind.ACKNOWLEDGEMENT)
    assert not mail.needs_smtputf8
    assert mail.recipient == "joe@xn--mchine-bua.example"
    assert mail.raw.isascii()


def test_ascii_reply_is_plain_ascii_and_needs_no_smtputf8() -> None:
    mail = _composer().reply(parse_email(_inbound(["<a@b>"])), 3, template="ack", kind=MessageKind.ACKNOWLEDGEMENT)
    assert not mail.needs_smtputf8 and mail.raw.isascii()
    assert mail.recipient == "alice@customer.example"


def test_non_ascii_from_address_needs_smtputf8_too() -> None:
    mail = _composer(from_address="hỗtrợ@trường.example").reply(
        parse_email(_inbound(["<a@b>"])), 3, template="ack", kind=MessageKind.ACKNOWLEDGEMENT)
    assert mail.needs_smtputf8 and mail.sender == "hỗtrợ@trường.example"
    parsed = email.message_from_string(mail.raw, policy=email.policy.SMTPUTF8)
    assert parsed["From"].addresses[0].addr_spec == "hỗtrợ@trường.example"
    assert parsed["From"].addresses[0].display_name == "Support Team"


@pytest.mark.parametrize("address", ["not an address", "a@b@c", "x\x01y@example.com", "<x@y>",
                                     "a" * 250 + "@example.com"])
def test_an_address_no_reply_can_go_to_is_undeliverable_and_not_named(address: str) -> None:
    inbound = dataclasses.replace(parse_email(_inbound(["<a@b>"])), from_addr=address)
    with pytest.raises(Undeliverable) as caught:
        _composer().reply(inbound, 3, template="ack", kind=MessageKind.ACKNOWLEDGEMENT)
    assert address not in str(caught.value)


def test_to_header_carries_no_display_name_of_the_sender() -> None:
    mail = _composer().reply(parse_email(_from("bob@customer.example", name="Bob Builder")), 4,
                             template="ack", kind=MessageKind.ACKNOWLEDGEMENT)
    assert email.message_from_string(mail.raw)["To"] == "bob@customer.example"


@pytest.mark.parametrize("kind", list(MessageKind))
def test_each_kind_sets_its_headers_and_message_id(kind: MessageKind) -> None:
    mail = _composer().reply(parse_email(_inbound(["<a@b>"])), 12, template="ack", kind=kind)
    parsed = email.message_from_string(mail.raw)
    assert mail.kind is kind and mail.template == "ack"
    assert parsed["X-Bridge-Kind"] == kind.value
    assert parsed["X-Bridge-Template"] == "ack"
    assert parsed["X-Loop"] == "support@example.com"  # every kind: our own mail coming back is a loop
    if kind is MessageKind.AGENT_REPLY:
        assert not kind.automatic
        assert parsed["Auto-Submitted"] is None and parsed["X-Auto-Response-Suppress"] is None
    else:
        assert kind.automatic
        assert parsed["Auto-Submitted"] == "auto-replied"
        assert parsed["X-Auto-Response-Suppress"] == "All"
    assert mail.message_id.startswith(f"<hd.{kind.id_token}.12.")
    assert ticket_from_message_id(mail.message_id, "example.com", SECRET) == 12


def test_kinds_have_distinct_id_tokens_and_ack_ids_keep_their_shape() -> None:
    tokens = [kind.id_token for kind in MessageKind]
    assert len(set(tokens)) == len(tokens)
    assert MessageKind.ACKNOWLEDGEMENT.id_token == "ack"
    assert MessageKind("automation_outcome") is MessageKind.AUTOMATION_OUTCOME  # the outbox stores the value
    for old in ("ack", "login"):  # ids minted before kinds existed still name their ticket
        assert ticket_from_message_id(make_message_id(5, "example.com", SECRET, kind=old), "example.com", SECRET) == 5


HOSTILE_NAME = "Security Team: your mailbox is locked, verify at http://evil.example/unlock"
HOSTILE_SUBJECT = "URGENT password expiry - log in at https://evil.example/reset now"


@pytest.mark.parametrize(("template", "values"), [
    ("ack", {}),
    ("login_escalated", {"lang": "en"}),
    ("login_escalated", {"lang": "vi"}),
    ("login_escalated", {"lang": "en", "test_mode": True}),
    ("login_denied", {"lang": "en"}),
    ("login_denied", {"lang": "vi", "test_mode": True}),
])
def test_reply_to_an_unverified_sender_relays_none_of_their_words(template: str, values: dict) -> None:
    """No phishing relay: a stranger's display name and subject never reach the body of our mail
    (the Subject keeps ``Re: <subject>`` for threading)."""
    inbound = parse_email(_from("victim@customer.example", name=f'"{HOSTILE_NAME}"', subject=HOSTILE_SUBJECT))
    assert inbound.from_name == HOSTILE_NAME and inbound.subject == HOSTILE_SUBJECT
    mail = _composer().reply(inbound, 21, template=template, kind=MessageKind.ACKNOWLEDGEMENT, values=values)
    parsed = email.message_from_string(mail.raw, policy=email.policy.default)
    bodies = [part.get_content() for part in parsed.iter_parts()]
    assert len(bodies) == 2
    for body in [mail.text, *bodies]:
        assert "evil.example" not in body and "http" not in body.replace("http-equiv", "")
        for words in ("verify at", "mailbox is locked", "Security Team", "password expiry", "log in at"):
            assert words not in body
        assert "[#HD-21]" in body  # the ticket is named by its tag
    assert HOSTILE_SUBJECT in mail.subject and mail.subject.endswith("[#HD-21]")


# --------------------------------------------------------------------------- an agent's reply

AGENT_TEXT = "Hello Alice,\r\n\r\nPlease try <script>alert('x')</script> & then:\nstep 1\nstep 2\n\n\nThanks!\n"


def _agent_reply(lang: str = "en", **values: object) -> tuple[object, str]:
    mail = _composer().reply(parse_email(_inbound(["<a@b>"])), 42, template="agent_reply",
                             kind=MessageKind.AGENT_REPLY,
                             values={"reply_text": AGENT_TEXT, "agent_name": "Agent Smith", "lang": lang, **values})
    parsed = email.message_from_string(mail.raw, policy=email.policy.default)
    [page] = [part.get_content() for part in parsed.iter_parts() if part.get_content_type() == "text/html"]
    return mail, page


@pytest.mark.parametrize("lang", ["en", "vi"])
def test_agent_reply_carries_the_agents_words_signed_and_escaped(lang: str) -> None:
    mail, page = _agent_reply(lang)
    assert mail.subject == "Re: Printer broken [#HD-42]"
    assert mail.text.startswith("Hello Alice,\r\n\r\nPlease try <script>alert('x')</script> & then:\nstep 1")
    assert mail.text.endswith("Thanks!\n\nAgent Smith\nSupport Team\n[#HD-42]\n")
    # HTML: the text escaped, paragraphs and line breaks kept, then the signature.
    assert "<script" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; then:<br>" in page
    assert "<p>Hello Alice,</p>" in page and "step 1<br>\nstep 2</p>" in page and "<p>Thanks!</p>" in page
    assert "<p></p>" not in page
    assert page.index("Thanks!") < page.index("Agent Smith") < page.index("Support Team") < page.index("[#HD-42]")
    assert f'<html lang="{lang}">' in page
    for automatic in ("automatically", "no need to answer", "do not reply", "[TEST]"):
        assert automatic not in mail.text and automatic not in page


def test_agent_reply_is_a_person_s_mail_not_an_automatic_one() -> None:
    mail, _ = _agent_reply()
    parsed = email.message_from_string(mail.raw)
    assert parsed["Auto-Submitted"] is None and parsed["X-Auto-Response-Suppress"] is None
    assert (parsed["X-Bridge-Kind"], parsed["X-Bridge-Template"]) == ("agent_reply", "agent_reply")
    assert ticket_from_message_id(mail.message_id, "example.com", SECRET) == 42


def test_agent_reply_without_a_name_is_signed_by_the_team_and_needs_its_text() -> None:
    mail, page = _agent_reply(agent_name="")
    assert mail.text.endswith("Thanks!\n\nSupport Team\n[#HD-42]\n")
    assert "<p>Support Team<br>" in page
    with pytest.raises(ConfigurationError, match="agent_reply"):  # StrictUndefined: never an empty reply
        _composer().reply(parse_email(_inbound(["<a@b>"])), 42, template="agent_reply",
                          kind=MessageKind.AGENT_REPLY, values={"agent_name": "Agent Smith"})
