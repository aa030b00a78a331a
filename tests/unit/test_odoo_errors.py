"""Odoo fault and HTTP translation into the bridge's error tree, from hand-made payloads (no server)."""

from __future__ import annotations

import json
import threading
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from bridge.config import OdooConfig
from bridge.errors import (
    AccessDenied,
    ConfigurationError,
    RejectedByService,
    ServiceDown,
    TransientError,
)
from bridge.odoo.rpc import (
    JsonRpcTransport,
    OdooRPC,
    XmlRpcTransport,
    as_id,
    json_fault,
    status_error,
    xml_fault,
)

PASSWORD = "hunter2-very-secret"
WHERE = "helpdesk.ticket.create"


def _kind(error: Exception) -> type:
    """The class of the bridge's tree an error belongs to (private subclasses map to their public parent)."""
    return next(cls for cls in type(error).__mro__ if cls.__module__ == "bridge.errors")


def _json_error(name: str, message: str, code: int = 200) -> dict:
    return {
        "code": code,
        "message": "Odoo Server Error",
        "data": {"name": name, "message": message, "arguments": [message], "context": {}, "debug": "Traceback…"},
    }


def _traceback(last_line: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/odoo/odoo/service/model.py", line 133, in retrying\n'
        "    result = func()\n"
        f"{last_line}\n"
    )


@pytest.mark.parametrize(
    ("name", "message", "code", "expected"),
    [
        ("odoo.exceptions.AccessDenied", "Access Denied", 200, AccessDenied),
        ("odoo.exceptions.AccessError", "You are not allowed to modify 'Ticket'", 200, AccessDenied),
        ("odoo.http.SessionExpiredException", "Session expired", 100, AccessDenied),
        ("odoo.exceptions.UserError", "Please set a team", 200, RejectedByService),
        ("odoo.exceptions.ValidationError", "The field 'Title' is required", 200, RejectedByService),
        (
            "odoo.exceptions.MissingError",
            "Record does not exist or has been deleted.\n(Record: res.partner(999,), User: 2)",
            200,
            RejectedByService,
        ),
        ("odoo.exceptions.LockError", "Cannot lock the record", 200, TransientError),
        (
            "psycopg2.errors.SerializationFailure",
            "could not serialize access due to concurrent update",
            200,
            TransientError,
        ),
        ("psycopg2.errors.DeadlockDetected", "deadlock detected", 200, TransientError),
        ("odoo.exceptions.UserError", "Object helpdesk.ticket doesn't exist", 200, ConfigurationError),
        ("builtins.ValueError", "Invalid field 'body_is_html' on model 'mail.message'", 200, RejectedByService),
        ("builtins.TypeError", "message_post() takes 1 positional argument", 200, RejectedByService),
        ("werkzeug.exceptions.NotFound", "404: Not Found", 404, ConfigurationError),
    ],
)
def test_json_faults(name: str, message: str, code: int, expected: type) -> None:
    error = json_fault(_json_error(name, message, code), WHERE)
    assert _kind(error) is expected
    assert error.service == "odoo"
    assert WHERE in str(error)
    assert message.splitlines()[0] in str(error)
    assert "\n" not in str(error)


def test_json_fault_without_data_uses_the_top_message() -> None:
    error = json_fault({"code": 200, "message": "Odoo Server Error"}, WHERE)
    assert isinstance(error, RejectedByService)
    assert "Odoo Server Error" in str(error)


def test_transient_beats_user_error_and_missing_model() -> None:
    # LockError subclasses UserError in 18/19: the lock wins, the email must not be quarantined.
    error = json_fault(_json_error("odoo.exceptions.LockError", "Object x doesn't exist: record is locked"), WHERE)
    assert _kind(error) is TransientError


@pytest.mark.parametrize(
    ("code", "text", "expected"),
    [
        (3, "Access Denied", AccessDenied),
        (4, "You are not allowed to access 'Ticket' (helpdesk.ticket) records.", AccessDenied),
        (2, "The operation cannot be completed: missing required field", RejectedByService),
        (2, "Record does not exist or has been deleted.\n(Record: helpdesk.ticket(9,), User: 2)", RejectedByService),
        (2, "Object helpdesk.ticket doesn't exist", ConfigurationError),
        (1, _traceback("ValueError: Invalid field 'foo' on model 'helpdesk.ticket'"), RejectedByService),
        (
            1,
            _traceback("psycopg2.errors.SerializationFailure: could not serialize access due to concurrent update"),
            TransientError,
        ),
        (1, _traceback('psycopg2.OperationalError: database "nope" does not exist'), ConfigurationError),
        (1, _traceback("AttributeError: The method 'res.partner.frobnicate' does not exist"),
         ConfigurationError),
        (1, "plain message without traceback", RejectedByService),
    ],
)
def test_xml_faults(code: int, text: str, expected: type) -> None:
    error = xml_fault(xmlrpc.client.Fault(code, text), WHERE)
    assert _kind(error) is expected
    assert error.service == "odoo"
    assert str(error).startswith(f"odoo: {WHERE}: ")
    assert "Traceback" not in str(error)
    assert "\n" not in str(error)


