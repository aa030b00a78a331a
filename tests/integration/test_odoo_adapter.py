"""The Odoo adapter (rpc + tickets) against the local stand-in: both transports, three profiles, 16/17/19."""

from __future__ import annotations

import base64
import html
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge.config import OdooConfig
from bridge.errors import AccessDenied, ConfigurationError, RejectedByService, ServiceDown, TransientError
from bridge.models import Attachment
from bridge.odoo.rpc import OdooRPC
from bridge.odoo.tickets import PROFILES, TicketDesk
from bridge.sandbox.odoo import OdooSandbox

pytestmark = pytest.mark.integration

TRANSPORTS = ("jsonrpc", "xmlrpc")
VERSIONS = (16, 17, 19)
CUSTOMER = "customer@example.com"
# What each profile is pointed at in the seeded stand-in.
SETTINGS: dict[str, dict[str, Any]] = {
    "helpdesk": {"team": "Customer Care", "new_stage": "In Progress", "tags": ("email", "vip")},
    "helpdesk_mgmt": {"team": "Customer Care", "new_stage": "Awaiting", "tags": ("email",)},
    "project_task": {"project": "Support", "new_stage": "In Progress", "tags": ("email",)},
}
FLAVOUR = {"helpdesk": "enterprise", "helpdesk_mgmt": "oca", "project_task": "enterprise"}

Sandboxes = Callable[..., OdooSandbox]
MakeDesk = Callable[..., TicketDesk]


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[Sandboxes]:
    """One stand-in per (version, flavour) for the module, reset to its seed for every test that asks."""
    started: dict[tuple[int, str], OdooSandbox] = {}

    def get(version: int = 17, flavour: str = "enterprise") -> OdooSandbox:
        if (version, flavour) not in started:
            sandbox = OdooSandbox(version=version, ticket_flavour=flavour)
            sandbox.start()
            started[version, flavour] = sandbox
        sandbox = started[version, flavour]
        sandbox.reset()
        return sandbox

    yield get
    for sandbox in started.values():
        sandbox.stop()


def odoo_config(sandbox: OdooSandbox, transport: str, profile: str = "helpdesk", **overrides: Any) -> OdooConfig:
    values: dict[str, Any] = {
        "url": sandbox.url,
        "db": sandbox.db,
        "username": sandbox.login,
        "password": sandbox.password,
        "transport": transport,
        "profile": profile,
        "timeout_seconds": 5,
        **overrides,
    }
    return OdooConfig(**values)


@pytest.fixture
def connect() -> Iterator[Callable[[OdooConfig], OdooRPC]]:
    """Builds clients and closes them all at the end of the test."""
    clients: list[OdooRPC] = []

    def make(cfg: OdooConfig) -> OdooRPC:
        clients.append(OdooRPC(cfg))
        return clients[-1]

    yield make
    for rpc in clients:
        rpc.close()


@pytest.fixture
def make_desk(connect: Callable[[OdooConfig], OdooRPC]) -> MakeDesk:
    """A TicketDesk on a stand-in, configured like odoo_config."""

    def make(sandbox: OdooSandbox, transport: str, profile: str = "helpdesk", **overrides: Any) -> TicketDesk:
        cfg = odoo_config(sandbox, transport, profile, **overrides)
        return TicketDesk(connect(cfg), cfg)

    return make


def _new_ticket(desk: TicketDesk, subject: str = "Printer on fire", email: str = CUSTOMER) -> tuple[int, int]:
    partner = desk.find_or_create_partner(email, "Cus Tomer")
    ticket = desk.create_ticket(
        subject=subject, description_html="<p>It burns.</p>", partner_id=partner, email=email, name="Cus Tomer"
    )
    return partner, ticket


def _only(records: list[dict]) -> dict:
    assert len(records) == 1, records
    return records[0]


