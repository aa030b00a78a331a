"""Attachments end to end, through Dovecot, the real Odoo adapter and the Odoo stand-in: inline
images shown in the chatter from the ticket's own attachments, winmail.dat unpacked, a forwarded
message named from its subject, and files over the limits left out with a note and one polite
reply (never to an auto-reply)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pytest

from tests.integration.harness import email_bytes, wait_until

pytestmark = pytest.mark.integration

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"


def _ticket(odoo, name: str, count: int = 1) -> list[dict]:
    return [t for t in odoo.records("helpdesk.ticket") if t["name"] == name][:count]


def _files(odoo, ticket_id: int) -> dict[str, dict]:
    return {a["name"]: a for a in odoo.records("ir.attachment", [("res_model", "=", "helpdesk.ticket"),
                                                                 ("res_id", "=", ticket_id)])}


def _post(odoo, ticket_id: int) -> dict:
    return next(m for m in odoo.records("mail.message", [("res_id", "=", ticket_id)]) if m["message_type"] == "email")


def test_inline_images_tnef_and_forwarded_messages_on_the_ticket(bridge_factory, mailbox, odoo, sink) -> None:
    bridge_factory()
    for fixture in ("html-cid-inline", "tnef-two-files", "forwarded-rfc822"):
        mailbox.append((MAIL / f"{fixture}.eml").read_bytes())
    wait_until(lambda: len(odoo.records("helpdesk.ticket")) == 3 and len(sink.messages) == 3,
               timeout=30, what="three tickets and their acknowledgements")

    [capture] = _ticket(odoo, "Capture")
    files = _files(odoo, capture["id"])
    assert sorted(files) == ["attachment-1.png", "facture.pdf", "logo.gif", "photo.jpg"]
    body = _post(odoo, capture["id"])["body"]
    assert "cid:" not in body and "<script" not in body
    shown = re.findall(r'<img src="/web/image/(\d+)\?access_token=([^"]+)" alt="([^"]*)">', body)
    by_id = {a["id"]: a for a in files.values()}
    assert [(by_id[int(i)]["name"], by_id[int(i)]["access_token"] == token, alt) for i, token, alt in shown] == [
        ("attachment-1.png", True, "capture"), ("logo.gif", True, "logo.gif")]
    assert base64.b64decode(files["attachment-1.png"]["datas"]) == b"\x89PNG\r\n\x1a\nscreen"
    assert body.index("voici la capture") < body.index("/web/image/") < body.index("Logo :")
    assert not files["facture.pdf"].get("access_token")  # an ordinary attachment gets no public token

    files_by_ticket = sorted((_files(odoo, t["id"]) for t in _ticket(odoo, "Files", 2)), key=len)
    assert [sorted(files) for files in files_by_ticket] == [
        ["Facture n° 42 - 2026.eml"],  # the forwarded message, named from its subject
        ["AUTHORS", "README"],  # winmail.dat unpacked, not attached itself
    ]
    assert base64.b64decode(files_by_ticket[1]["AUTHORS"]["datas"]).strip().startswith(b"Authors of tnef")


def test_files_over_the_limit_are_left_out_noted_and_the_sender_told_once(bridge_factory, mailbox, odoo, sink) -> None:
    bridge_factory(tickets__max_attachment_bytes=4096)
    big = ("scan.pdf", "application/pdf", b"%PDF" + bytes(8000))
    small = ("notes.txt", "text/plain", b"the small file")
    raw, _ = email_bytes(subject="Big scan", attachments=[big, small])
    auto, _ = email_bytes(sender="Robot <robot@customer.example>", subject="Out of office with a scan",
                          headers={"Auto-Submitted": "auto-replied"}, attachments=[big])
    mailbox.append(raw)
    mailbox.append(auto)

    [ticket] = wait_until(lambda: _ticket(odoo, "Big scan"), timeout=20, what="the ticket")
    mails = sink.wait_for(2, timeout=20)
    assert sorted(m.message["Subject"] for m in mails) == [f"Re: Big scan [#HD-{ticket['id']}]"] * 2
    [told] = [m.message for m in mails if "too large" in m.message.get_body(("plain",)).get_content()]
    text = told.get_body(("plain",)).get_content()
    assert "- scan.pdf (8 KB): larger than 4 KB, the limit per file" in text
    assert "notes.txt" not in text
    assert told["Auto-Submitted"] == "auto-replied"
    assert list(_files(odoo, ticket["id"])) == ["notes.txt"]

    def notes(ticket_id: int) -> list[str]:
        return [m["body"] for m in odoo.records("mail.message", [("res_id", "=", ticket_id)])
                if "Files left out" in (m.get("body") or "")]

    [note] = wait_until(lambda: notes(ticket["id"]), timeout=20, what="the note")
    assert "scan.pdf" in note and f"The sender is told by email ({html.escape(told['Message-ID'])})" in note

    [robot] = wait_until(lambda: _ticket(odoo, "Out of office with a scan"), timeout=20, what="the auto-reply's ticket")
    [robot_note] = wait_until(lambda: notes(robot["id"]), timeout=20, what="the auto-reply's note")
    assert "The sender is not told" in robot_note
    assert _files(odoo, robot["id"]) == {}
    assert all(m.rcpt_tos == ["alice@customer.example"] for m in sink.messages)  # nothing to the robot
    assert len(sink.messages) == 2