def test_xml_traceback_keeps_the_exception_message() -> None:
    error = xml_fault(xmlrpc.client.Fault(1, _traceback("ValueError: bad partner_ids")), WHERE)
    assert str(error) == f"odoo: {WHERE}: bad partner_ids"


def test_access_denied_and_access_error_are_both_access_denied_but_only_one_retries_login() -> None:
    """Only a refused uid/password is worth a fresh login; a missing right is not."""
    denied = xml_fault(xmlrpc.client.Fault(3, "Access Denied"), WHERE)
    forbidden = xml_fault(xmlrpc.client.Fault(4, "no rights"), WHERE)
    assert isinstance(denied, AccessDenied) and isinstance(forbidden, AccessDenied)
    assert type(denied) is not type(forbidden)


def test_user_text_in_a_business_refusal_does_not_make_it_transient() -> None:
    error = json_fault(_json_error("odoo.exceptions.ValidationError", "Title 'deadlock in prod' is too long"), WHERE)
    assert _kind(error) is RejectedByService


def test_long_messages_are_cut() -> None:
    error = json_fault(_json_error("odoo.exceptions.UserError", "x" * 5000), WHERE)
    assert len(str(error)) < 400


@pytest.mark.parametrize(
    ("status", "expected", "needle"),
    [
        (503, TransientError, "Odoo unavailable"),
        (502, TransientError, "502"),
        (504, TransientError, "504"),
        (500, TransientError, "500"),
        (429, TransientError, "429"),
        (404, ConfigurationError, "RPC endpoints disabled"),
        (401, ConfigurationError, "401"),
    ],
)
def test_http_status(status: int, expected: type, needle: str) -> None:
    error = status_error(status, WHERE, "http://odoo.test/jsonrpc")
    assert _kind(error) is expected
    assert needle in str(error)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(42, 42), ([42], 42)],
)
def test_as_id_accepts_both_shapes(value: Any, expected: int) -> None:
    assert as_id(value) == expected


@pytest.mark.parametrize("value", [False, True, None, [], [1, 2], "42", {"id": 1}])
def test_as_id_rejects_the_rest(value: Any) -> None:
    with pytest.raises(RejectedByService):
        as_id(value)


# --------------------------------------------------------------------------- transports, offline


class _Canned(BaseAdapter):
    """A requests adapter answering from a function: the transports' wire handling without a server."""

    def __init__(self, answer: Any) -> None:
        super().__init__()
        self.answer = answer
        self.requests: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.requests.append(request)
        if isinstance(self.answer, Exception):
            raise self.answer
        status, body = self.answer(request) if callable(self.answer) else self.answer
        response = requests.Response()
        response.status_code = status
        response._content = body if isinstance(body, bytes) else body.encode()
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


def _session(answer: Any) -> tuple[requests.Session, _Canned]:
    session = requests.Session()
    adapter = _Canned(answer)
    session.mount("http://", adapter)
    return session, adapter


def _transports(answer: Any) -> list[Any]:
    return [
        JsonRpcTransport("http://odoo.test/", _session(answer)[0], 5),
        XmlRpcTransport("http://odoo.test/", _session(answer)[0], 5),
    ]


def _call(transport: Any) -> Any:
    return transport.call("object", "execute_kw", "db", 2, PASSWORD, "helpdesk.ticket", "create", [{}], {})


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (requests.ConnectionError("refused"), ServiceDown),
        (requests.ConnectTimeout("slow connect"), ServiceDown),
        (requests.ReadTimeout("slow answer"), TransientError),
        (requests.exceptions.ChunkedEncodingError("cut"), TransientError),
    ],
)
def test_network_errors(raised: Exception, expected: type) -> None:
    for transport in _transports(raised):
        with pytest.raises(expected) as info:
            _call(transport)
        assert _kind(info.value) is expected
        assert info.value.__cause__ is raised
        assert "helpdesk.ticket.create" in str(info.value)
        assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)


@pytest.mark.parametrize("body", ["<html>proxy error</html>", "", "{not json"])
def test_unreadable_answers_are_transient(body: str) -> None:
    for transport in _transports((200, body)):
        with pytest.raises(TransientError):
            _call(transport)