def _subtype(sandbox: OdooSandbox, xmlid: str) -> int:
    return _only(sandbox.records("ir.model.data", [("module", "=", "mail"), ("name", "=", xmlid)]))["res_id"]


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_login_names_the_user_never_the_password(
    sandboxes: Sandboxes, connect: Callable[[OdooConfig], OdooRPC], transport: str
) -> None:
    sandbox = sandboxes()
    password = "Wr0ng-pa55word-7f3a"
    cfg = odoo_config(sandbox, transport, password=password)
    rpc = connect(cfg)
    desk = TicketDesk(rpc, cfg)
    for attempt in (desk.check, lambda: desk.find_messages(["<x@example.com>"]), rpc.authenticate):
        with pytest.raises(AccessDenied) as info:
            attempt()
        assert str(info.value) == f"odoo: login refused for {sandbox.login} on {sandbox.db}"
        assert password not in str(info.value) and password not in repr(info.value)
        assert password not in repr(vars(rpc))
    assert sandbox.call_count() == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_stand_in_down_is_transient_and_gone_is_service_down(
    sandboxes: Sandboxes, make_desk: MakeDesk, transport: str
) -> None:
    sandbox = sandboxes()
    desk = make_desk(sandbox, transport)
    sandbox.set_down(True)
    with pytest.raises(TransientError, match="Odoo unavailable") as info:
        desk.find_or_create_partner(CUSTOMER, "")
    assert not isinstance(info.value, ServiceDown)
    sandbox.set_down(False)
    assert desk.find_or_create_partner(CUSTOMER, "") > 0

    gone = OdooSandbox()
    gone.start()
    gone.stop()
    with pytest.raises(ServiceDown, match="cannot reach"):
        make_desk(gone, transport).check()


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("validation", RejectedByService),
        ("user", RejectedByService),
        ("missing", RejectedByService),
        ("transient", TransientError),
        ("access", AccessDenied),
    ],
)
def test_injected_faults_are_typed(
    sandboxes: Sandboxes, make_desk: MakeDesk, transport: str, kind: str, expected: type
) -> None:
    sandbox = sandboxes()
    desk = make_desk(sandbox, transport)
    partner = desk.find_or_create_partner(CUSTOMER, "")
    sandbox.fail_next("helpdesk.ticket", "create", error=kind)
    with pytest.raises(expected, match=r"^odoo: helpdesk\.ticket\.create: ") as info:
        desk.create_ticket(subject="s", description_html="", partner_id=partner, email=CUSTOMER, name="")
    assert "\n" not in str(info.value)
    assert sandbox.call_count("helpdesk.ticket", "create") == 1  # no retry: AccessError is not a login problem
    assert sandbox.records("helpdesk.ticket") == []


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_session_logs_in_again_once(sandboxes: Sandboxes, make_desk: MakeDesk, transport: str) -> None:
    sandbox = sandboxes()
    desk = make_desk(sandbox, transport)
    sandbox.fail_next("helpdesk.ticket", "create", error="denied")
    _, ticket = _new_ticket(desk)
    assert sandbox.call_count("helpdesk.ticket", "create") == 2
    assert [rec["id"] for rec in sandbox.records("helpdesk.ticket")] == [ticket]

    sandbox.fail_next("helpdesk.ticket", "create", error="denied", count=3)
    with pytest.raises(AccessDenied, match="Access Denied"):
        _new_ticket(desk)
    assert sandbox.call_count("helpdesk.ticket", "create") == 4  # one more try, then give up


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unknown_endpoint_is_a_configuration_error(sandboxes: Sandboxes, make_desk: MakeDesk, transport: str) -> None:
    sandbox = sandboxes()
    desk = make_desk(sandbox, transport, url=sandbox.url + "/odoo")
    with pytest.raises(ConfigurationError, match="RPC endpoints disabled"):
        desk.check()


