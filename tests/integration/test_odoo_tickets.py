"""Tickets created directly in Odoo: the webhook (token checked) and the poller feed the same
login playbook, once per ticket; emailed tickets, and tickets the bridge itself created, are left
to the email path; a portal customer is trusted as the login they signed in with."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from bridge.automation.odoo_tickets import POLL_CHECKPOINT, requester
from bridge.config import OdooConfig
from bridge.odoo.rpc import OdooRPC
from bridge.odoo.tickets import TicketDesk
from tests.integration.harness import free_port, wait_until
from tests.integration.test_login import (
    automation_settings,
    lms_actions_for,
    lms_posts,
    login_email,
    login_notes,
    replies,
    stage_name,
)

pytestmark = pytest.mark.integration

TOKEN = "webhook-token-0123456789"
AGENT = "agent@example.com"
USER_PASSWORD = "user-secret"


def rpc_for(odoo, login: str | None = None) -> tuple[OdooRPC, OdooConfig]:
    """A client logged in as the bridge's own Odoo user, or as ``login`` (see user_uid)."""
    username, password = (login, USER_PASSWORD) if login else (odoo.login, odoo.password)
    cfg = OdooConfig(url=odoo.url, db=odoo.db, username=username, password=password)
    return OdooRPC(cfg), cfg


def desk_for(odoo, login: str | None = None) -> TicketDesk:
    return TicketDesk(*rpc_for(odoo, login))


def user_uid(odoo, login: str, name: str, *, share: bool = False) -> int:
    """The uid of this Odoo user, added on first use: an agent, or (share) a portal customer."""
    found = odoo.records("res.users", [("login", "=", login)])
    return found[0]["id"] if found else odoo.add_user(login, name, share=share, password=USER_PASSWORD)


def ticket_in_odoo(odoo, email: str, subject: str, text: str) -> int:
    """A ticket as an agent would create it in Odoo (by an agent's user, not the customer's)."""
    user_uid(odoo, AGENT, "Agent Smith")
    desk = desk_for(odoo, AGENT)
    partner = desk.find_or_create_partner(email, "Alice Martin")
    return desk.create_ticket(subject=subject, description_html=f"<p>{text}</p>", partner_id=partner,
                              email=email, name="Alice Martin")


def ticket_by_the_bridge(odoo, email: str, subject: str, text: str) -> int:
    """A ticket as the bridge creates it from an email, before the email is posted on it."""
    desk = desk_for(odoo)
    partner = desk.find_or_create_partner(email, "Alice Martin")
    return desk.create_ticket(subject=subject, description_html=f"<p>{text}</p>", partner_id=partner,
                              email=email, name="Alice Martin")


def portal_ticket(odoo, login: str, subject: str, text: str, *, partner_email: str) -> int:
    """A ticket a portal customer opened for their own partner, after changing that partner's
    email (which a portal user may do) to ``partner_email``."""
    uid = user_uid(odoo, login, "Alice Martin", share=True)
    [user] = odoo.records("res.users", [("id", "=", uid)])
    rpc, cfg = rpc_for(odoo, login)
    rpc.execute_kw("res.partner", "write", [[user["partner_id"]], {"email": partner_email}])
    return TicketDesk(rpc, cfg).create_ticket(subject=subject, description_html=f"<p>{text}</p>", partner_id=user["partner_id"],
                              email=partner_email, name="Alice Martin")


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


def test_requester_is_trusted_only_for_the_customers_own_portal_user():
    base = {"email": "a@customer.example", "login": "a@customer.example", "by_portal_customer": True}
    assert requester(base)["trusted"]
    assert not requester({**base, "by_portal_customer": False, "login": ""})["trusted"]
    assert not requester({**base, "by_portal_customer": False, "login": "", "email": ""})["trusted"]
    assert not requester({**base, "login": "alice"})["trusted"], "a login that is no address proves none"
    edited = requester({**base, "email": "mallory@evil.example"})
    assert edited["trusted"] and "mallory@evil.example" in edited["reason"] and "login" in edited["reason"]


def test_webhook_refuses_a_wrong_token_and_does_nothing(bridge_factory, odoo, sink, hr, lms):
    runner, port = start(bridge_factory, hr, lms)
    ticket = ticket_in_odoo(odoo, "alice@customer.example", "I can't log in", "I cannot log in to the LMS")
    assert post(port, {"_id": ticket}, None) == 401
    assert post(port, {"_id": ticket}, "wrong-token-0123456789") == 401
    assert runner.app.tickets.idle()  # refused before anything was queued
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
    wait_until(lambda: runner.app.tickets.idle() and runner.settled(), what="the second announcement run")
    assert len(login_notes(odoo, ticket)) == 1 and len(sink.messages) == 1


def poll_started(runner) -> None:
    """Wait for the first poll, which only notes where to start."""
    wait_until(lambda: runner.app.store.meta.get(POLL_CHECKPOINT) is not None, what="the first poll")


def polls_later(odoo, count: int = 3) -> None:
    """Wait until the poller has searched Odoo ``count`` more times."""
    seen = odoo.call_count("helpdesk.ticket", "search")
    wait_until(lambda: odoo.call_count("helpdesk.ticket", "search") >= seen + count, what=f"{count} more polls")


def settled(runner) -> bool:
    return not any(runner.app.outbox.pending_by_kind().values())


