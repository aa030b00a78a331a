"""Agents on tickets, through the real adapter against the Odoo stand-in (three profiles, 16/17/19):
a ticket's summary, finding an internal user by address, assigning, and notes an agent authored."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.config import OdooConfig
from bridge.errors import RejectedByService
from bridge.odoo.rpc import OdooRPC
from bridge.odoo.tickets import PROFILES, TicketDesk
from bridge.sandbox.odoo import OdooSandbox

pytestmark = pytest.mark.integration

VERSIONS = (16, 17, 19)
TRANSPORTS = ("jsonrpc", "xmlrpc")
CUSTOMER = "customer@example.com"
SETTINGS: dict[str, dict[str, Any]] = {
    "helpdesk": {"team": "Customer Care", "new_stage": "In Progress"},
    "helpdesk_mgmt": {"team": "Customer Care", "new_stage": "Awaiting"},
    "project_task": {"project": "Support", "new_stage": "In Progress"},
}
FLAVOUR = {"helpdesk": "enterprise", "helpdesk_mgmt": "oca", "project_task": "enterprise"}
CLOSED_STAGE = {"helpdesk": "Solved", "helpdesk_mgmt": "Done", "project_task": "Done"}
# The default priority's label, then the highest key and its label, as each model defines them.
PRIORITIES: dict[str, tuple[str, str, str]] = {
    "helpdesk": ("Low priority", "3", "Urgent"),
    "helpdesk_mgmt": ("Medium", "3", "Very High"),
    "project_task": ("Low", "1", "High"),
}
PROFILE_VERSIONS = [(profile, version) for profile in PROFILES for version in VERSIONS]

Sandboxes = Callable[..., OdooSandbox]


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[Sandboxes]:
    """One stand-in per (version, flavour) for the module, reset to its seed for every test that asks."""
    started: dict[tuple[int, str], OdooSandbox] = {}

    def get(version: int, flavour: str) -> OdooSandbox:
        if (version, flavour) not in started:
            started[version, flavour] = OdooSandbox(version=version, ticket_flavour=flavour)
            started[version, flavour].start()
        started[version, flavour].reset()
        return started[version, flavour]

    yield get
    for sandbox in started.values():
        sandbox.stop()


@pytest.fixture
def clients() -> Iterator[list[OdooRPC]]:
    made: list[OdooRPC] = []
    yield made
    for rpc in made:
        rpc.close()


def _config(sandbox: OdooSandbox, transport: str, profile: str) -> OdooConfig:
    return OdooConfig(url=sandbox.url, db=sandbox.db, username=sandbox.login, password=sandbox.password,
                      transport=transport, profile=profile, timeout_seconds=5, **SETTINGS[profile])


def _desk(sandbox: OdooSandbox, clients: list[OdooRPC], transport: str, profile: str) -> TicketDesk:
    cfg = _config(sandbox, transport, profile)
    clients.append(OdooRPC(cfg))
    return TicketDesk(clients[-1], cfg)


def _admin(sandbox: OdooSandbox, clients: list[OdooRPC], profile: str = "helpdesk") -> OdooRPC:
    """Plain RPC as the bridge's user: what an Odoo user would change by hand."""
    clients.append(OdooRPC(_config(sandbox, "jsonrpc", profile)))
    return clients[-1]


def _ticket(desk: TicketDesk) -> int:
    partner = desk.find_or_create_partner(CUSTOMER, "Cus Tomer")
    return desk.create_ticket(subject="Printer on fire", description_html="<p>It burns.</p>", partner_id=partner,
                              email=CUSTOMER, name="Cus Tomer")


def _partner_of(sandbox: OdooSandbox, uid: int) -> int:
    [user] = sandbox.records("res.users", [("id", "=", uid)])
    return user["partner_id"]


def _subtype(sandbox: OdooSandbox, xmlid: str) -> int:
    [row] = sandbox.records("ir.model.data", [("module", "=", "mail"), ("name", "=", xmlid)])
    return row["res_id"]