def test_password_in_url_stays_out_of_messages() -> None:
    session, _ = _session((404, "nope"))
    transport = JsonRpcTransport("http://bot:pw-in-url@odoo.test", session, 5)
    with pytest.raises(ConfigurationError) as info:
        transport.call("common", "version")
    assert "pw-in-url" not in str(info.value)
    assert "odoo.test" in str(info.value)


def test_jsonrpc_envelope_and_missing_result() -> None:
    session, adapter = _session((200, json.dumps({"jsonrpc": "2.0", "id": 1})))
    transport = JsonRpcTransport("http://odoo.test/", session, 5)
    assert transport.call("common", "version") is None  # 16/17 drop "result" when it is None
    sent = json.loads(adapter.requests[0].body)
    assert adapter.requests[0].url == "http://odoo.test/jsonrpc"
    assert sent["params"] == {"service": "common", "method": "version", "args": []}


def test_jsonrpc_error_envelope() -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "error": _json_error("odoo.exceptions.ValidationError", "bad")})
    with pytest.raises(RejectedByService, match="helpdesk.ticket.create: bad"):
        _call(JsonRpcTransport("http://odoo.test", _session((200, body))[0], 5))


def test_xmlrpc_round_trip_and_fault() -> None:
    session, adapter = _session((200, xmlrpc.client.dumps(([7],), methodresponse=True)))
    transport = XmlRpcTransport("http://odoo.test", session, 5)
    assert _call(transport) == [7]
    assert adapter.requests[0].url == "http://odoo.test/xmlrpc/2/object"
    fault = xmlrpc.client.dumps(xmlrpc.client.Fault(2, "Need a title"), methodresponse=True)
    with pytest.raises(RejectedByService, match="Need a title"):
        _call(XmlRpcTransport("http://odoo.test", _session((200, fault))[0], 5))


def test_xmlrpc_refuses_none_before_sending() -> None:
    session, adapter = _session((200, ""))
    transport = XmlRpcTransport("http://odoo.test", session, 5)
    with pytest.raises(ValueError, match="helpdesk.ticket.create") as info:
        transport.call("object", "execute_kw", "db", 2, PASSWORD, "helpdesk.ticket", "create", [{"x": None}], {})
    assert PASSWORD not in str(info.value)
    assert adapter.requests == []


def test_expired_session_logs_in_again_once_then_gives_up() -> None:
    """JSON-RPC code 100 ("Odoo Session Expired") is the fault the stand-in cannot produce."""
    script = [
        ("common", "authenticate", {"result": 2}),
        ("object", "execute_kw", {"error": {"code": 100, "message": "Odoo Session Expired", "data": {}}}),
        ("common", "authenticate", {"result": 2}),
        ("object", "execute_kw", {"result": [1, 2]}),
        ("object", "execute_kw", {"error": {"code": 100, "message": "Odoo Session Expired", "data": {}}}),
        ("common", "authenticate", {"result": 2}),
        ("object", "execute_kw", {"error": {"code": 100, "message": "Odoo Session Expired", "data": {}}}),
    ]
    seen: list[tuple[str, str]] = []

    def answer(request: requests.PreparedRequest) -> tuple[int, str]:
        params = json.loads(request.body or b"{}")["params"]
        seen.append((params["service"], params["method"]))
        service, method, reply = script[len(seen) - 1]
        assert (params["service"], params["method"]) == (service, method)
        return 200, json.dumps({"jsonrpc": "2.0", "id": 1, **reply})

    session, _ = _session(answer)
    cfg = OdooConfig(url="http://odoo.test", db="db", username="bot", password=PASSWORD)
    rpc = OdooRPC(cfg, session=session)
    assert rpc.execute_kw("res.partner", "search", [[]]) == [1, 2]
    with pytest.raises(AccessDenied, match="res.partner.search: Odoo Session Expired") as info:
        rpc.execute_kw("res.partner", "search", [[]])
    assert PASSWORD not in str(info.value)
    assert len(seen) == len(script)


def test_a_redirect_is_reported_not_followed() -> None:
    """A proxy redirecting http→https (or a wrong path) must not turn the POST into a GET elsewhere."""
    seen: list[str] = []

    class Redirecting(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            seen.append(self.path)
            self.send_response(301)
            self.send_header("Location", "/web/login")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = OdooConfig(url=f"http://127.0.0.1:{server.server_address[1]}", db="db", username="bot",
                         password=PASSWORD)
        with pytest.raises(ConfigurationError, match="HTTP 301"):
            OdooRPC(cfg).version()
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/jsonrpc"]
