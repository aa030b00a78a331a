"""Spam the receiving server marked: ticketed with a spam tag and never acknowledged (no
backscatter), or moved to the junk folder without a ticket; mail failing DMARC at our server is
ticketed without an acknowledgement."""

from __future__ import annotations

import pytest

from tests.integration.harness import email_bytes, wait_until
from tests.integration.test_flow import done

pytestmark = pytest.mark.integration


def _tags(odoo, ticket) -> set[str]:
    names = {t["id"]: t["name"] for t in odoo.records("helpdesk.tag")}
    return {names[i] for i in ticket.get("tag_ids") or []}


def test_spam_is_ticketed_tagged_and_never_answered(bridge_factory, mailbox, odoo, sink):
    runner = bridge_factory()
    spam, _ = email_bytes(subject="You won", headers={"X-Spam-Flag": "YES", "X-Spam-Status": "Yes, score=14.2"})
    uid = mailbox.append(spam)
    wait_until(lambda: done(mailbox, uid), what="spam done")
    wait_until(lambda: [t for t in odoo.records("helpdesk.ticket") if "spam" in _tags(odoo, t)], what="the spam tag")
    # a normal email after it is answered: the positive signal before checking nothing else came
    normal, _ = email_bytes(subject="Printer", sender="Bob <bob@customer.example>")
    mailbox.append(normal)
    wait_until(lambda: len(sink.messages) == 1, what="the normal email's acknowledgement")
    assert all("bob@customer.example" in m.rcpt_tos for m in sink.messages)
    spam_job = next(job for _, job in runner.app.store.jobs.items() if job.get("subject") == "You won")
    assert spam_job["results"]["guard"]["spam"] and "X-Spam-Flag" in spam_job["results"]["guard"]["reason"]


def test_spam_moved_to_the_junk_folder_with_action_folder(bridge_factory, mailbox, odoo, sink):
    bridge_factory(guard__spam={"action": "folder", "folder": f"{mailbox.folder}_junk"})
    spam, _ = email_bytes(subject="Cheap", headers={"X-Rspamd-Action": "add header"})
    mailbox.append(spam)
    wait_until(lambda: mailbox.uids(f"{mailbox.folder}_junk"), what="moved to the junk folder")
    assert not mailbox.uids() and not odoo.records("helpdesk.ticket") and not sink.messages


def test_dmarc_failure_at_our_server_gets_no_acknowledgement(bridge_factory, mailbox, odoo, sink):
    bridge_factory(guard__spam={"trusted_authserv_ids": ["mx.example.com"]})
    failing, _ = email_bytes(subject="Invoice", headers={
        "Authentication-Results": "mx.example.com; spf=fail smtp.mailfrom=customer.example; dmarc=fail "
                                  "header.from=customer.example"})
    uid = mailbox.append(failing)
    wait_until(lambda: done(mailbox, uid), what="done")
    assert len(odoo.records("helpdesk.ticket")) == 1
    normal, _ = email_bytes(subject="Second", sender="Bob <bob@customer.example>")
    mailbox.append(normal)
    wait_until(lambda: len(sink.messages) == 1, what="the other email's acknowledgement")
    assert all("bob@customer.example" in m.rcpt_tos for m in sink.messages)
