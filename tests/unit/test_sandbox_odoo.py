"""The Odoo sandbox driven through real clients: xmlrpc.client and JSON-RPC over requests."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import xmlrpc.client
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from bridge.sandbox.odoo import OdooSandbox
from bridge.sandbox.odoo_orm import Database


@pytest.fixture()
def odoo() -> Iterator[OdooSandbox]:
    with OdooSandbox(version=17) as sandbox:
        yield sandbox


def proxy(sb: OdooSandbox, service: str = "object") -> xmlrpc.client.ServerProxy:
    return xmlrpc.client.ServerProxy(f"{sb.url}/xmlrpc/2/{service}")


def call(sb: OdooSandbox, model: str, method: str, *args: Any, **kwargs: Any) -> Any:
    """execute_kw over XML-RPC with the sandbox's credentials."""
    return proxy(sb).execute_kw(sb.db, 2, sb.password, model, method, list(args), kwargs)


def fault(sb: OdooSandbox, model: str, method: str, *args: Any, **kwargs: Any) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as info:
        call(sb, model, method, *args, **kwargs)
    return info.value


def jsonrpc(sb: OdooSandbox, service: str, method: str, *args: Any) -> dict[str, Any]:
    response = requests.post(f"{sb.url}/jsonrpc", timeout=5, json={
        "jsonrpc": "2.0", "method": "call", "id": 7,
        "params": {"service": service, "method": method, "args": list(args)}})
    assert response.status_code == 200
    return response.json()


