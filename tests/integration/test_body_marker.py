"""A provider replaced our Message-ID and the customer's client dropped References and changed
the subject: the reply still joins its ticket through the signed marker quoted from our mail.
A marker with a wrong signature attaches nothing."""

from __future__ import annotations

import re

import pytest

from tests.integration.harness import email_bytes, wait_until

pytestmark = pytest.mark.integration


def _text_part(mail) -> str:
    for part in mail.message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_content()
    raise AssertionError("no text part")


def test_quoted_marker_threads_a_reply_without_headers(bridge_factory, mailbox, odoo, sink) -> None:
    bridge_factory()
    raw, _ = email_bytes(subject="Scanner offline")
    mailbox.append(raw)
    ticket = wait_until(lambda: odoo.records("helpdesk.ticket"), what="the ticket")[0]
    ack = wait_until(lambda: sink.messages, what="the acknowledgement")[0]
    quoted = "\n".join(f"> {line}" for line in _text_part(ack).splitlines())
    assert re.search(r"\{#ref:\d+\.[0-9a-f]{16}#\}", quoted)
    reply, _ = email_bytes(subject="still broken", body=f"It is still offline.\n\nOn Monday Support wrote:\n{quoted}")
    mailbox.append(reply)
    wait_until(lambda: any("still offline" in (m.get("body") or "") and m.get("res_id") == ticket["id"]
                           for m in odoo.records("mail.message")), what="the reply on the ticket")
    assert len(odoo.records("helpdesk.ticket")) == 1

    forged = quoted.replace(f"{{#ref:{ticket['id']}.", "{#ref:999.")
    other, _ = email_bytes(subject="unrelated", body=f"Hello.\n\n{forged}")
    mailbox.append(other)
    wait_until(lambda: len(odoo.records("helpdesk.ticket")) == 2, what="a new ticket for the forged marker")