# --------------------------------------------------------------------------- the ticket flow


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ticket_with_customer_message_and_attachment(
    sandboxes: Sandboxes, make_desk: MakeDesk, transport: str, profile: str
) -> None:
    sandbox = sandboxes(17, FLAVOUR[profile])
    desk = make_desk(sandbox, transport, profile, **SETTINGS[profile])
    model = PROFILES[profile].model
    partner, ticket = _new_ticket(desk, subject="Printer on fire")

    record = _only(sandbox.records(model))
    assert record["id"] == ticket and isinstance(ticket, int)
    assert record["name"] == "Printer on fire"
    assert (record["description"], record["partner_id"]) == ("<p>It burns.</p>", partner)
    stage = _only(sandbox.records(PROFILES[profile].stage_model, [("id", "=", record["stage_id"])]))
    assert stage["name"] == SETTINGS[profile]["new_stage"]
    tags = sandbox.records(PROFILES[profile].tag_model, [("id", "in", record["tag_ids"])])
    assert sorted(tag["name"] for tag in tags) == sorted(SETTINGS[profile]["tags"])
    team_field = PROFILES[profile].team_field
    team = _only(sandbox.records(PROFILES[profile].team_model, [("id", "=", record[team_field])]))
    assert team["name"] == SETTINGS[profile].get("team") or SETTINGS[profile].get("project")
    if PROFILES[profile].has_partner_email:
        assert (record["partner_email"], record["partner_name"]) == (CUSTOMER, "Cus Tomer")

    text = "Hello <script>alert('x')</script> & bye"
    message = desk.post_customer_message(
        ticket,
        body_html=f"<p>{html.escape(text)}</p>",
        partner_id=partner,
        email_from=f"Cus Tomer <{CUSTOMER}>",
        message_id="<first@customer.example.com>",
        subject="Printer on fire",
        attachments=[Attachment("log.txt", "text/plain", b"line 1\n\x00binary")],
    )
    stored = _only(sandbox.records("mail.message", [("id", "=", message)]))
    assert stored["body"] == "<p>Hello &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; bye</p>"
    assert "<script" not in stored["body"]
    assert (stored["model"], stored["res_id"], stored["author_id"]) == (model, ticket, partner)
    assert (stored["message_type"], stored["subtype_id"]) == ("email", _subtype(sandbox, "mt_comment"))
    assert stored["message_id"] == "<first@customer.example.com>"
    attachment = _only(sandbox.records("ir.attachment", [("id", "in", stored["attachment_ids"])]))
    assert (attachment["res_model"], attachment["res_id"]) == (model, ticket)
    assert (attachment["name"], attachment["mimetype"]) == ("log.txt", "text/plain")
    assert base64.b64decode(attachment["datas"]) == b"line 1\n\x00binary"

    found = desk.find_messages(["<nobody@example.com>", "<first@customer.example.com>"])
    assert [(m["id"], m["model"], m["res_id"]) for m in found] == [(message, model, ticket)]
    assert desk.find_messages([]) == []
    assert desk.ticket_customer_email(ticket) == CUSTOMER


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bodies_arrive_as_markup_and_ids_as_ints_in_every_version(
    sandboxes: Sandboxes, make_desk: MakeDesk, connect: Callable[[OdooConfig], OdooRPC], transport: str, version: int
) -> None:
    """16 stores the body as given; 17+ needs body_is_html; 19 answers [id] where ≤18 answer id."""
    sandbox = sandboxes(version)
    desk = make_desk(sandbox, transport)
    partner, ticket = _new_ticket(desk)
    body = f"<p>{html.escape('<script>x()</script>')}</p>"
    message = desk.post_customer_message(
        ticket, body_html=body, partner_id=partner, email_from=CUSTOMER, message_id="<m@example.com>", subject=""
    )
    note = desk.post_note(ticket, "<p>Acknowledged <b>automatically</b>.</p>")
    assert all(isinstance(value, int) and not isinstance(value, bool) for value in (partner, ticket, message, note))
    stored = {rec["id"]: rec for rec in sandbox.records("mail.message", [("res_id", "=", ticket)])}
    assert stored[message]["body"] == body
    assert stored[note]["body"] == "<p>Acknowledged <b>automatically</b>.</p>"
    assert (stored[note]["message_type"], stored[note]["subtype_id"]) == ("comment", _subtype(sandbox, "mt_note"))
    assert connect(odoo_config(sandbox, transport)).server_major == version


@pytest.mark.parametrize("version", VERSIONS)
def test_has_note_finds_its_marker_on_that_ticket_only(
    sandboxes: Sandboxes, make_desk: MakeDesk, version: int
) -> None:
    desk = make_desk(sandboxes(version), "jsonrpc")
    _, ticket = _new_ticket(desk)
    _, other = _new_ticket(desk, subject="Other")
    marker = "<ack_1.x%y@bridge.example.com>"
    assert not desk.has_note(ticket, marker)
    desk.post_note(ticket, f"<p>Acknowledgement sent</p><p>Message-ID: {html.escape(marker)}</p>")
    assert desk.has_note(ticket, marker)
    assert not desk.has_note(ticket, "<ack_2@bridge.example.com>")
    assert not desk.has_note(other, marker)


