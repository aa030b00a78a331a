"""Charsets end to end: emails whose bytes lie about (or do not name) their charset reach the
Odoo ticket as the text their writer typed, through Dovecot and the real Odoo adapter."""

from __future__ import annotations

import html
import logging
from pathlib import Path

import pytest

from tests.integration.harness import wait_until

pytestmark = pytest.mark.integration

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"

EXPECTED = {  # fixture → (ticket name, words in the chatter post)
    "undeclared-koi8-r": ("Account locked", "учётная запись заблокирована"),
    "iso-2022-jp": ("ログインできません", "手順①から③まで試しました。ｶﾀｶﾅ表示"),
    "declared-latin1-is-utf8": ("Wrong label", "Grüße aus Köln"),
    "cp1258-vietnamese": ("Không đăng nhập được", "Nguyễn Thị Thủy"),
}


def test_mislabelled_and_unlabelled_text_reaches_odoo_readable(bridge_factory, mailbox, odoo, sink, caplog) -> None:
    caplog.set_level(logging.INFO, logger="bridge.intake")
    bridge_factory()
    for name in EXPECTED:
        mailbox.append((MAIL / f"{name}.eml").read_bytes())
    wait_until(lambda: len(odoo.records("helpdesk.ticket")) >= len(EXPECTED) and len(sink.messages) >= len(EXPECTED),
               timeout=30, what="a ticket and an acknowledgement per fixture")
    tickets = odoo.records("helpdesk.ticket")
    assert sorted(t["name"] for t in tickets) == sorted(subject for subject, _ in EXPECTED.values())
    posts = [html.unescape(m.get("body") or "") for m in odoo.records("mail.message")
             if m.get("message_type") == "email"]
    for subject, words in EXPECTED.values():
        assert any(words in post for post in posts), f"{words!r} not posted: {posts}"
    assert not any("\ufffd" in post for post in posts)
    # the label that did not fit is said once, with the email's key
    assert any("parse notes: charset 'iso-8859-1' does not fit the text; decoded as utf-8" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records if "parse notes" in r.getMessage()]
