"""Tickets created directly in Odoo: the webhook (token checked) and the poller feed the same
login playbook, once per ticket; emailed tickets are left to the email path."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from bridge.automation.odoo_tickets import requester
from bridge.config import OdooConfig
from bridge.odoo.rpc import OdooRPC
from bridge.odoo.tickets import TicketDesk
from tests.integration.harness import wait_until
from tests.integration.test_login import (
    automation_settings,
    lms_posts,
    login_email,
    login_notes,
    replies,
    stage_name,
)

pytestmark = pytest.mark.integration

TOKEN = "webhook-token-0123456789"


def desk_for(odoo) -> TicketDesk:
    cfg = OdooConfig(url=odoo.url, db=odoo.db, username=odoo.login, password=odoo.password)
    return TicketDesk(OdooRPC(cfg), cfg)


def ticket_in_odoo(odoo, email: str, subject: str, text: str) -> int:
    """A ticket as an agent would create it in Odoo (by the API user, not the customer)."""
    desk = desk_for(odoo)
    partner = desk.find_or_create_partner(email, "Alice Martin")
    return desk.create_ticket(subject=subject, description_html=f"<p>{text}</p>", partner_id=partner,
                              email=email, name="Alice Martin")


def post(port: int, body: dict, token: str | None) -> int:
    url = f"http://127.0.0.1:{port}/webhook/ticket" + (f"?token={token}" if token else "")
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def start(bridge_factory, hr, lms, **automation):
    """A bridge with automation and the webhook on a free port; returns (runner, port)."""
    runner = bridge_factory(automation=automation_settings(hr, lms, **automation),
                            http={"port": free_port(), "webhook_token": TOKEN})
    return runner, runner.app.web.port


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_requester_is_trusted_only_for_the_customers_own_portal_user():
    base = {"email": "a@customer.example", "by_portal_customer": True}
    assert requester(base)["trusted"]
    assert not requester({**base, "by_portal_customer": False})["trusted"]
    assert not requester({**base, "email": ""})["trusted"]


def test_webhook_refuses_a_wrong_token_and_does_nothing(bridge_factory, odoo, sink, hr, lms):
    _, port = start(bridge_factory, hr, lms)
    ticket = ticket_in_odoo(odoo, "alice@customer.example", "I can't log in", "I cannot log in to the LMS")
    assert post(port, {"_id": ticket}, None) == 401
    assert post(port, {"_id": ticket}, "wrong-token-0123456789") == 401
    time.sleep(0.5)
    assert login_notes(odoo, ticket) == [] and lms.calls == [] and sink.messages == []


def test_webhook_runs_the_playbook_on_a_ticket_created_in_odoo(bridge_factory, odoo, sink, hr, lms):
    runner, port = start(bridge_factory, hr, lms)
    ticket = ticket_in_odoo(odoo, "alice@customer.example", "I can't log in", "I cannot log in to the LMS")
    assert post(port, {"_id": ticket, "_model": "helpdesk.ticket"}, TOKEN) == 202
    [note] = wait_until(lambda: login_notes(odoo, ticket), what="the login note")
    assert "escalate" in note and "cannot be verified" in note
    [reply] = sink.wait_for(1)
    assert reply.message["X-Bridge-Template"] == "login_escalated"
    assert reply.rcpt_tos == ["alice@customer.example"]
    assert lms_posts(lms) == []
    [record] = [t for t in odoo.records("helpdesk.ticket") if t["id"] == ticket]
    assert stage_name(odoo, record) == "In Progress"
    assert post(port, {"_id": ticket}, TOKEN) == 202  # announced twice: still one run
    time.sleep(0.5)
    assert len(login_notes(odoo, ticket)) == 1 and len(sink.messages) == 1


def test_poller_finds_new_odoo_tickets_and_skips_emailed_ones(bridge_factory, mailbox, odoo, sink, hr, lms):
    runner, port = start(bridge_factory, hr, lms, odoo_poll_seconds=0.2, odoo_min_age_seconds=0)
    time.sleep(0.5)  # the first poll only notes where to start
    login_ticket = ticket_in_odoo(odoo, "alice@customer.example", "Cannot login", "I cannot login to the portal")
    other_ticket = ticket_in_odoo(odoo, "alice@customer.example", "Printer", "The printer is jammed")
    raw, mid = login_email("alice@customer.example")
    mailbox.append(raw)
    wait_until(lambda: login_notes(odoo, login_ticket), what="the polled ticket's login note")
    wait_until(lambda: replies(sink, mid), what="the emailed ticket's reply")
    time.sleep(1.0)  # several more polls
    assert len(login_notes(odoo, login_ticket)) == 1
    assert login_notes(odoo, other_ticket) == []
    emailed = [m["res_id"] for m in odoo.records("mail.message") if m.get("message_id") == mid][0]
    assert len(login_notes(odoo, emailed)) == 1, "an emailed ticket is run once, by the email path"
    assert len(sink.messages) == 2  # the polled login ticket's reply and the email's; none for the printer
