"""The bridge's HTTP endpoint (stdlib server in a thread): GET /healthz (liveness), /readyz
(readiness), /metrics (Prometheus), POST /webhook/ticket for Odoo automation rules
announcing a ticket created in Odoo, and POST /slack/actions and /slack/events for Slack (when
its actions come over HTTP; bridge/slack/actions.py checks their signatures).

The GET endpoints need no token: they show service states and counts, never email content.
The webhook token is compared in constant time; it can come as ``X-Bridge-Token`` or as
``?token=`` because Odoo's "Send Webhook Notification" action cannot add headers. Odoo posts
the record as JSON with ``_id`` (and ``_model``); ``id`` and ``ticket_id`` are accepted too.

The endpoint may be reachable by anyone, so it bounds what a client can hold: a connection gets
REQUEST_SECONDS to send its request (however it trickles it), at most MAX_CONNECTIONS are served
at once (one more is answered 503 and closed without a thread), bodies are at most MAX_BODY, and
a webhook the ticket queue cannot take is answered 429.
"""

from __future__ import annotations

import contextlib
import hmac
import io
import json
import logging
import re
import socket
import threading
import time
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from bridge.config import HttpConfig

log = logging.getLogger("bridge.web")

MAX_BODY = 1024 * 1024
MAX_CONNECTIONS = 64
REQUEST_SECONDS = 5.0
MAX_TICKET_ID = 2**31 - 1  # Odoo ids are PostgreSQL integers
_ID_KEYS = ("_id", "id", "ticket_id")
SLACK_PATHS = ("/slack/actions", "/slack/events")  # signed by Slack, checked by the Slack endpoint
_NUMBER = re.compile(r"[0-9]+")  # ASCII digits only: int() would take other scripts' digits too
_ID_TEXT = re.compile(r"[0-9]{1,10}")
_BUSY_BODY = b'{"error": "too many connections"}'
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
         b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


class _Refused(Exception):
    """A webhook call answered with an error status; the message is the JSON error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _content_length(headers: Message) -> int:
    """The declared body size: one non-negative number up to MAX_BODY (a negative one would make
    the read wait for the client to close; several differing ones are a smuggling attempt)."""
    values = {value.strip() for value in headers.get_all("Content-Length") or ["0"]}
    text = values.pop()
    if values or not _NUMBER.fullmatch(text):
        raise _Refused(400, "Content-Length must be one non-negative number")
    if len(text) > len(str(MAX_BODY)) or int(text) > MAX_BODY:
        raise _Refused(413, "body too large")
    return int(text)


def _ticket_id(body: bytes) -> int:
    """The ticket id in a webhook body: a JSON object whose first id key holds an integer (or a
    string of digits) from 1 to MAX_TICKET_ID; ``true`` is not 1."""
    try:
        data = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to parse
        raise _Refused(400, "the body is not JSON") from None
    if not isinstance(data, dict):
        raise _Refused(400, "expected a JSON object")
    key = next((k for k in _ID_KEYS if k in data), None)
    if key is None:
        raise _Refused(400, "expected JSON with _id, id or ticket_id")
    value = data[key]
    if isinstance(value, str) and _ID_TEXT.fullmatch(value):
        value = int(value)
    if type(value) is not int or not 1 <= value <= MAX_TICKET_ID:
        raise _Refused(400, f"{key} must be a ticket id from 1 to {MAX_TICKET_ID}")
    return value


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes until a deadline. The socket's timeout alone bounds each read, so a
    client sending a byte every few seconds would hold its thread forever; this stops it too."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if time.monotonic() >= self._deadline:
            raise TimeoutError("the request was not received in time")
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server_version = "bridge"
    timeout = REQUEST_SECONDS  # the socket's, for each read and write
    server: _Server

    def setup(self) -> None:
        """Bound the whole request, not each read (http.server ends the connection on TimeoutError)."""
        super().setup()
        self.rfile.close()
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, time.monotonic() + REQUEST_SECONDS))

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("http: %s", format % args)

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        web = self.server.web
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._reply(200, {"status": "ok"})
        elif path == "/readyz":
            report = web.readiness()
            self._reply(200 if report["status"] == "ready" else 503, report)
        elif path == "/metrics":
            self._send(200, *web.metrics())
        elif path.startswith("/rate/") and web.on_rating is not None:
            status, body = web.on_rating(path.removeprefix("/rate/"), False)
            self._send(status, body, "text/html; charset=utf-8")
        elif path == "/reports/latest" and web.latest_report is not None:
            self._latest_report(web)
        else:
            self._reply(404, {"error": "not found"})

    def _given_token(self) -> str:
        """The token a caller sent: the X-Bridge-Token header, else ``?token=`` in the URL."""
        return self.headers.get("X-Bridge-Token") or (parse_qs(urlsplit(self.path).query).get("token") or [""])[0]

    def _latest_report(self, web: WebServer) -> None:
        """The digest's full report, for whoever has its link (the token in it, or in X-Bridge-Token)."""
        given = self._given_token()
        expected, page = web.latest_report()
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            log.warning("reports: refused /reports/latest with a wrong or missing token from %s", self.client_address[0])
            self._reply(401, {"error": "unauthorized"})
        elif page is None:
            self._reply(404, {"error": "no report yet"})
        else:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Cache-Control", "private, no-store")
            self.send_header("Referrer-Policy", "no-referrer")  # the token is in the URL
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:")
            self.end_headers()
            self.wfile.write(page)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        web = self.server.web
        url = urlsplit(self.path)
        if url.path.startswith("/rate/") and web.on_rating is not None:  # the customer's confirmation
            try:
                self.rfile.read(_content_length(self.headers))
            except _Refused as exc:
                self._reply(exc.status, {"error": str(exc)})
                return
            status, page = web.on_rating(url.path.removeprefix("/rate/"), True)
            self._send(status, page, "text/html; charset=utf-8")
            return
        if url.path in SLACK_PATHS and web.on_slack is not None:
            try:
                body = self.rfile.read(_content_length(self.headers))
            except _Refused as exc:
                self._reply(exc.status, {"error": str(exc)})
                return
            status, answer = web.on_slack(url.path, body, {k: v for k, v in self.headers.items()})
            self._reply(status, answer)
            return
        if url.path not in ("/webhook/ticket", "/webhook/odoo") or (
                url.path == "/webhook/odoo" and web.on_odoo_change is None):
            self._reply(404, {"error": "not found"})
            return
        given = self._given_token()
        if not hmac.compare_digest(given.encode(), web.token.encode()):
            log.warning("webhook: refused a call with a wrong or missing token from %s", self.client_address[0])
            self._reply(401, {"error": "unauthorized"})
            return
        if url.path == "/webhook/odoo":  # whatever changed, the watcher reads it from Odoo itself
            try:
                self.rfile.read(_content_length(self.headers))
            except _Refused as exc:
                self._reply(exc.status, {"error": str(exc)})
                return
            web.on_odoo_change()
            self._reply(202, {"polling": True})
            return
        try:
            ticket_id = _ticket_id(self.rfile.read(_content_length(self.headers)))
        except _Refused as exc:
            self._reply(exc.status, {"error": str(exc)})
            return
        if not web.on_ticket(ticket_id):
            log.warning("odoo ticket %s: webhook refused: too many tickets waiting", ticket_id)
            self._reply(429, {"error": "too many tickets waiting; try again later"})
            return
        self._reply(202, {"queued": ticket_id})


