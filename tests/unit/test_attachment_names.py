"""Attachment names as the sender's client wrote them (RFC 2231, RFC 2047, raw 8-bit, wrong or
unknown charsets, unterminated words) come out as the names the sender saw, and safe."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path

import pytest

from bridge.mail.filenames import attachment_name, eml_name, safe_filename
from bridge.mail.parse import parse_email

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"


def _names(fixture: str) -> list[str]:
    return [a.filename for a in parse_email((MAIL / f"{fixture}.eml").read_bytes()).attachments]


def test_rfc2231_names_continued_split_mid_character_and_mislabelled() -> None:
    assert _names("filename-rfc2231") == [
        "Отчёт №5.pdf",  # filename*0*, *1*, *2: a UTF-8 character split over two segments
        "Résumé.txt",  # Content-Type name*= in ISO-8859-1
        "été 2026.xlsx",  # labelled utf-8, written in Latin-1: the stdlib gives "\ufffdt\ufffd"
    ]


def test_rfc2047_names_in_quoted_parameters() -> None:
    assert _names("filename-rfc2047") == [
        "Présentation client.ppt",  # Content-Type name only
        "Báo cáo tháng 11.pdf",  # two words splitting "á" between them
        "写真.jpg",  # Shift_JIS
    ]


def test_malformed_names_are_decoded_and_made_safe() -> None:
    assert _names("filename-malformed") == [
        "Rapport détaillé.pdf",  # an encoded word that never closes
        "Überweisung.pdf",  # labelled ISO-8859-1, the bytes are UTF-8
        "café.txt",  # an unknown charset: the fallback chain
        "Báo cáo.docx",  # raw UTF-8 in the header
        "Café crème.xls",  # raw Latin-1 in the header
        "scan.pdf",  # a Windows path
        "invoicefdp.exe",  # the right-to-left override that showed it as "invoiceexe.pdf" is gone
        "tab bell.pdf",  # a Unix path, a tab and a BEL
    ]


def test_a_part_without_a_name_has_none() -> None:
    part = message_from_bytes(b"Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\nx")
    assert attachment_name(part) == ""


@pytest.mark.parametrize(("name", "safe"), [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\me\\photo.jpg", "photo.jpg"),
    ("\u2067gpj.exe\u2069", "gpj.exe"),
    ("  ...report.pdf.  ", "report.pdf"),
    ("a\x00b\rc\nd.txt", "ab c d.txt"),
    ("x" * 300 + ".pdf", "x" * 190 + ".pdf"),
    ("\x01\x02", ""),
])
def test_safe_filename(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


def test_forwarded_message_is_named_from_its_subject() -> None:
    email = parse_email((MAIL / "forwarded-rfc822.eml").read_bytes())
    (forwarded,) = email.attachments
    assert (forwarded.filename, forwarded.content_type) == ("Facture n° 42 - 2026.eml", "message/rfc822")
    assert b"Message-ID: <inner-42@partner.example>" in forwarded.payload
    assert "La facture" not in email.text


@pytest.mark.parametrize(("subject", "name"), [
    ("Re: report: Q3 <final>?", "Re- report- Q3 -final-.eml"),
    ("../../secret", "-..-secret.eml"),  # no leading dot: not a hidden file
    ("", ""),
    ("///", ""),
    ("y" * 300, "y" * 100 + ".eml"),
])
def test_eml_name(subject: str, name: str) -> None:
    assert eml_name(subject) == name