@pytest.mark.parametrize("profile", list(PROFILES))
def test_empty_subject_and_text_get_placeholders(sandboxes: Sandboxes, make_desk: MakeDesk, profile: str) -> None:
    sandbox = sandboxes(17, FLAVOUR[profile])
    desk = make_desk(sandbox, "jsonrpc", profile, **SETTINGS[profile])
    partner = desk.find_or_create_partner(CUSTOMER, "")
    ticket = desk.create_ticket(subject="  ", description_html="", partner_id=partner, email=CUSTOMER, name="")
    record = _only(sandbox.records(PROFILES[profile].model))
    assert record["name"] == "(no subject)"
    if PROFILES[profile].description_required:
        assert record["description"] == "<p>(no text)</p>"
    else:
        assert not record["description"]
    assert desk.find_recent_ticket(partner_id=partner, subject="", since=record["create_date"]) == ticket


# --------------------------------------------------------------------------- lookups


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_partners_are_found_case_insensitively_and_cached(
    sandboxes: Sandboxes, make_desk: MakeDesk, transport: str
) -> None:
    sandbox = sandboxes()
    desk = make_desk(sandbox, transport)
    first = desk.find_or_create_partner("Customer@Example.com", "Cus Tomer")
    assert desk.find_or_create_partner("customer@example.COM ", "Other Name") == first
    assert sandbox.call_count("res.partner") == 2  # one search_read, one create
    assert _only(sandbox.records("res.partner", [("id", "=", first)]))["name"] == "Cus Tomer"

    seeded = _only(sandbox.records("res.partner", [("email", "=", "info@example.com")]))["id"]
    assert desk.find_or_create_partner("INFO@example.com", "") == seeded
    lookalike = desk.find_or_create_partner("inf_@example.com", "")  # `_` is a LIKE wildcard: must not match
    assert lookalike != seeded
    assert _only(sandbox.records("res.partner", [("id", "=", lookalike)]))["name"] == "inf_@example.com"

    cold = make_desk(sandbox, transport)
    before = sandbox.call_count("res.partner", "create")
    assert cold.find_or_create_partner("customer@example.com", "") == first
    assert sandbox.call_count("res.partner", "create") == before


def test_concurrent_callers_create_one_partner(sandboxes: Sandboxes, make_desk: MakeDesk) -> None:
    sandbox = sandboxes()
    sandbox.latency = 0.05
    desk = make_desk(sandbox, "jsonrpc")
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(desk.find_or_create_partner("many@example.com", "")))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert len(sandbox.records("res.partner", [("email", "=", "many@example.com")])) == 1


def test_partner_with_underscore_is_found_again_by_a_fresh_client(
    sandboxes: Sandboxes, make_desk: MakeDesk
) -> None:
    sandbox = sandboxes()
    first = make_desk(sandbox, "jsonrpc").find_or_create_partner("john_doe@example.com", "")
    assert make_desk(sandbox, "jsonrpc").find_or_create_partner("john_doe@example.com", "") == first


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_find_recent_ticket_for_reconciliation(
    sandboxes: Sandboxes, make_desk: MakeDesk, connect: Callable[[OdooConfig], OdooRPC], transport: str
) -> None:
    sandbox = sandboxes()
    desk = make_desk(sandbox, transport)
    partner, ticket = _new_ticket(desk, subject="Lost order")
    _new_ticket(desk, subject="Something else")
    created = _only(sandbox.records("helpdesk.ticket", [("id", "=", ticket)]))["create_date"]
    assert desk.find_recent_ticket(partner_id=partner, subject="Lost order", since=created) == ticket
    assert desk.find_recent_ticket(partner_id=partner, subject="Lost order", since="2999-01-01 00:00:00") is None
    assert desk.find_recent_ticket(partner_id=partner + 1000, subject="Lost order", since=created) is None
    assert desk.find_recent_ticket(partner_id=partner, subject="Lost", since=created) is None
    connect(odoo_config(sandbox, transport)).execute_kw("helpdesk.ticket", "write", [[ticket], {"active": False}])
    assert desk.find_recent_ticket(partner_id=partner, subject="Lost order", since=created) == ticket


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_customer_email_of_a_missing_ticket_is_none(sandboxes: Sandboxes, make_desk: MakeDesk, transport: str) -> None:
    sandbox = sandboxes(17, "enterprise")
    desk = make_desk(sandbox, transport, "project_task", project="Support")
    _, task = _new_ticket(desk, email="task.owner@example.com")
    assert desk.ticket_customer_email(task) == "task.owner@example.com"  # via the partner: no partner_email here
    assert desk.ticket_customer_email(999_999) is None