def jcall(sb: OdooSandbox, model: str, method: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    return jsonrpc(sb, "object", "execute_kw", sb.db, 2, sb.password, model, method, args, kwargs or {})


def control(sb: OdooSandbox, **payload: Any) -> requests.Response:
    return requests.post(f"{sb.url}/_sandbox/control", json=payload, timeout=5)


# --- common service and authentication ---

@pytest.mark.parametrize("version", [16, 19])
def test_version_follows_configuration(version: int) -> None:
    with OdooSandbox(version=version) as sb:
        info = proxy(sb, "common").version()
        assert info == {"server_version": f"{version}.0", "server_version_info": [version, 0, 0, "final", 0, ""],
                        "server_serie": f"{version}.0", "protocol_version": 1}
        assert jsonrpc(sb, "common", "version")["result"] == info


def test_authenticate_returns_uid_or_false(odoo: OdooSandbox) -> None:
    common = proxy(odoo, "common")
    assert common.authenticate(odoo.db, odoo.login, odoo.password, {}) == 2
    assert common.authenticate(odoo.db, odoo.login, "wrong", {}) is False
    assert common.authenticate("otherdb", odoo.login, odoo.password, {}) is False
    assert common.login(odoo.db, odoo.login, odoo.password) == 2
    assert jsonrpc(odoo, "common", "authenticate", odoo.db, "nobody", "x", {})["result"] is False


def test_added_users_log_in_and_their_records_carry_their_uid(odoo: OdooSandbox) -> None:
    uid = odoo.add_user("alice@customer.example", "Alice", share=True, password="alice-pw")
    common = proxy(odoo, "common")
    assert common.authenticate(odoo.db, "alice@customer.example", "alice-pw", {}) == uid != 2
    assert common.authenticate(odoo.db, "alice@customer.example", odoo.password, {}) is False
    [user] = call(odoo, "res.users", "read", [uid], fields=["login", "share", "partner_id"])
    assert (user["login"], user["share"]) == ("alice@customer.example", True)
    assert call(odoo, "res.partner", "read", [user["partner_id"][0]], fields=["email"])[0]["email"] == user["login"]
    theirs = proxy(odoo).execute_kw(odoo.db, uid, "alice-pw", "helpdesk.ticket", "create",
                                    [{"name": "Locked out", "partner_id": user["partner_id"][0]}])
    ours = call(odoo, "helpdesk.ticket", "create", {"name": "From an email"})
    created = {t["id"]: t["create_uid"] for t in odoo.records("helpdesk.ticket")}
    assert created == {theirs: uid, ours: 2}
    with pytest.raises(xmlrpc.client.Fault) as info:
        proxy(odoo).execute_kw(odoo.db, uid, odoo.password, "res.partner", "search", [[]])
    assert info.value.faultCode == 3
    odoo.reset()
    assert common.authenticate(odoo.db, "alice@customer.example", "alice-pw", {}) is False


def test_wrong_password_is_access_denied(odoo: OdooSandbox) -> None:
    with pytest.raises(xmlrpc.client.Fault) as info:
        proxy(odoo).execute_kw(odoo.db, 2, "wrong", "res.partner", "search", [[]])
    assert (info.value.faultCode, info.value.faultString) == (3, "Access Denied")
    answer = jsonrpc(odoo, "object", "execute_kw", odoo.db, 2, "wrong", "res.partner", "search", [[]])
    assert answer["id"] == 7 and "result" not in answer
    error = answer["error"]
    assert (error["code"], error["message"]) == (200, "Odoo Server Error")
    assert error["data"]["name"] == "odoo.exceptions.AccessDenied"
    assert error["data"]["message"] == "Access Denied" and error["data"]["arguments"] == ["Access Denied"]
    assert error["data"]["context"] == {} and "Traceback" in error["data"]["debug"]


def test_unknown_model_private_and_unknown_methods(odoo: OdooSandbox) -> None:
    f = fault(odoo, "no.such.model", "search", [])
    assert (f.faultCode, f.faultString) == (2, "Object no.such.model doesn't exist")
    f = fault(odoo, "res.partner", "_compute_stuff", [])
    assert f.faultCode == 4
    assert f.faultString == "Private methods (such as 'res.partner._compute_stuff') cannot be called remotely."
    f = fault(odoo, "res.partner", "no_such_method", [])
    assert f.faultCode == 1 and "Traceback" in f.faultString
    assert f.faultString.rstrip().endswith("AttributeError: The method 'res.partner.no_such_method' does not exist")
    error = jcall(odoo, "res.partner", "no_such_method", [[]])["error"]
    assert error["data"]["name"] == "builtins.AttributeError"
    assert jcall(odoo, "no.such.model", "search", [[]])["error"]["data"]["name"] == "odoo.exceptions.UserError"
    assert jcall(odoo, "res.partner", "_x", [[]])["error"]["data"]["name"] == "odoo.exceptions.AccessError"


# --- ORM behaviour ---

@pytest.mark.parametrize("version", [17, 19])
def test_create_returns_int_for_dict_and_list_for_list(version: int) -> None:
    with OdooSandbox(version=version) as sb:
        single = call(sb, "res.partner", "create", {"name": "One"})
        assert isinstance(single, int)
        many = call(sb, "res.partner", "create", [{"name": "Two"}, {"name": "Three"}])
        assert many == [single + 1, single + 2]
        assert jcall(sb, "res.partner", "create", [{"name": "Four"}])["result"] == single + 3


def test_read_shapes(odoo: OdooSandbox) -> None:
    tag = call(odoo, "helpdesk.tag", "create", {"name": "vip"})
    tid = call(odoo, "helpdesk.ticket", "create", {"name": "Broken", "partner_id": 3, "tag_ids": [(6, 0, [tag])]})
    [row] = call(odoo, "helpdesk.ticket", "read", [tid], ["partner_id", "user_id", "tag_ids", "priority",
                                                           "description", "display_name", "create_date"])
    assert row["id"] == tid
    assert row["partner_id"] == [3, "Support Bot"]
    assert row["user_id"] is False and row["description"] is False
    assert row["tag_ids"] == [tag] and row["priority"] == "0"
    assert row["display_name"] == "Broken (#1)"
    time.strptime(row["create_date"], "%Y-%m-%d %H:%M:%S")
    [bare] = call(odoo, "helpdesk.ticket", "read", [tid], ["partner_id"], load=False)
    assert bare == {"id": tid, "partner_id": 3}
    [partner] = call(odoo, "res.partner", "read", 3, ["name"])
    assert partner == {"id": 3, "name": "Support Bot"}
    f = fault(odoo, "helpdesk.ticket", "read", [tid], ["nope"])
    assert f.faultCode == 1 and "ValueError: Invalid field 'nope' on model 'helpdesk.ticket'" in f.faultString
    f = fault(odoo, "helpdesk.ticket", "read", [999])
    assert (f.faultCode, f.faultString) == (2, "Record does not exist or has been deleted.\n"
                                               "(Record: helpdesk.ticket(999,), User: 2)")
    f = fault(odoo, "helpdesk.ticket", "write", [999], {"name": "x"})
    assert f.faultCode == 2
    error = jcall(odoo, "helpdesk.ticket", "read", [[999]])["error"]
    assert error["data"]["name"] == "odoo.exceptions.MissingError"


def test_search_order_archived_and_paging(odoo: OdooSandbox) -> None:
    low = call(odoo, "helpdesk.ticket", "create", {"name": "low", "priority": "0"})
    urgent = call(odoo, "helpdesk.ticket", "create", {"name": "urgent", "priority": "3"})
    low2 = call(odoo, "helpdesk.ticket", "create", {"name": "low2", "priority": "0"})
    archived = call(odoo, "helpdesk.ticket", "create", {"name": "old", "priority": "3", "active": False})
    assert call(odoo, "helpdesk.ticket", "search", []) == [urgent, low2, low]
    assert call(odoo, "helpdesk.ticket", "search", [], order="id asc") == [low, urgent, low2]
    assert call(odoo, "helpdesk.ticket", "search", [], 1, 1) == [low2]
    assert call(odoo, "helpdesk.ticket", "search", [("active", "in", [True, False])]) == [archived, urgent, low2, low]
    assert call(odoo, "helpdesk.ticket", "search", [], context={"active_test": False})[0] == archived
    assert call(odoo, "helpdesk.ticket", "search_count", [("priority", "=", "0")]) == 2
    assert call(odoo, "helpdesk.ticket", "read", [archived], ["active"]) == [{"id": archived, "active": False}]
    rows = call(odoo, "helpdesk.ticket", "search_read", [("name", "ilike", "low")], ["name"], limit=1)
    assert rows == [{"id": low2, "name": "low2"}]
    assert call(odoo, "helpdesk.ticket", "name_search", "urgent") == [[urgent, "urgent (#2)"]]
    stages = call(odoo, "helpdesk.stage", "search_read", [], ["name"])
    assert [s["name"] for s in stages] == ["New", "In Progress", "Solved", "Cancelled"]
    assert fault(odoo, "helpdesk.ticket", "search", [], order="nope desc").faultCode == 1
    assert fault(odoo, "helpdesk.ticket", "search", [("nope", "=", 1)]).faultCode == 1


def test_name_search_domain_parameter_was_renamed_in_18() -> None:
    with OdooSandbox(version=17) as sb:
        assert call(sb, "res.partner", "name_search", "bot", args=[("is_company", "=", False)]) == [[3, "Support Bot"]]
    with OdooSandbox(version=18) as sb:
        assert call(sb, "res.partner", "name_search", "bot", domain=[("is_company", "=", False)]) == [[3, "Support Bot"]]
        assert "unexpected keyword argument 'args'" in fault(sb, "res.partner", "name_search", "bot", args=[]).faultString


def test_concurrent_creates_get_distinct_ids(odoo: OdooSandbox) -> None:
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(call(odoo, "res.partner", "create", {"name": "c"})))
               for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == list(range(4, 24))


