"""The seams the ticket side builds on: supervised tasks, the ticket record, escalations."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import pytest

from tests.integration.harness import email_bytes, wait_until
from tests.integration.test_flow import done, tickets

pytestmark = pytest.mark.integration


def _meta(state_dir, key, value=None):
    """Write (or, with None, delete) a meta row from outside the bridge, as another process would."""
    with sqlite3.connect(state_dir / "meta.sqlite") as db:
        if value is None:
            db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            db.execute("REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))


def test_a_crashing_intake_is_restarted_and_reported_until_it_recovers(bridge_factory, mailbox, odoo, sink, tmp_path):
    from bridge.store import Store

    state = tmp_path / "state"
    Store(state).close()
    _meta(state, "imap_checkpoint", "not a checkpoint")  # the intake fails on it at each start
    bridge = bridge_factory()
    uid = mailbox.append(email_bytes()[0])

    def intake():
        return bridge.app.readiness()["tasks"]["intake"]

    wait_until(lambda: intake()["restarts"] >= 2, what="intake restarted twice")
    report = bridge.app.readiness()
    assert report["status"] == "degraded" and not intake()["up"]
    assert "AttributeError" in intake()["reason"]
    assert not done(mailbox, uid) and not tickets(odoo)

    _meta(state, "imap_checkpoint")  # the operator repairs the state
    wait_until(lambda: done(mailbox, uid), what="email processed after the repair")
    assert len(tickets(odoo)) == 1
    wait_until(lambda: bridge.app.readiness()["status"] == "ready", what="ready again")


def test_the_ticket_record_follows_the_conversation(bridge_factory, mailbox, odoo, sink):
    first, first_id = email_bytes(sender="Carol Díaz <carol@customer.example>")
    bridge = bridge_factory()
    mailbox.append(first)
    ack = sink.wait_for(1)[0].message
    [ticket] = tickets(odoo)
    book = bridge.app.ctx.tickets
    record = wait_until(lambda: (r := book.get(ticket["id"])) and r.last_outbound_message_id and r, what="record")
    assert record.customer_email == "carol@customer.example" and record.customer_name == "Carol Díaz"
    assert record.model == "helpdesk.ticket" and record.origin == "email" and record.mailbox == mailbox.folder
    assert record.first_message_id == record.last_inbound_message_id == first_id
    assert record.last_outbound_message_id == ack["Message-ID"]
    assert record.outbound == [{"message_id": ack["Message-ID"], "kind": "acknowledgement", "template": "ack"}]

    reply, reply_id = email_bytes(sender="bob@customer.example", subject="Re: Printer broken",
                                  headers={"In-Reply-To": ack["Message-ID"]})
    uid = mailbox.append(reply)
    wait_until(lambda: done(mailbox, uid))
    record = book.get(ticket["id"])
    assert record.last_inbound_message_id == reply_id and record.inbound_count == 2
    assert record.customer_email == "carol@customer.example"  # a colleague's reply does not change it


def test_escalations_reach_the_notifier_with_automation_off(bridge_factory, caplog):
    bridge = bridge_factory()
    assert bridge.app.ctx.automation is None

    async def escalate():
        return bridge.app.ctx.escalate("test", 42, "the customer is angry", {"sender": "x@customer.example"})

    with caplog.at_level(logging.WARNING, logger="bridge.escalations"):
        assert asyncio.run_coroutine_threadsafe(escalate(), bridge.loop).result(5)
        wait_until(lambda: any("ticket 42: escalated" in r.getMessage() for r in caplog.records),
                   what="escalation delivered")