class _Server(ThreadingHTTPServer):
    """A thread per connection, up to MAX_CONNECTIONS at once. One more is answered 503 and closed
    by the accepting thread itself, so a flood of connections never costs a thread."""

    daemon_threads = True
    block_on_close = False  # stop() does not wait for clients (each is bounded by REQUEST_SECONDS anyway)
    request_queue_size = 128  # the listen backlog: bursts wait in the kernel, not in threads

    def __init__(self, address: tuple[str, int], web: WebServer) -> None:
        self.web = web
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._refusing = False  # to warn once per overload, not once per refused connection
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            if not self._refusing:
                log.warning("http: %d connections open, refusing more until one ends", MAX_CONNECTIONS)
                self._refusing = True
            _answer_busy(request)
            self.shutdown_request(request)
            return
        self._refusing = False
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: its slot is free again
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _answer_busy(sock: socket.socket) -> None:
    """The 503, without ever blocking the accepting thread: whatever does not fit is dropped. What
    the client already sent is read first, so closing does not reset the connection over the answer."""
    sock.setblocking(False)
    with contextlib.suppress(OSError):
        sock.recv(65536)
    with contextlib.suppress(OSError):
        sock.sendall(_BUSY)


class WebServer:
    """Serves in a daemon thread; the callables are called in the connection's thread: ``on_ticket``
    for each webhook (False: not queued, the call is answered 429), ``readiness`` for /readyz (a
    JSON report whose ``status`` is "ready" or not) and ``metrics`` for /metrics (body and content type)."""

    def __init__(
        self,
        cfg: HttpConfig,
        on_ticket: Callable[[int], bool],
        *,
        readiness: Callable[[], dict[str, Any]],
        metrics: Callable[[], tuple[bytes, str]],
        on_slack: Callable[[str, bytes, dict[str, str]], tuple[int, dict[str, Any]]] | None = None,
        on_odoo_change: Callable[[], None] | None = None,
        on_rating: Callable[[str, bool], tuple[int, bytes]] | None = None,
        latest_report: Callable[[], tuple[str, bytes | None]] | None = None,
    ) -> None:
        """``latest_report``: the token of /reports/latest and the page (None before the first digest)."""
        self.token = cfg.webhook_token.get_secret_value()
        self.on_slack = on_slack
        self.on_odoo_change = on_odoo_change
        self.on_rating = on_rating
        self.latest_report = latest_report
        self.on_ticket = on_ticket
        self.readiness = readiness
        self.metrics = metrics
        self._server = _Server((cfg.host, cfg.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("http: listening on %s:%s (/healthz, /readyz, /metrics, /webhook/ticket, /webhook/odoo)",
                 self._server.server_address[0], self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
