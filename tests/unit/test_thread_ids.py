"""Signed Message-IDs, subject tags, reply prefixes and conversation keys."""

from __future__ import annotations

import re

import pytest

from bridge.mail.thread_ids import (
    conversation_key,
    make_message_id,
    minted_here,
    strip_reply_prefixes,
    subject_tag,
    ticket_from_message_id,
    ticket_from_subject,
)
from bridge.models import InboundEmail

DOMAIN = "helpdesk.example.com"
SECRET = b"s3cret"


@pytest.mark.parametrize(("ticket", "kind"), [(0, "ack"), (42, "ack"), (987654321, "reply"), (10**18 - 1, "n2")])
def test_round_trip(ticket: int, kind: str) -> None:
    message_id = make_message_id(ticket, DOMAIN, SECRET, kind=kind)
    shape = rf"<hd\.{kind}\.{ticket}\.[A-Za-z0-9_-]{{12}}\.[0-9a-f]{{16}}@helpdesk\.example\.com>"
    assert re.fullmatch(shape, message_id)
    assert ticket_from_message_id(message_id, DOMAIN, SECRET) == ticket
    assert ticket_from_message_id(f"  {message_id[1:-1]} ", DOMAIN.upper(), SECRET) == ticket
    assert minted_here(message_id, DOMAIN)


def test_ids_are_unique() -> None:
    assert len({make_message_id(1, DOMAIN, SECRET) for _ in range(200)}) == 200


def test_forged_or_altered_ids_are_rejected() -> None:
    genuine = make_message_id(42, DOMAIN, SECRET)
    local, _, domain = genuine[1:-1].partition("@")
    prefix, kind, ticket, nonce, sig = local.split(".")
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert ticket_from_message_id(f"<{prefix}.{kind}.{ticket}.{nonce}.{flipped}@{domain}>", DOMAIN, SECRET) is None
    assert ticket_from_message_id(f"<{prefix}.{kind}.43.{nonce}.{sig}@{domain}>", DOMAIN, SECRET) is None
    assert ticket_from_message_id(f"<{prefix}.reply.{ticket}.{nonce}.{sig}@{domain}>", DOMAIN, SECRET) is None
    assert ticket_from_message_id(genuine, DOMAIN, b"another secret") is None
    assert minted_here(f"<{prefix}.{kind}.43.{nonce}.{sig}@{domain}>", DOMAIN)  # shape only, by design


@pytest.mark.parametrize(
    "message_id",
    [
        "",
        "<>",
        "<CAKsfaBW4hj0Gek6@mail.gmail.com>",
        "<hd.ack.42.AAAAAAAAAAAA.0123456789abcdef>",
        "<hd.ack.42.short.0123456789abcdef@helpdesk.example.com>",
        "<hd.ack." + "9" * 5000 + ".AAAAAAAAAAAA.0123456789abcdef@helpdesk.example.com>",
        "<hd.ACK.42.AAAAAAAAAAAA.0123456789abcdef@helpdesk.example.com>",
    ],
)
def test_malformed_ids_are_rejected(message_id: str) -> None:
    assert ticket_from_message_id(message_id, DOMAIN, SECRET) is None


def test_foreign_domain_is_rejected() -> None:
    message_id = make_message_id(42, "other.example", SECRET)
    assert ticket_from_message_id(message_id, DOMAIN, SECRET) is None
    assert not minted_here(message_id, DOMAIN)
    lookalike = message_id.replace("other.example", "evil.helpdesk.example.com")
    assert ticket_from_message_id(lookalike, DOMAIN, SECRET) is None


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((-1, DOMAIN, SECRET), {}),
        ((True, DOMAIN, SECRET), {}),
        (("42", DOMAIN, SECRET), {}),
        ((10**18, DOMAIN, SECRET), {}),
        ((1, "", SECRET), {}),
        ((1, "bad domain", SECRET), {}),
        ((1, "a@b", SECRET), {}),
        ((1, DOMAIN, SECRET), {"kind": "a.b"}),
        ((1, DOMAIN, SECRET), {"kind": "ACK"}),
    ],
)
def test_make_message_id_validates_input(args: tuple, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        make_message_id(*args, **kwargs)


def test_subject_tag() -> None:
    assert subject_tag(42, "HD-") == "[#HD-42]"
    assert subject_tag(7, "") == "[#7]"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Printer [#HD-42]", 42),
        ("[#hd-42] lower-case prefix", 42),
        ("Fwd: Re: old [#HD-7] new [#HD-42]", 42),  # the last tag wins: ours is appended
        ("no tag here", None),
        ("[# HD-42 ]", None),
        ("[#HD-42 ]", None),
        ("[#HD- 42]", None),
        ("[HD-42]", None),
        ("#HD-42", None),
        ("[#XX-42]", None),
        ("[#HD-]", None),
        ("[#HD-" + "9" * 30 + "]", None),
        ("[#HD-0042]", 42),
    ],
)
def test_ticket_from_subject(subject: str, expected: int | None) -> None:
    assert ticket_from_subject(subject, "HD-") == expected


def test_ticket_from_subject_with_empty_prefix() -> None:
    assert ticket_from_subject("Re: hi [#12]", "") == 12


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Hello", "Hello"),
        ("RE: Re: re:Hello", "Hello"),
        ("Fwd: FW: Fw: Hello", "Hello"),
        ("AW: WG: Hallo", "Hallo"),
        ("SV: VS: Antw: TR: Hej", "Hej"),
        ("Re[2]: Re(3): Hello", "Hello"),
        ("RE : French spacing", "French spacing"),
        ("Trả lời: Chuyển tiếp: TL: Xin chào", "Xin chào"),
        ("TRẢ LỜI: Xin chào", "Xin chào"),
        ("Tra\u0309 lơ\u0300i: decomposed", "decomposed"),
        ("Re：full-width colon", "full-width colon"),
        ("Research: not a prefix", "Research: not a prefix"),
        ("Hello Re: inside", "Hello Re: inside"),
        ("Re:", ""),
        ("  ", ""),
    ],
)
def test_strip_reply_prefixes(subject: str, expected: str) -> None:
    assert strip_reply_prefixes(subject) == expected


def _email(subject: str = "Hi", references: tuple[str, ...] = (), in_reply_to: str | None = None) -> InboundEmail:
    return InboundEmail(
        key="<self@x.example>",
        message_id="<self@x.example>",
        from_name="",
        from_addr="a@x.example",
        reply_to=None,
        to=(),
        cc=(),
        subject=subject,
        text="",
        html="",
        attachments=(),
        in_reply_to=in_reply_to,
        references=references,
        date=None,
        headers={},
        size=0,
    )


def test_conversation_key() -> None:
    assert conversation_key(_email("Re: x [#HD-9]", ("<root@x>",), "<p@x>"), "HD-") == "tag:9"
    assert conversation_key(_email("Re: x", ("<root@x>", "<mid@x>"), "<mid@x>"), "HD-") == "<root@x>"
    assert conversation_key(_email("Re: x", (), "<p@x>"), "HD-") == "<p@x>"
    assert conversation_key(_email("new"), "HD-") == "<self@x.example>"