def test_legacy_xmlrpc_endpoint_uses_string_fault_codes(odoo: OdooSandbox) -> None:
    legacy = xmlrpc.client.ServerProxy(f"{odoo.url}/xmlrpc/object")
    with pytest.raises(xmlrpc.client.Fault) as info:
        legacy.execute_kw(odoo.db, 2, odoo.password, "res.partner", "read", [[999]])
    assert info.value.faultCode.startswith("warning -- MissingError\n\nRecord does not exist")
    with pytest.raises(xmlrpc.client.Fault) as info:
        legacy.execute_kw(odoo.db, 2, "bad", "res.partner", "read", [[1]])
    assert info.value.faultCode == "AccessDenied"


def test_search_count_keyword_only_exists_in_16() -> None:
    with OdooSandbox(version=16) as sb:
        assert call(sb, "res.partner", "search", [], count=True) == 2  # OdooBot is archived
    with OdooSandbox(version=17) as sb:
        assert "unexpected keyword argument 'count'" in fault(sb, "res.partner", "search", [], count=True).faultString


def test_x2many_commands(odoo: OdooSandbox) -> None:
    tid = call(odoo, "helpdesk.ticket", "create", {"name": "t", "tag_ids": [(0, 0, {"name": "a"}), (0, 0, {"name": "b"})]})
    [a, b] = call(odoo, "helpdesk.tag", "search", [], order="id")
    c = call(odoo, "helpdesk.tag", "create", {"name": "c"})

    def tags() -> list[int]:
        return call(odoo, "helpdesk.ticket", "read", [tid], ["tag_ids"])[0]["tag_ids"]
    assert sorted(tags()) == [a, b]
    call(odoo, "helpdesk.ticket", "write", [tid], {"tag_ids": [(3, a, 0), (4, c, 0)]})
    assert sorted(tags()) == [b, c]
    call(odoo, "helpdesk.ticket", "write", [tid], {"tag_ids": [(1, b, {"name": "bee"}), (2, c, 0)]})
    assert tags() == [b] and call(odoo, "helpdesk.tag", "search", [("id", "=", c)]) == []
    call(odoo, "helpdesk.ticket", "write", [tid], {"tag_ids": [(6, 0, [a, b])]})
    assert sorted(tags()) == [a, b]
    call(odoo, "helpdesk.ticket", "write", [tid], {"tag_ids": [(5, 0, 0)]})
    assert tags() == []
    assert call(odoo, "helpdesk.tag", "read", [b], ["name"])[0]["name"] == "bee"