def test_poller_finds_new_odoo_tickets_and_skips_emailed_ones(bridge_factory, mailbox, odoo, sink, hr, lms):
    runner, port = start(bridge_factory, hr, lms, odoo_poll_seconds=0.2, odoo_min_age_seconds=0)
    poll_started(runner)
    login_ticket = ticket_in_odoo(odoo, "alice@customer.example", "Cannot login", "I cannot login to the portal")
    other_ticket = ticket_in_odoo(odoo, "alice@customer.example", "Printer", "The printer is jammed")
    raw, mid = login_email("alice@customer.example")
    mailbox.append(raw)
    wait_until(lambda: login_notes(odoo, login_ticket), what="the polled ticket's login note")
    wait_until(lambda: replies(sink, mid), what="the emailed ticket's reply")
    polls_later(odoo)
    wait_until(lambda: settled(runner), what="the outbox done")
    assert len(login_notes(odoo, login_ticket)) == 1
    assert login_notes(odoo, other_ticket) == []
    emailed = [m["res_id"] for m in odoo.records("mail.message") if m.get("message_id") == mid][0]
    assert len(login_notes(odoo, emailed)) == 1, "an emailed ticket is run once, by the email path"
    assert len(sink.messages) == 2  # the polled login ticket's reply and the email's; none for the printer


@pytest.mark.parametrize("model, method", [
    ("helpdesk.ticket", "search_read"),  # the ticket cannot be read: process() raises
    ("helpdesk.ticket", "write"),  # the stage cannot be set: the job is deferred
], ids=["read", "write"])
def test_poller_retries_tickets_an_odoo_failure_deferred(bridge_factory, odoo, sink, hr, lms, model, method):
    """The checkpoint never passes an unfinished ticket: the next poll retries it, and the ticket
    after it, finished already, is not run again."""
    runner, _ = start(bridge_factory, hr, lms, odoo_poll_seconds=0.2, odoo_min_age_seconds=0)
    poll_started(runner)
    odoo.fail_next(model, method, "transient", count=3)
    first = ticket_in_odoo(odoo, "alice@customer.example", "Cannot login", "I cannot login to the portal")
    second = ticket_in_odoo(odoo, "bob@customer.example", "Cannot log in", "I cannot log in to the LMS")
    for ticket in (first, second):
        wait_until(lambda: login_notes(odoo, ticket), what=f"ticket {ticket}'s login note")
    wait_until(lambda: runner.app.store.meta.get(POLL_CHECKPOINT) == second, what="the checkpoint past both")
    polls_later(odoo)
    wait_until(lambda: settled(runner), what="the outbox done")
    assert len(login_notes(odoo, first)) == 1 and len(login_notes(odoo, second)) == 1
    assert sorted(m.rcpt_tos[0] for m in sink.messages) == ["alice@customer.example", "bob@customer.example"]


def test_tickets_the_bridge_created_are_left_to_the_email_path(bridge_factory, odoo, sink, hr, lms):
    """Between creating a ticket from an email and posting the email on it, the webhook or the
    poller may see the ticket without an email on it: the bridge's own tickets are never run here."""
    runner, port = start(bridge_factory, hr, lms, odoo_poll_seconds=0.2, odoo_min_age_seconds=0)
    poll_started(runner)
    ours = ticket_by_the_bridge(odoo, "alice@customer.example", "I can't log in", "I cannot log in to the LMS")
    theirs = ticket_in_odoo(odoo, "bob@customer.example", "I can't log in", "I cannot log in to the LMS")
    assert post(port, {"_id": ours}, TOKEN) == 202
    assert post(port, {"_id": theirs}, TOKEN) == 202  # run after ours: one ticket at a time, in order
    wait_until(lambda: login_notes(odoo, theirs), what="the agent's ticket's login note")
    wait_until(lambda: runner.app.store.meta.get(POLL_CHECKPOINT) == theirs, what="the poller past both")
    wait_until(lambda: settled(runner), what="the outbox done")
    assert login_notes(odoo, ours) == []
    assert [m.rcpt_tos for m in sink.messages] == [["bob@customer.example"]]
    assert runner.app.store.jobs.get(f"odoo-ticket:{ours}") is None


def test_portal_ticket_is_acted_on_as_the_portal_login_not_the_editable_partner_email(
        bridge_factory, odoo, sink, hr, lms):
    """Alice (an active employee whose LMS account is deactivated) changed her partner's email to
    Hà's before opening the ticket: the playbook acts on, and answers, Alice's login only."""
    _, port = start(bridge_factory, hr, lms)
    ticket = portal_ticket(odoo, "alice@customer.example", "I can't log in", "I cannot log in to the LMS",
                           partner_email="ha.tran@customer.example")
    assert post(port, {"_id": ticket}, TOKEN) == 202
    [note] = wait_until(lambda: login_notes(odoo, ticket), what="the login note")
    [reply] = sink.wait_for(1)
    assert reply.rcpt_tos == ["alice@customer.example"]
    assert reply.message["X-Bridge-Template"] == "login_reactivated"
    assert lms_actions_for(lms, "ha.tran@customer.example") == []
    [action] = lms.actions
    assert action["action"] == "reactivate" and action["email"].casefold() == "alice@customer.example"
    assert "ha.tran@customer.example" in note and "portal login" in note, note