# --------------------------------------------------------------------------- summary and assignment


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("profile", "version"), PROFILE_VERSIONS)
def test_summary_follows_priority_assignment_and_stage(
    sandboxes: Sandboxes, clients: list[OdooRPC], profile: str, version: int, transport: str
) -> None:
    sandbox = sandboxes(version, FLAVOUR[profile])
    desk = _desk(sandbox, clients, transport, profile)
    model = PROFILES[profile].model
    agent = sandbox.add_user("agent@example.com", "Agent Smith")
    other = sandbox.add_user("bea@example.com", "Bea Ortiz")
    ticket = _ticket(desk)
    default_label, top_key, top_label = PRIORITIES[profile]
    if profile == "project_task" and version >= 19:
        top_label = "Urgent"  # 19's task priority runs 0–3 (Low … Urgent)
        top_key = "3"

    assert desk.ticket_summary(ticket) == {
        "name": "Printer on fire", "priority": default_label,
        "priority_value": "1" if profile == "helpdesk_mgmt" else "0",
        "assignee": "", "assignee_id": None, "stage": SETTINGS[profile]["new_stage"], "closed": False,
        "partner_name": "Cus Tomer", "partner_email": CUSTOMER,
    }

    _admin(sandbox, clients).execute_kw(model, "write", [[ticket], {"priority": top_key}])
    desk.assign(ticket, agent)
    summary = desk.ticket_summary(ticket)
    assert summary is not None
    assert (summary["priority"], summary["priority_value"]) == (top_label, top_key)
    assert (summary["assignee"], summary["assignee_id"]) == ("Agent Smith", agent)

    writes = sandbox.call_count(model, "write")
    desk.assign(ticket, agent)  # already assigned: not written again (Odoo would notify the user again)
    assert sandbox.call_count(model, "write") == writes

    desk.assign(ticket, other)
    summary = desk.ticket_summary(ticket)
    assert summary is not None
    if profile == "project_task":  # added next to the first assignee, names in Odoo's order (by name)
        assert (summary["assignee"], summary["assignee_id"]) == ("Agent Smith, Bea Ortiz", agent)
        [task] = sandbox.records(model, [("id", "=", ticket)])
        assert sorted(task["user_ids"]) == sorted([agent, other])
    else:  # one assignee: replaced
        assert (summary["assignee"], summary["assignee_id"]) == ("Bea Ortiz", other)

    desk.set_stage(ticket, CLOSED_STAGE[profile])
    summary = desk.ticket_summary(ticket)
    assert summary is not None and (summary["stage"], summary["closed"]) == (CLOSED_STAGE[profile], True)
    desk.set_stage(ticket, SETTINGS[profile]["new_stage"])
    summary = desk.ticket_summary(ticket)
    assert summary is not None and (summary["stage"], summary["closed"]) == (SETTINGS[profile]["new_stage"], False)

    # Metadata is memoised: the priority labels were described once for all these summaries.
    assert sandbox.call_count(model, "fields_get") == 1
    assert desk.ticket_summary(ticket + 1000) is None


@pytest.mark.parametrize("profile", list(PROFILES))
def test_closed_is_the_profiles_own_notion(sandboxes: Sandboxes, clients: list[OdooRPC], profile: str) -> None:
    """A folded stage that is not "closed" closes an Enterprise ticket or a task, not an OCA ticket."""
    sandbox = sandboxes(17, FLAVOUR[profile])
    desk = _desk(sandbox, clients, "jsonrpc", profile)
    ticket = _ticket(desk)
    _admin(sandbox, clients, profile).execute_kw(PROFILES[profile].stage_model, "create",
                                                 [{"name": "Parked", "fold": True}])
    desk.set_stage(ticket, "Parked")
    summary = desk.ticket_summary(ticket)
    assert summary is not None and summary["stage"] == "Parked"
    assert summary["closed"] is (profile != "helpdesk_mgmt")


@pytest.mark.parametrize("profile", list(PROFILES))
def test_summary_of_an_archived_ticket_without_customer(
    sandboxes: Sandboxes, clients: list[OdooRPC], profile: str
) -> None:
    sandbox = sandboxes(17, FLAVOUR[profile])
    desk = _desk(sandbox, clients, "jsonrpc", profile)
    ticket = desk.create_ticket(subject="No sender", description_html="<p>x</p>", partner_id=None, email="", name="")
    _admin(sandbox, clients, profile).execute_kw(PROFILES[profile].model, "write", [[ticket], {"active": False}])
    summary = desk.ticket_summary(ticket)
    assert summary is not None
    assert (summary["name"], summary["partner_name"], summary["partner_email"]) == ("No sender", "", "")