def test_failed_call_leaves_no_trace(odoo: OdooSandbox) -> None:
    f = fault(odoo, "helpdesk.ticket", "create", {"name": "t", "priority": "9", "tag_ids": [(0, 0, {"name": "x"})]})
    assert f.faultCode == 1 and "Wrong value for helpdesk.ticket.priority" in f.faultString
    assert odoo.records("helpdesk.tag") == [] and odoo.records("helpdesk.ticket") == []


def test_control_characters_are_stripped_from_xmlrpc(odoo: OdooSandbox) -> None:
    pid = jcall(odoo, "res.partner", "create", [{"name": "Bell\x07 Tab\tNew\nline"}])["result"]
    assert call(odoo, "res.partner", "read", [pid], ["name"])[0]["name"] == "Bell Tab\tNew\nline"
    assert jcall(odoo, "res.partner", "read", [[pid], ["name"]])["result"][0]["name"] == "Bell\x07 Tab\tNew\nline"


# --- helpdesk flavours ---

def test_enterprise_find_or_create_partner_and_email_sync(odoo: OdooSandbox) -> None:
    existing = call(odoo, "res.partner", "create", {"name": "Ann", "email": "Ann@Example.com"})
    tid = call(odoo, "helpdesk.ticket", "create",
               {"name": "Hi", "partner_name": "Ann S", "partner_email": "ann@example.com"})
    row = call(odoo, "helpdesk.ticket", "read", [tid], ["partner_id", "partner_email", "stage_id", "team_id"])[0]
    assert row["partner_id"] == [existing, "Ann"]
    assert row["stage_id"] == [1, "New"] and row["team_id"][1] == "Customer Care"
    fresh = call(odoo, "helpdesk.ticket", "create", {"name": "Hey", "partner_name": "Zed", "partner_email": "zed@x.test"})
    [zed] = call(odoo, "helpdesk.ticket", "read", [fresh], ["partner_id"])
    assert call(odoo, "res.partner", "read", [zed["partner_id"][0]], ["name", "email"])[0] == {
        "id": zed["partner_id"][0], "name": "Zed", "email": "zed@x.test"}
    call(odoo, "helpdesk.ticket", "write", [tid], {"partner_email": "ann.new@example.com"})
    assert call(odoo, "res.partner", "read", [existing], ["email"])[0]["email"] == "ann.new@example.com"


def test_enterprise_folded_stage_sets_close_date(odoo: OdooSandbox) -> None:
    tid = call(odoo, "helpdesk.ticket", "create", {"name": "t"})
    assert call(odoo, "helpdesk.ticket", "read", [tid], ["close_date"])[0]["close_date"] is False
    [solved] = call(odoo, "helpdesk.stage", "search", [("name", "=", "Solved")])
    call(odoo, "helpdesk.ticket", "write", [tid], {"stage_id": solved})
    row = call(odoo, "helpdesk.ticket", "read", [tid], ["close_date", "fold"])[0]
    assert row["close_date"] and row["fold"] is True
    assert call(odoo, "helpdesk.ticket", "search", [("stage_id.fold", "=", False)]) == []


def test_oca_flavour() -> None:
    with OdooSandbox(version=16, ticket_flavour="oca") as sb:
        tid = call(sb, "helpdesk.ticket", "create", {"name": "Printer", "description": "<p>jam</p>"})
        f = fault(sb, "helpdesk.ticket", "create", {"name": "No description"})
        assert (f.faultCode, f.faultString) == (2, "The operation cannot be completed: Missing required field: description")
        error = jcall(sb, "helpdesk.ticket", "create", [{"name": "x"}])["error"]
        assert error["data"]["name"] == "odoo.exceptions.ValidationError"
        row = call(sb, "helpdesk.ticket", "read", [tid], ["number", "display_name", "priority", "stage_id", "closed"])[0]
        assert row == {"id": tid, "number": "HT00001", "display_name": "HT00001 - Printer", "priority": "1",
                       "stage_id": [1, "New"], "closed": False}
        [done] = call(sb, "helpdesk.ticket.stage", "search", [("name", "=", "Done")])
        call(sb, "helpdesk.ticket", "write", [tid], {"stage_id": done})
        row = call(sb, "helpdesk.ticket", "read", [tid], ["closed", "closed_date"])[0]
        assert row["closed"] is True and row["closed_date"]
        assert fault(sb, "helpdesk.stage", "search", []).faultString == "Object helpdesk.stage doesn't exist"
        assert [s["name"] for s in call(sb, "helpdesk.ticket.stage", "search_read", [("closed", "=", True)], ["name"])] \
            == ["Done", "Cancelled", "Rejected"]