# --------------------------------------------------------------------------- tickets created in Odoo


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ticket_request_trusts_a_portal_customer_as_their_login_and_knows_our_own_tickets(
    sandboxes: Sandboxes, make_desk: MakeDesk, transport: str
) -> None:
    sandbox = sandboxes()
    desk = make_desk(sandbox, transport)
    uid = sandbox.add_user("alice@customer.example", "Alice", share=True, password="alice-secret")
    alice = _only(sandbox.records("res.users", [("id", "=", uid)]))["partner_id"]
    portal = make_desk(sandbox, transport, username="alice@customer.example", password="alice-secret")
    # Alice's own ticket, her partner's email changed on the way (the ticket's partner_email syncs to it).
    own = portal.create_ticket(subject="Locked out", description_html="<p>Help</p>", partner_id=alice,
                               email="mallory@evil.example", name="Alice")
    bob = desk.find_or_create_partner("bob@customer.example", "Bob")
    for_bob = portal.create_ticket(subject="For Bob", description_html="<p>Help</p>", partner_id=bob,
                                   email="bob@customer.example", name="Bob")
    _, ours = _new_ticket(desk)

    info = desk.ticket_request(own)
    assert info is not None
    assert (info["by_portal_customer"], info["login"], info["email"]) == (
        True, "alice@customer.example", "mallory@evil.example")
    assert not info["by_bridge"] and not info["from_email"]
    info = desk.ticket_request(for_bob)
    assert info is not None and (info["by_portal_customer"], info["login"], info["by_bridge"]) == (False, "", False)
    info = desk.ticket_request(ours)
    assert info is not None and (info["by_portal_customer"], info["login"], info["by_bridge"]) == (False, "", True)
    assert desk.tickets_after(0, "2999-01-01 00:00:00") == [own, for_bob], "our own tickets are left out"


def _stored_attachment(sandbox: OdooSandbox, desk: TicketDesk, attachment: Attachment) -> dict:
    partner, ticket = _new_ticket(desk)
    desk.post_customer_message(ticket, body_html="<p>See attached.</p>", partner_id=partner, email_from=CUSTOMER,
                               message_id="<attached@customer.example.com>", subject="Files",
                               attachments=[attachment])
    return _only(sandbox.records("ir.attachment", [("res_model", "=", "helpdesk.ticket"), ("res_id", "=", ticket)]))


@pytest.mark.parametrize("filename, content_type", [
    ("page.html", "text/html"), ("page.html", "text/html; charset=utf-8"), ("page.xhtml", "application/xhtml+xml"),
    ("logo.svg", "image/svg+xml"), ("data.xml", "text/xml"), ("data.xml", "application/xml"),
    ("style.xsl", "text/xsl"), ("feed", "application/atom+xml"), ("include.shtml", "text/x-server-parsed-html"),
    ("invoice.html", "application/octet-stream"), ("invoice.HTM", "text/plain"), ("logo.svg", ""),
    ("notes.xml", "application/octet-stream"), ("page.xhtml", "application/octet-stream"),
    ("include.shtml", "application/octet-stream"),
])
def test_markup_attachments_are_stored_as_octet_stream(
    sandboxes: Sandboxes, make_desk: MakeDesk, filename: str, content_type: str
) -> None:
    """Odoo serves an attachment with its stored type: markup must never open as a live page."""
    sandbox = sandboxes()
    payload = b"<html><body><script>alert(document.cookie)</script></body></html>"
    stored = _stored_attachment(sandbox, make_desk(sandbox, "jsonrpc"), Attachment(filename, content_type, payload))
    assert (stored["name"], stored["mimetype"]) == (filename, "application/octet-stream")
    assert base64.b64decode(stored["datas"]) == payload