def test_assigning_a_missing_ticket_fails(sandboxes: Sandboxes, clients: list[OdooRPC]) -> None:
    sandbox = sandboxes(17, "enterprise")
    agent = sandbox.add_user("agent@example.com", "Agent Smith")
    with pytest.raises(RejectedByService):
        _desk(sandbox, clients, "jsonrpc", "helpdesk").assign(999, agent)


# --------------------------------------------------------------------------- users


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("version", VERSIONS)
def test_find_user_by_email_finds_internal_users_only(
    sandboxes: Sandboxes, clients: list[OdooRPC], version: int, transport: str
) -> None:
    sandbox = sandboxes(version, "enterprise")
    desk = _desk(sandbox, clients, transport, "helpdesk")
    admin = _admin(sandbox, clients)
    agent = sandbox.add_user("Agent.Smith@Example.com", "Agent Smith")
    assert desk.find_user_by_email("  agent.smith@EXAMPLE.com ") == {
        "id": agent, "name": "Agent Smith", "partner_id": _partner_of(sandbox, agent)}

    # Found by the email of their partner when the login is no address.
    bea = sandbox.add_user("bortiz", "Bea Ortiz")
    admin.execute_kw("res.partner", "write", [[_partner_of(sandbox, bea)], {"email": "Bea.Ortiz@corp.example"}])
    found = desk.find_user_by_email("bea.ortiz@corp.EXAMPLE")
    assert found is not None and (found["id"], found["name"]) == (bea, "Bea Ortiz")

    # A portal user (share) never counts, nor an archived agent.
    sandbox.add_user("portal@customer.example", "Portal Pat", share=True)
    assert desk.find_user_by_email("portal@customer.example") is None
    gone = sandbox.add_user("gone@example.com", "Gone Agent")
    admin.execute_kw("res.users", "write", [[gone], {"active": False}])
    assert desk.find_user_by_email("gone@example.com") is None

    # % and _ are literal characters, not wildcards.
    sandbox.add_user("alice@corp.example", "Alice Agent")
    for look_alike in ("a_ice@corp.example", "%@corp.example", "alice@corp%", "_lice@corp.example"):
        assert desk.find_user_by_email(look_alike) is None, look_alike
    assert desk.find_user_by_email("") is None and desk.find_user_by_email("nobody@example.com") is None


# --------------------------------------------------------------------------- agent notes


@pytest.mark.parametrize(("profile", "version"), PROFILE_VERSIONS)
def test_agent_note_is_an_internal_note_by_the_agent_that_threads(
    sandboxes: Sandboxes, clients: list[OdooRPC], profile: str, version: int
) -> None:
    sandbox = sandboxes(version, FLAVOUR[profile])
    desk = _desk(sandbox, clients, "jsonrpc", profile)
    model = PROFILES[profile].model
    agent = sandbox.add_user("agent@example.com", "Agent Smith")
    partner = _partner_of(sandbox, agent)
    ticket = _ticket(desk)
    body = f"<p>Agent reply sent</p><p>{html.escape('<script>x()</script> & done')}</p>"
    sent_id = "<agent.7f3a@bridge.example.com>"

    note = desk.post_agent_note(ticket, body, author_partner_id=partner, message_id=sent_id)
    assert isinstance(note, int) and not isinstance(note, bool)
    [stored] = sandbox.records("mail.message", [("id", "=", note)])
    assert (stored["model"], stored["res_id"], stored["author_id"]) == (model, ticket, partner)
    assert (stored["message_type"], stored["subtype_id"]) == ("comment", _subtype(sandbox, "mt_note"))
    assert stored["body"] == body  # markup kept, the text inside still escaped
    assert stored["message_id"] == sent_id and stored["partner_ids"] == []  # nobody to notify
    found = desk.find_messages([sent_id])
    assert [(m["id"], m["model"], m["res_id"]) for m in found] == [(note, model, ticket)]

    # Without a Message-ID Odoo makes one; without an author the note is the API user's.
    plain = desk.post_agent_note(ticket, "<p>x</p>", author_partner_id=None)
    [stored] = sandbox.records("mail.message", [("id", "=", plain)])
    assert stored["message_id"] and stored["message_id"] != sent_id
    assert stored["author_id"] == _partner_of(sandbox, sandbox.uid)