# --- message_post ---

def _post(sb: OdooSandbox, tid: int, **kwargs: Any) -> Any:
    return call(sb, "helpdesk.ticket", "message_post", [tid], **kwargs)


def _message(sb: OdooSandbox, mid: int) -> dict[str, Any]:
    return call(sb, "mail.message", "read", [mid], ["body", "subtype_id", "message_type", "model", "res_id",
                                                    "author_id", "is_internal", "message_id", "attachment_ids"])[0]


def test_message_post_version_16_stores_body_as_given() -> None:
    with OdooSandbox(version=16) as sb:
        tid = call(sb, "helpdesk.ticket", "create", {"name": "t"})
        mid = _post(sb, tid, body="<p>Hi & bye</p>", message_type="comment", subtype_xmlid="mail.mt_comment")
        assert isinstance(mid, int)
        msg = _message(sb, mid)
        assert msg["body"] == "<p>Hi & bye</p>" and msg["subtype_id"] == [1, "Discussions"]
        f = fault(sb, "helpdesk.ticket", "message_post", [tid], body="x", body_is_html=True)
        assert f.faultCode == 1 and "Invalid field 'body_is_html' on model 'mail.message'" in f.faultString


def test_message_post_version_17_escapes_plain_text() -> None:
    with OdooSandbox(version=17) as sb:
        tid = call(sb, "helpdesk.ticket", "create", {"name": "t"})
        note = _post(sb, tid, body="<p>Hi & 'bye'</p>")
        msg = _message(sb, note)
        assert msg["body"] == "&lt;p&gt;Hi &amp; &#39;bye&#39;&lt;/p&gt;"
        assert msg["subtype_id"] == [2, "Note"] and msg["message_type"] == "notification"
        assert (msg["model"], msg["res_id"], msg["author_id"]) == ("helpdesk.ticket", tid, [3, "Support Bot"])
        assert msg["message_id"].startswith("<") and f"-openerp-{tid}-helpdesk.ticket@" in msg["message_id"]
        html = _post(sb, tid, body="<p>Hi</p>", body_is_html=True, message_id="<given@example.com>")
        assert _message(sb, html)["body"] == "<p>Hi</p>"
        assert _message(sb, html)["message_id"] == "<given@example.com>"
        # Newest first: mail.message's _order is "id desc".
        assert call(sb, "mail.message", "search", [("res_id", "=", tid), ("model", "=", "helpdesk.ticket")]) == [html, note]


def test_message_post_version_19_returns_a_list() -> None:
    with OdooSandbox(version=19) as sb:
        tid = call(sb, "helpdesk.ticket", "create", {"name": "t"})
        result = _post(sb, tid, body="a < b")
        assert isinstance(result, list) and len(result) == 1
        assert _message(sb, result[0])["body"] == "a &lt; b"
        assert jcall(sb, "helpdesk.ticket", "message_post", [[tid]], {"body": "x"})["result"] == [result[0] + 1]


def test_message_post_argument_checks(odoo: OdooSandbox) -> None:
    tid = call(odoo, "helpdesk.ticket", "create", {"name": "t"})
    f = fault(odoo, "helpdesk.ticket", "message_post", [tid], "positional body")
    assert f.faultCode == 1 and "TypeError" in f.faultString
    f = fault(odoo, "helpdesk.ticket", "message_post", [tid], body="x", partner_ids=[(6, 0, [3])])
    assert f.faultCode == 1 and "integer list" in f.faultString
    error = jcall(odoo, "helpdesk.ticket", "message_post", [[tid]], {"body": "x", "model": "res.partner"})["error"]
    assert error["data"]["name"] == "builtins.ValueError"
    f = fault(odoo, "helpdesk.ticket", "message_post", [tid], body="x", subtype="mt_note")
    assert f.faultCode == 1 and "ValueError" in f.faultString
    assert fault(odoo, "helpdesk.ticket", "message_post", [999], body="x").faultCode == 2
    assert fault(odoo, "helpdesk.tag", "message_post", [1], body="x").faultCode == 1


