"""Ticket categories end to end: a new ticket (emailed, or created in Odoo) gets its category's
tag in the Odoo stand-in, its Enterprise ticket type, and the priority a rule gives that
category; a follow-up on it adds nothing; a bridge killed in the middle of it tags the ticket
once, with one type, after its restart. The ticket type is written only where the ticket model
has one."""

from __future__ import annotations

import signal

import pytest

from bridge.config import OdooConfig
from bridge.odoo.rpc import OdooRPC
from bridge.odoo.tickets import TicketDesk
from bridge.sandbox.odoo import OdooSandbox
from tests.integration.harness import bridge_settings, email_bytes, wait_until, write_config
from tests.integration.test_crash import Process
from tests.integration.test_flow import done

pytestmark = pytest.mark.integration


def _tags(odoo, ticket) -> set[str]:
    names = {t["id"]: t["name"] for t in odoo.records("helpdesk.tag")}
    return {names[i] for i in ticket.get("tag_ids") or []}


def test_a_new_ticket_is_tagged_with_its_category_and_a_follow_up_is_not(bridge_factory, mailbox, odoo, sink):
    bridge_factory(categories__enabled=True, categories__ticket_type=True,
                   sla__priority_rules=[{"priority": "2", "categories": ["billing"]}])
    printer, printer_id = email_bytes(subject="Máy in phòng hội đồng bị kẹt giấy",
                                      body="Máy in cứ báo kẹt giấy, cả tổ không in được đề kiểm tra.")
    invoice, _ = email_bytes(subject="Invoice PDF password", sender="Li <li@customer.example>",
                             body="Your invoice came as a password-protected PDF; we need to pay it by Friday.")
    for raw in (printer, invoice):
        mailbox.append(raw)
    wait_until(lambda: len(odoo.records("helpdesk.ticket")) == 2 and len(sink.messages) == 2,
               timeout=30, what="two tickets, two acknowledgements")
    tickets = {t["name"]: t for t in odoo.records("helpdesk.ticket")}
    hardware, billing = tickets["Máy in phòng hội đồng bị kẹt giấy"], tickets["Invoice PDF password"]
    assert _tags(odoo, hardware) == {"Category: Hardware"}
    assert _tags(odoo, billing) == {"Category: Billing"}
    assert billing["priority"] == "2" and hardware["priority"] == "0"
    types = {t["id"]: t["name"] for t in odoo.records("helpdesk.ticket.type")}
    assert (types[hardware["ticket_type_id"]], types[billing["ticket_type_id"]]) == ("Hardware", "Billing")

    reply, _ = email_bytes(subject="Re: Máy in phòng hội đồng bị kẹt giấy",
                           body="Giờ Outlook cũng không gửi được thư, hộp thư đầy.",
                           headers={"In-Reply-To": printer_id, "References": printer_id})
    uid = mailbox.append(reply)
    wait_until(lambda: done(mailbox, uid), what="the follow-up done")
    assert len(odoo.records("helpdesk.ticket")) == 2
    assert _tags(odoo, odoo.records("helpdesk.ticket", [("id", "=", hardware["id"])])[0]) == {"Category: Hardware"}


def test_a_ticket_created_in_odoo_gets_its_category_too(bridge_factory, odoo, sink, hr, lms):
    from bridge.automation.odoo_tickets import job_key
    from tests.integration.harness import free_port
    from tests.integration.test_login import automation_settings
    from tests.integration.test_odoo_tickets import TOKEN, post, ticket_in_odoo

    runner = bridge_factory(categories__enabled=True, automation=automation_settings(hr, lms),
                            http={"port": free_port(), "webhook_token": TOKEN})
    ticket = ticket_in_odoo(odoo, "bao@customer.example", "VPN drops every ten minutes",
                            "The VPN disconnects every ten minutes when I work from home.")
    assert post(runner.app.web.port, {"_id": ticket, "_model": "helpdesk.ticket"}, TOKEN) == 202
    wait_until(lambda: runner.app.store.jobs.get(job_key(ticket), {}).get("status") == "done",
               what="the ticket's run finished")
    [row] = odoo.records("helpdesk.ticket", [("id", "=", ticket)])
    assert _tags(odoo, row) == {"Category: Network/VPN"}


@pytest.mark.parametrize(("flavour", "profile", "typed"), [
    ("enterprise", "helpdesk", True), ("oca", "helpdesk_mgmt", False), ("enterprise", "project_task", False)])
def test_the_ticket_type_is_set_only_where_the_model_has_one(flavour, profile, typed) -> None:
    with OdooSandbox(ticket_flavour=flavour) as sandbox:
        cfg = OdooConfig(url=sandbox.url, db=sandbox.db, username=sandbox.login, password=sandbox.password,
                         transport="jsonrpc", profile=profile, project="Support" if profile == "project_task" else "")
        rpc = OdooRPC(cfg)
        try:
            desk = TicketDesk(rpc, cfg)
            ticket = desk.create_ticket(subject="Printer", description_html="<p>Jammed.</p>", partner_id=None,
                                        email="a@customer.example", name="A")
            assert desk.set_ticket_type(ticket, "Hardware") is typed
            assert desk.set_ticket_type(ticket, "Hardware") is typed  # the same type, not a second one
        finally:
            rpc.close()
        if typed:
            [kind] = sandbox.records("helpdesk.ticket.type")
            assert kind["name"] == "Hardware"
            assert sandbox.records("helpdesk.ticket", [("id", "=", ticket)])[0]["ticket_type_id"] == kind["id"]


@pytest.mark.parametrize(("model", "method"), [("helpdesk.tag", "create"), ("helpdesk.ticket.type", "create")])
def test_a_crash_while_categorising_ends_with_one_tag_and_one_type(mailbox, odoo, sink, tmp_path, model, method):
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state",
                               categories__enabled=True, categories__ticket_type=True)
    process = Process(write_config(tmp_path / "config.yaml", settings), tmp_path / "bridge.log")
    try:
        raw, _ = email_bytes(subject="Charged twice", body="We were charged twice for the renewal, please refund.")
        uid = mailbox.append(raw)
        odoo.kill_after(model, method, pid=process.start(), sig=signal.SIGKILL)
        process.wait_killed()
        process.start()
        wait_until(lambda: done(mailbox, uid), timeout=30, what="the email done after the restart")
    finally:
        process.stop()
    [ticket] = odoo.records("helpdesk.ticket")
    assert _tags(odoo, ticket) == {"Category: Billing"}
    assert [t["name"] for t in odoo.records("helpdesk.tag")].count("Category: Billing") == 1
    [kind] = odoo.records("helpdesk.ticket.type")
    assert (kind["name"], ticket["ticket_type_id"]) == ("Billing", kind["id"])
