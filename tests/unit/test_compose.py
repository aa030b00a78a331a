"""Composing replies: header lines stay within RFC 5322 limits, and the fast path for short
header lines writes exactly what compat32's own folding writes."""

from __future__ import annotations

import email
from email.header import Header
from email.policy import compat32
from pathlib import Path

import pytest

from bridge.mail.compose import _FOLDING, Composer
from bridge.mail.parse import parse_email

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _composer() -> Composer:
    return Composer(TEMPLATES, from_address="support@example.com", from_name="Support Team",
                    domain="example.com", secret=b"k" * 32, tag_prefix="HD-")


def _inbound(references: list[str], subject: str = "Printer broken") -> bytes:
    return (
        "From: Alice <alice@customer.example>\r\nTo: support@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <m1@customer.example>\r\n"
        f"References: {' '.join(references)}\r\n\r\nIt prints blank pages.\r\n"
    ).encode()


def test_many_long_references_fold_below_the_line_limit() -> None:
    refs = [f"<{'x' * 60}.{n}@mail.customer.example>" for n in range(40)]
    mail = _composer().reply(parse_email(_inbound(refs)), 42, template="ack", kind="ack")
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
                             template="ack", kind="ack")
    subject = email.message_from_string(mail.raw)["Subject"]
    decoded = str(email.header.make_header(email.header.decode_header(subject)))
    assert "Máy in hỏng" in decoded and "[#HD-7]" in decoded