def test_message_post_links_attachments_and_finds_author_by_email(odoo: OdooSandbox) -> None:
    tid = call(odoo, "helpdesk.ticket", "create", {"name": "t"})
    customer = call(odoo, "res.partner", "create", {"name": "Cus", "email": "cus@x.test"})
    att = call(odoo, "ir.attachment", "create", {"name": "log.txt", "datas": "aGVsbG8="})
    mid = _post(odoo, tid, body="see log", email_from="Cus <CUS@x.test>", attachment_ids=[att],
                message_type="comment", subtype_xmlid="mail.mt_comment")
    msg = _message(odoo, mid)
    assert msg["author_id"] == [customer, "Cus"] and msg["attachment_ids"] == [att]
    [row] = call(odoo, "ir.attachment", "read", [att], ["res_model", "res_id", "mimetype", "file_size"])
    assert row == {"id": att, "res_model": "helpdesk.ticket", "res_id": tid, "mimetype": "text/plain", "file_size": 5}
    assert call(odoo, "res.partner", "message_post", [customer], body="hello")


# --- steering ---

def test_fail_next_kinds_and_counts(odoo: OdooSandbox) -> None:
    odoo.fail_next("helpdesk.ticket", "create", "transient", count=2)
    for _ in range(2):
        f = fault(odoo, "helpdesk.ticket", "create", {"name": "t"})
        assert f.faultCode == 1 and "SerializationFailure: could not serialize access due to concurrent update" in f.faultString
    assert odoo.records("helpdesk.ticket") == []
    assert isinstance(call(odoo, "helpdesk.ticket", "create", {"name": "t"}), int)
    odoo.fail_next("helpdesk.ticket", "write", "validation")
    assert fault(odoo, "helpdesk.ticket", "write", [1], {"name": "x"}).faultCode == 2
    odoo.fail_next("helpdesk.ticket", "read", "access")
    assert fault(odoo, "helpdesk.ticket", "read", [1]).faultCode == 4
    odoo.fail_next("helpdesk.ticket", "create", "transient")
    error = jcall(odoo, "helpdesk.ticket", "create", [{"name": "t"}])["error"]
    assert error["data"]["name"] == "psycopg2.errors.SerializationFailure"
    odoo.fail_next("helpdesk.ticket", "create", "validation")
    assert jcall(odoo, "helpdesk.ticket", "create", [{"name": "t"}])["error"]["data"]["name"] == \
        "odoo.exceptions.ValidationError"
    assert odoo.call_count("helpdesk.ticket", "create") == 5
    assert odoo.call_count() == 7
    with pytest.raises(ValueError):
        odoo.fail_next("helpdesk.ticket", "create", "bogus")


def test_set_down_answers_503(odoo: OdooSandbox) -> None:
    odoo.set_down(True)
    response = requests.post(f"{odoo.url}/jsonrpc", json={"jsonrpc": "2.0", "params": {}}, timeout=5)
    assert response.status_code == 503 and "text/html" in response.headers["Content-Type"]
    with pytest.raises(xmlrpc.client.ProtocolError) as info:
        proxy(odoo, "common").version()
    assert info.value.errcode == 503
    assert control(odoo, action="set_down", down=False).json() == {"ok": True}
    assert proxy(odoo, "common").version()["server_serie"] == "17.0"


