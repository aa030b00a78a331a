"""The HTTP endpoint under abuse, over real sockets: idle and trickling connections are cut off,
connections beyond the cap are refused without a thread, bodies and ids are checked, and a full
ticket queue is answered 429."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.automation.odoo_tickets import OdooTicketFeed
from bridge.config import HttpConfig
from bridge.web import MAX_BODY, MAX_CONNECTIONS, REQUEST_SECONDS, WebServer
from tests.integration.harness import wait_until

pytestmark = pytest.mark.integration

TOKEN = "webhook-token-0123456789"


class Tickets:
    """The webhook's ``on_ticket``: takes every id, and records it."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self, ticket_id: int) -> bool:
        self.ids.append(ticket_id)
        return True


def serve(on_ticket: Any) -> WebServer:
    server = WebServer(HttpConfig(port=0, webhook_token=TOKEN), on_ticket, readiness=lambda: {"status": "ready"},
                       metrics=lambda: (b"", "text/plain"))
    server.start()
    return server


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[WebServer, Tickets]]:
    """One endpoint for the module (stopping one takes half a second)."""
    tickets = Tickets()
    server = serve(tickets)
    yield server, tickets
    server.stop()


@pytest.fixture
def tickets(served: tuple[WebServer, Tickets]) -> Tickets:
    """The module's endpoint's ``on_ticket``, emptied."""
    served[1].ids.clear()
    return served[1]


@pytest.fixture
def web(served: tuple[WebServer, Tickets], tickets: Tickets) -> WebServer:
    return served[0]


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset ends it too)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def ended(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (its answer, if any, is read and dropped)."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def webhook(port: int, body: bytes, *, length: str | None = None) -> tuple[int, dict]:
    """POST the body with the token, raw (``length`` overrides Content-Length); (status, JSON answer)."""
    head = (f"POST /webhook/ticket HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Bridge-Token: {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) if length is None else length}\r\n\r\n")
    with connect(port) as sock:
        sock.sendall(head.encode() + body)
        raw = answer(sock)
    assert raw.startswith(b"HTTP/1."), f"no answer, the connection was dropped: {raw!r}"
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def status(port: int, path: str = "/healthz") -> int:
    with connect(port) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        return int(answer(sock).split()[1])


def test_idle_connections_are_closed_and_never_pile_up_threads(web: WebServer) -> None:
    before = threading.active_count()
    socks = [connect(web.port) for _ in range(300)]
    try:
        wait_until(lambda: sum(ended(s) for s in socks) >= 300 - MAX_CONNECTIONS,
                   what="the connections beyond the cap refused")
        assert threading.active_count() - before <= MAX_CONNECTIONS
        wait_until(lambda: all(ended(s) for s in socks), timeout=REQUEST_SECONDS + 5,
                   what="the idle connections closed by the server")
    finally:
        for sock in socks:
            sock.close()
    assert status(web.port) == 200


def test_a_connection_beyond_the_cap_gets_a_quick_503(web: WebServer) -> None:
    held = [connect(web.port) for _ in range(MAX_CONNECTIONS)]  # accepted in order: each holds a slot
    try:
        with connect(web.port) as extra:
            started = time.monotonic()
            raw = answer(extra)
        assert raw.startswith(b"HTTP/1.0 503") and raw.endswith(b'{"error": "too many connections"}')
        assert time.monotonic() - started < 1.0
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: status(web.port) == 200, what="served again once the held connections closed")


def test_a_trickled_request_is_cut_off_at_the_deadline(web: WebServer) -> None:
    """A byte every 0.2 s never trips a per-read timeout; the request's deadline still ends it."""
    with connect(web.port) as sock:
        sock.sendall(f"POST /webhook/ticket HTTP/1.1\r\nX-Bridge-Token: {TOKEN}\r\nContent-Length: 999\r\n\r\n".encode())
        started = time.monotonic()
        while time.monotonic() - started < REQUEST_SECONDS + 5:
            try:
                sock.sendall(b" ")
            except OSError:
                break
            time.sleep(0.2)  # the slow client's pace, not a wait for an outcome
            if ended(sock):
                break
            sock.setblocking(True)
        assert time.monotonic() - started < REQUEST_SECONDS + 2, "the trickling request was never cut off"


@pytest.mark.parametrize("length, code", [("-1", 400), ("abc", 400), ("1e3", 400), ("", 400), ("12, 13", 400),
                                          (str(MAX_BODY + 1), 413), ("9" * 4000, 413)])
def test_content_length_must_be_a_number_up_to_the_limit(web: WebServer, tickets: Tickets, length: str,
                                                         code: int) -> None:
    got, error = webhook(web.port, b"", length=length)
    assert (got, set(error)) == (code, {"error"})
    assert tickets.ids == []


@pytest.mark.parametrize("body", [
    b"{not json", b"\xff\xfe{", b"[1, 2]", b'"text"', b"7", b"null", b"{}", b'{"_model": "helpdesk.ticket"}',
    b"[" * 100_000 + b"]" * 100_000, b'{"a": ' * 100_000 + b"1" + b"}" * 100_000,
], ids=["invalid", "not-utf8", "array", "string", "number", "null", "no-id", "model-only", "deep-array",
        "deep-object"])
def test_a_bad_body_is_answered_400_with_a_json_error(web: WebServer, tickets: Tickets, body: bytes) -> None:
    got, error = webhook(web.port, body)
    assert got == 400 and isinstance(error.get("error"), str)
    assert tickets.ids == []


@pytest.mark.parametrize("value", [True, False, 0, -5, 1.5, 1.0, 2**31, 10**4000, "1" * 4000, "12a", " 12", "-3",
                                   "", None, [7], {"id": 7}],
                         ids=["true", "false", "zero", "negative", "float", "integral-float", "2**31", "4001-digits",
                              "4000-digit-string", "12a", "space-12", "minus-3", "empty", "null", "list", "object"])
def test_only_positive_integer_ids_are_queued(web: WebServer, tickets: Tickets, value: Any) -> None:
    got, error = webhook(web.port, json.dumps({"_id": value}).encode())
    assert got == 400 and "_id" in error["error"]
    assert tickets.ids == []


@pytest.mark.parametrize("payload, queued", [({"_id": 12}, 12), ({"_id": "12"}, 12), ({"id": 7}, 7),
                                             ({"ticket_id": 2**31 - 1}, 2**31 - 1)])
def test_valid_ids_are_queued(web: WebServer, tickets: Tickets, payload: dict, queued: int) -> None:
    assert webhook(web.port, json.dumps(payload).encode()) == (202, {"queued": queued})
    assert tickets.ids == [queued]


def test_a_full_ticket_queue_is_answered_429() -> None:
    """The feed's queue is bounded and says so to the HTTP thread at once (nothing drains it here,
    so the feed needs no context or runner)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    feed = OdooTicketFeed(None, None, queue_size=2)  # type: ignore[arg-type]
    feed.bind(loop)
    server = serve(feed.submit_threadsafe)
    try:
        assert webhook(server.port, b'{"_id": 1}') == (202, {"queued": 1})
        assert webhook(server.port, b'{"_id": 2}') == (202, {"queued": 2})
        got, error = webhook(server.port, b'{"_id": 3}')
        assert got == 429 and "error" in error
        assert feed.queue.qsize() == 2
    finally:
        server.stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
