"""End to end: an email from an internationalised address (EAI) gets its ticket, and its reply
goes out with SMTPUTF8 — or, where the server does not offer SMTPUTF8, is skipped with a note."""

from __future__ import annotations

import html

import pytest

from bridge.sandbox.smtp_sink import SmtpSink
from tests.integration.harness import SUPPORT, BridgeThread, make_config, wait_until

pytestmark = pytest.mark.integration

DONE = "$BridgeDone"
EAI = "jdöe@mächine.example"


def eai_email(message_id: str) -> bytes:
    """What the report showed: a UTF-8 From (RFC 6532), as Gmail or Outlook send it."""
    return (
        f"From: Jörg Döe <{EAI}>\r\nTo: {SUPPORT}\r\nSubject: Drucker druckt nicht\r\n"
        f"Message-ID: {message_id}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        "Der Drucker druckt leere Seiten.\r\n"
    ).encode()


def ticket_of(odoo, message_id: str):
    ids = [m["res_id"] for m in odoo.records("mail.message") if m.get("message_id") == message_id]
    return ids[0] if ids else None


def notes_of(odoo, ticket_id: int) -> list[str]:
    note = [s["id"] for s in odoo.records("mail.message.subtype") if s["name"] == "Note"]
    return [html.unescape(m.get("body") or "") for m in odoo.records("mail.message")
            if m.get("res_id") == ticket_id and m.get("subtype_id") in note]


def done(mailbox, uid: int) -> bool:
    return DONE in mailbox.flags(uid)


def test_reply_to_an_internationalised_address_goes_out_with_smtputf8(bridge_factory, mailbox, odoo, sink):
    mid = "<eai.flow.1@mächine.example>"
    bridge_factory()
    uid = mailbox.append(eai_email(mid))

    [reply] = sink.wait_for(1, timeout=15)
    wait_until(lambda: done(mailbox, uid), what="IMAP done keyword")
    ticket = ticket_of(odoo, mid)
    assert ticket is not None
    assert reply.rcpt_tos == [EAI] and "SMTPUTF8" in reply.mail_options
    assert f"To: {EAI}".encode() in reply.raw
    assert reply.message["To"].addresses[0].addr_spec == EAI
    assert f"[#HD-{ticket}]" in str(reply.message["Subject"])
    assert mailbox.uids(mailbox.quarantine) == []


def test_without_smtputf8_the_ticket_stays_and_the_reply_is_skipped_with_a_note(mailbox, odoo, tmp_path):
    mid = "<eai.flow.2@mächine.example>"
    with SmtpSink(smtputf8=False) as legacy:
        runner = BridgeThread(make_config(mailbox, odoo, legacy, tmp_path / "state")).start()
        try:
            uid = mailbox.append(eai_email(mid))
            wait_until(lambda: done(mailbox, uid), timeout=20, what="IMAP done keyword")
            ticket = wait_until(lambda: ticket_of(odoo, mid), what="the ticket")
            wait_until(lambda: any("SMTPUTF8" in body for body in notes_of(odoo, ticket)), timeout=20,
                       what="a note saying the reply could not be sent")
            assert legacy.messages == []
            assert mailbox.uids(mailbox.quarantine) == []
        finally:
            runner.stop()