def test_latency_is_per_request_and_overlaps() -> None:
    with OdooSandbox(latency=0.3) as sb:
        started = time.monotonic()
        proxy(sb, "common").version()
        assert time.monotonic() - started >= 0.3
        threads = [threading.Thread(target=lambda: proxy(sb, "common").version()) for _ in range(4)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert time.monotonic() - started < 0.9
        sb.latency = 0.0
        started = time.monotonic()
        proxy(sb, "common").version()
        assert time.monotonic() - started < 0.2


def test_kill_after_signals_once_the_effect_is_stored(odoo: OdooSandbox) -> None:
    victim = subprocess.Popen(["sleep", "30"])
    try:
        odoo.kill_after("helpdesk.ticket", "create", victim.pid)
        call(odoo, "res.partner", "create", {"name": "not the trigger"})
        assert victim.poll() is None
        tid = call(odoo, "helpdesk.ticket", "create", {"name": "committed"})
        assert victim.wait(timeout=5) == -9
        assert [r["id"] for r in odoo.records("helpdesk.ticket")] == [tid]
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()


def test_control_endpoint(odoo: OdooSandbox) -> None:
    call(odoo, "res.partner", "create", {"name": "Temp"})
    dump = control(odoo, action="dump", model="res.partner").json()
    assert dump["ok"] and [r["name"] for r in dump["records"]] == ["My Company", "OdooBot", "Support Bot", "Temp"]
    assert control(odoo, action="fail_next", model="res.partner", method="search", error="access").json()["ok"]
    assert fault(odoo, "res.partner", "search", []).faultCode == 4
    assert control(odoo, action="set_latency", seconds=0.05).json()["ok"] and odoo.latency == 0.05
    status = control(odoo, action="status").json()
    assert status["db"] == odoo.db and status["version"] == 17
    assert control(odoo, action="call_count", model="res.partner").json()["count"] == 2
    assert control(odoo, action="reset").json() == {"ok": True}
    assert len(odoo.records("res.partner")) == 3 and odoo.latency == 0.0 and odoo.call_count() == 0
    bad = control(odoo, action="explode")
    assert bad.status_code == 400 and bad.json()["ok"] is False


def test_records_helper_filters_with_a_domain(odoo: OdooSandbox) -> None:
    assert [r["id"] for r in odoo.records("res.partner", [("active", "=", False)])] == [2]
    assert [r["id"] for r in odoo.records("res.partner")] == [1, 2, 3]


def test_runs_as_a_process() -> None:
    process = subprocess.Popen([sys.executable, "-m", "bridge.sandbox.odoo", "--port", "0", "--version", "18"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("ready http://127.0.0.1:")
        url = line.split()[1]
        assert xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common").version()["server_serie"] == "18.0"
        process.terminate()
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- search indexes: always the same answer as a scan ---

INDEXED_DOMAINS: list[tuple[str, list[Any]]] = [
    ("res.partner", [("email", "=ilike", "ANN@example.com")]),
    ("res.partner", [("email", "=ilike", "a\\_b@x.test")]),
    ("res.partner", [("email", "=ilike", "a_b@x.test")]),
    ("res.partner", [("email", "=like", "ann@example.com")]),
    ("res.partner", [("email", "=", "ann@example.com")]),
    ("res.partner", [("email", "in", ["ann@example.com", False])]),
    ("res.partner", [("email", "=", False)]),
    ("res.partner", [("parent_id", "in", [False])]),
    ("res.partner", [("parent_id", "=", 4), ("active", "in", [True, False])]),
    ("res.partner", [("active", "=", False), ("name", "=", "Ann")]),
    ("res.partner", ["|", ("name", "=", "Ann"), ("email", "=", "b@x.test")]),
    ("res.partner", [("id", "in", [1, 2, 3.0, 999])]),
    ("res.partner", [("email", "=ilike", "twin@x.test")]),
    ("mail.message", [("message_id", "in", ["<a@x>", "<b@x>", "<nope@x>"])]),
    ("mail.message", [("message_id", "in", ["<a@x>", False])]),
    ("mail.message", [("model", "=", "helpdesk.ticket"), ("res_id", "=", 1),
                      ("message_type", "!=", "user_notification")]),
    ("mail.message", [("res_id", "in", [1, 2.0, 0])]),
    ("helpdesk.ticket", [("partner_id", "=", 4), ("name", "=", "t")]),
    ("helpdesk.ticket", [("partner_id", "=", False)]),
]


def same_as_scan(db: Database) -> None:
    """Every domain above, with and without indexes: same ids in the same order."""
    for model, domain in INDEXED_DOMAINS:
        for order in (None, "id", "name" if model != "mail.message" else "res_id", "create_date"):
            for active_test in (True, False):
                db.indexing = True
                fast = db.search(model, domain, order=order, active_test=active_test)
                db.indexing = False
                slow = db.search(model, domain, order=order, active_test=active_test)
                db.indexing = True
                assert fast == slow, (model, domain, order, active_test)


def test_indexed_search_matches_a_scan_through_changes() -> None:
    db = Database()
    people = [db.create("res.partner", {"name": n, "email": e}) for n, e in (
        ("Ann", "Ann@Example.com"), ("Ann", "ann@example.com"), ("a_b", "a_b@x.test"), ("axb", "axb@x.test"),
        ("Bob", "b@x.test"), ("Nl", "ann@example.com\n"), ("Long s", "ſ@x.test"), ("None", False))]
    child = db.create("res.partner", {"name": "Kid", "parent_id": people[0], "email": "b@x.test"})
    twins = [db.create("res.partner", {"name": "Twin", "email": "twin@x.test"}) for _ in range(2)]
    for n in range(30):  # enough rows for the index to pay, so candidates are taken in id order
        db.create("res.partner", {"name": f"Filler {n}", "email": f"filler{n}@x.test"})
    tickets = [db.create("helpdesk.ticket", {"name": "t", "partner_id": people[0]}),
               db.create("helpdesk.ticket", {"name": "t", "partner_id": False})]
    for n, mid in enumerate(["<a@x>", "<b@x>", "<a@x>"]):
        db.create("mail.message", {"model": "helpdesk.ticket", "res_id": tickets[n % 2], "message_id": mid})
    same_as_scan(db)
    assert ("email", "text") in db._indexes["res.partner"] and ("message_id", "eq") in db._indexes["mail.message"]
    assert db.search("res.partner", [("email", "=ilike", "ANN@example.com")]) == [people[1], people[0], people[5]]

    db.write("res.partner", [people[1]], {"email": "other@x.test", "active": False})
    db.write("res.partner", [child], {"parent_id": people[3]})
    db.write("mail.message", [1], {"message_id": "<b@x>", "res_id": 2})
    db.unlink("res.partner", [people[4]])
    db.unlink("helpdesk.ticket", [tickets[1]])  # its messages go too
    same_as_scan(db)
    assert db.search("res.partner", [("email", "=ilike", "ANN@example.com")]) == [people[0], people[5]]

    with pytest.raises(ValueError):
        with db.transaction():  # changed, deleted, created, then rolled back
            db.write("res.partner", [people[0]], {"email": "gone@x.test", "child_ids": [(2, child, 0)]})
            db.create("res.partner", {"name": "Tmp", "email": "ann@example.com"})
            db.unlink("res.partner", [people[2], twins[0]])
            assert db.search("res.partner", [("email", "=ilike", "gone@x.test")]) == [people[0]]  # indexes synced
            assert db.search("res.partner", [("email", "=ilike", "a\\_b@x.test")]) == []
            db.write("res.partner", [people[0]], {"child_ids": [(9,)]})
    same_as_scan(db)
    assert db.search("res.partner", [("email", "=ilike", "gone@x.test")]) == []
    assert db.search("res.partner", [("email", "=ilike", "a\\_b@x.test")]) == [people[2]]
    assert list(db.data["res.partner"])[-3:] == [twins[0], people[2], child]  # re-inserted last, as before indexes
    # Equal names keep the scan's (table) order, where the re-inserted twin now comes last.
    assert db.search("res.partner", [("email", "=ilike", "twin@x.test")], order="name") == [twins[1], twins[0]]


def test_search_inside_a_running_create_sees_the_new_record() -> None:
    db = Database()
    pid = db.search("res.partner", [("email", "=ilike", "zed@x.test")])  # builds the index first
    assert pid == []
    tid = db.create("helpdesk.ticket", {"name": "t", "partner_name": "Zed", "partner_email": "zed@x.test"})
    partner = db.data["helpdesk.ticket"][tid]["partner_id"]
    assert db.search("res.partner", [("email", "=ilike", "ZED@x.test")]) == [partner]
    again = db.create("helpdesk.ticket", {"name": "u", "partner_name": "Zed", "partner_email": "Zed@X.test"})
    assert db.data["helpdesk.ticket"][again]["partner_id"] == partner


def test_a_record_being_created_is_found_by_searches_its_hooks_make() -> None:
    db = Database()
    assert db.search("res.partner", [("email", "=", "new@x.test")]) == []  # the index exists before the create
    seen: list[list[int]] = []
    after_write = db._after_write

    def hook(model: str, rec: dict[str, Any], vals: dict[str, Any], old: dict[str, Any] | None) -> None:
        if model == "res.partner":
            seen.append(db.search("res.partner", [("email", "=", "new@x.test")]))
        after_write(model, rec, vals, old)
    db._after_write = hook  # type: ignore[method-assign]
    pid = db.create("res.partner", {"name": "New", "email": "new@x.test"})
    db.write("res.partner", [pid], {"email": "changed@x.test"})
    assert seen == [[pid], []]


def test_message_post_threads_on_the_first_message_of_each_record(odoo: OdooSandbox) -> None:
    first, second = (call(odoo, "res.partner", "create", {"name": n, "email": f"{n}@x.test"}) for n in ("p", "q"))
    posts = [(pid, call(odoo, "res.partner", "message_post", [pid], body="x")) for pid in (first, second, first, second)]
    rows = {r["id"]: r["parent_id"] for r in call(odoo, "mail.message", "search_read",
                                                    [("id", "in", [m for _, m in posts])], ["parent_id"], load=False)}
    assert [rows[m] for _, m in posts] == [False, False, posts[0][1], posts[1][1]]
    messages = call(odoo, "res.partner", "read", [first], ["message_ids"])[0]["message_ids"]
    assert messages == [posts[2][1], posts[0][1]]