@pytest.mark.parametrize("filename, content_type", [
    ("report.pdf", "application/pdf"), ("photo.jpg", "image/jpeg"), ("log.txt", "text/plain"),
    ("letter.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
])
def test_other_attachments_keep_their_type(
    sandboxes: Sandboxes, make_desk: MakeDesk, filename: str, content_type: str
) -> None:
    sandbox = sandboxes()
    stored = _stored_attachment(sandbox, make_desk(sandbox, "jsonrpc"), Attachment(filename, content_type, b"data"))
    assert (stored["name"], stored["mimetype"]) == (filename, content_type)


# --------------------------------------------------------------------------- stages and tags

# The seeded stages of each profile's stage model, in sequence order.
STAGES: dict[str, tuple[str, ...]] = {
    "helpdesk": ("New", "In Progress", "Solved", "Cancelled"),
    "helpdesk_mgmt": ("New", "In Progress", "Awaiting", "Done", "Cancelled", "Rejected"),
    "project_task": ("New", "In Progress", "Done"),
}


def _stage_name(sandbox: OdooSandbox, profile: str, ticket: int) -> str:
    record = _only(sandbox.records(PROFILES[profile].model, [("id", "=", ticket)]))
    return _only(sandbox.records(PROFILES[profile].stage_model, [("id", "=", record["stage_id"])]))["name"]


def _tag_names(sandbox: OdooSandbox, profile: str, ticket: int) -> list[str]:
    record = _only(sandbox.records(PROFILES[profile].model, [("id", "=", ticket)]))
    tags = sandbox.records(PROFILES[profile].tag_model, [("id", "in", record["tag_ids"])])
    return sorted(tag["name"] for tag in tags)


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_set_stage_moves_the_ticket_through_every_stage(
    sandboxes: Sandboxes, make_desk: MakeDesk, transport: str, profile: str
) -> None:
    sandbox = sandboxes(17, FLAVOUR[profile])
    desk = make_desk(sandbox, transport, profile, **SETTINGS[profile])
    _, ticket = _new_ticket(desk)
    _, other = _new_ticket(desk, subject="Other")
    model, stage_model = PROFILES[profile].model, PROFILES[profile].stage_model
    assert sorted(stage["name"] for stage in sandbox.records(stage_model)) == sorted(STAGES[profile])

    for name in (*STAGES[profile], STAGES[profile][0]):
        desk.set_stage(ticket, name)
        assert _stage_name(sandbox, profile, ticket) == name
    assert _stage_name(sandbox, profile, other) == SETTINGS[profile]["new_stage"]  # only that ticket moved

    # Idempotent: the same stage again writes nothing, and stage ids come from the cache.
    searches, writes = sandbox.call_count(stage_model, "search"), sandbox.call_count(model, "write")
    desk.set_stage(ticket, STAGES[profile][0])
    desk.set_stage(ticket, STAGES[profile][0])
    assert _stage_name(sandbox, profile, ticket) == STAGES[profile][0]
    assert sandbox.call_count(model, "write") == writes
    desk.set_stage(other, STAGES[profile][-1])
    assert _stage_name(sandbox, profile, other) == STAGES[profile][-1]
    assert sandbox.call_count(stage_model, "search") == searches


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_set_stage_to_an_unknown_stage_is_a_configuration_error(
    sandboxes: Sandboxes,
    make_desk: MakeDesk,
    connect: Callable[[OdooConfig], OdooRPC],
    transport: str,
    profile: str,
) -> None:
    sandbox = sandboxes(17, FLAVOUR[profile])
    desk = make_desk(sandbox, transport, profile, **SETTINGS[profile])
    _, ticket = _new_ticket(desk)
    # "Awaiting" exists in OCA's helpdesk.ticket.stage only: stages never leak across profiles.
    for name in ("Limbo", "Awaiting") if profile != "helpdesk_mgmt" else ("Limbo", "Solved"):
        with pytest.raises(ConfigurationError) as info:
            desk.set_stage(ticket, name)
        assert repr(name) in str(info.value) and PROFILES[profile].stage_model in str(info.value)
        assert not isinstance(info.value, AccessDenied)
    assert sandbox.call_count(PROFILES[profile].model, "write") == 0
    assert _stage_name(sandbox, profile, ticket) == SETTINGS[profile]["new_stage"]

    # A miss is not cached: the stage is found once someone creates it in Odoo.
    admin = connect(odoo_config(sandbox, transport, profile))
    admin.execute_kw(PROFILES[profile].stage_model, "create", [{"name": "Limbo"}])
    desk.set_stage(ticket, "Limbo")
    assert _stage_name(sandbox, profile, ticket) == "Limbo"


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_add_tags_links_and_creates_each_tag_once(
    sandboxes: Sandboxes, make_desk: MakeDesk, transport: str, profile: str
) -> None:
    sandbox = sandboxes(17, FLAVOUR[profile])
    desk = make_desk(sandbox, transport, profile, **SETTINGS[profile])
    tag_model = PROFILES[profile].tag_model
    _, ticket = _new_ticket(desk)
    _, other = _new_ticket(desk, subject="Other")
    configured = sorted(SETTINGS[profile]["tags"])
    assert _tag_names(sandbox, profile, ticket) == configured

    desk.add_tags(ticket, ["login", "lms-reactivated", "login"])
    desk.add_tags(ticket, ["login", "lms-reactivated"])
    # The configured tags are kept, the new ones linked.
    assert _tag_names(sandbox, profile, ticket) == sorted([*configured, "login", "lms-reactivated"])
    for name in ("login", "lms-reactivated", "email"):
        assert len(sandbox.records(tag_model, [("name", "=", name)])) == 1
    assert sandbox.call_count(tag_model, "create") == len(configured) + 2

    # Another ticket, and a fresh desk with a cold cache, reuse the same tags.
    make_desk(sandbox, transport, profile, **SETTINGS[profile]).add_tags(other, ["login", "email"])
    assert _tag_names(sandbox, profile, other) == sorted({*configured, "login"})
    assert len(sandbox.records(tag_model, [("name", "=", "login")])) == 1
    assert sandbox.call_count(tag_model, "create") == len(configured) + 2

    writes = sandbox.call_count(PROFILES[profile].model, "write")
    desk.add_tags(ticket, [])
    assert sandbox.call_count(PROFILES[profile].model, "write") == writes  # nothing to link: no call


# --------------------------------------------------------------------------- check


@pytest.mark.parametrize("profile", list(PROFILES))
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_check_good_config(sandboxes: Sandboxes, make_desk: MakeDesk, transport: str, profile: str) -> None:
    sandbox = sandboxes(17, FLAVOUR[profile])
    settings = {**SETTINGS[profile], "tags": ("brand-new",)}
    summary = make_desk(sandbox, transport, profile, **settings).check()
    model = PROFILES[profile].model
    assert summary == (
        f"Odoo 17.0 db=bridge uid=2 model={model} (0 tickets); tags created with the first ticket: brand-new"
    )
    assert sandbox.records(PROFILES[profile].tag_model, [("name", "=", "brand-new")]) == []  # only reported


@pytest.mark.parametrize(
    ("flavour", "profile", "settings", "needle"),
    [
        ("enterprise", "helpdesk", {"team": "Nope"}, "odoo.team: no helpdesk.team named 'Nope'"),
        ("enterprise", "helpdesk", {"new_stage": "Limbo"}, "odoo.new_stage: no helpdesk.stage named 'Limbo'"),
        ("enterprise", "project_task", {}, "odoo.project is required for the project_task profile"),
        ("enterprise", "project_task", {"project": "Nope"}, "odoo.project: no project.project named 'Nope'"),
        ("enterprise", "helpdesk_mgmt", {}, "stage_id points to helpdesk.stage, not helpdesk.ticket.stage"),
        ("oca", "helpdesk", {}, "stage_id points to helpdesk.ticket.stage, not helpdesk.stage"),
    ],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_check_bad_config(
    sandboxes: Sandboxes,
    make_desk: MakeDesk,
    transport: str,
    flavour: str,
    profile: str,
    settings: dict,
    needle: str,
) -> None:
    desk = make_desk(sandboxes(17, flavour), transport, profile, **settings)
    with pytest.raises(ConfigurationError) as info:
        desk.check()
    assert needle in str(info.value)
    assert not isinstance(info.value, AccessDenied)
