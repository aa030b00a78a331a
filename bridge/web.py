"""The bridge's HTTP endpoint (stdlib server in a thread): GET /healthz, and POST /webhook/ticket
for Odoo automation rules announcing a ticket created in Odoo.

The webhook token is compared in constant time; it can come as ``X-Bridge-Token`` or as
``?token=`` because Odoo's "Send Webhook Notification" action cannot add headers. Odoo posts
the record as JSON with ``_id`` (and ``_model``); ``id`` and ``ticket_id`` are accepted too.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from bridge.config import HttpConfig

log = logging.getLogger("bridge.web")

MAX_BODY = 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    server_version = "bridge"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("http: %s", format % args)

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if urlsplit(self.path).path == "/healthz":
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        web: WebServer = self.server.web  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        if url.path != "/webhook/ticket":
            self._reply(404, {"error": "not found"})
            return
        given = self.headers.get("X-Bridge-Token") or (parse_qs(url.query).get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), web.token.encode()):
            log.warning("webhook: refused a call with a wrong or missing token from %s", self.client_address[0])
            self._reply(401, {"error": "unauthorized"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._reply(413, {"error": "body too large"})
            return
        try:
            data = json.loads(self.rfile.read(length) or b"{}")
            ticket_id = int(next(data[k] for k in ("_id", "id", "ticket_id") if k in data))
        except (ValueError, TypeError, StopIteration, json.JSONDecodeError):
            self._reply(400, {"error": "expected JSON with _id, id or ticket_id"})
            return
        web.on_ticket(ticket_id)
        self._reply(202, {"queued": ticket_id})


class WebServer:
    """Serves in a daemon thread; ``on_ticket`` is called (in that thread) for each webhook."""

    def __init__(self, cfg: HttpConfig, on_ticket: Callable[[int], None]) -> None:
        self.token = cfg.webhook_token.get_secret_value()
        self.on_ticket = on_ticket
        self._server = ThreadingHTTPServer((cfg.host, cfg.port), _Handler)
        self._server.daemon_threads = True
        self._server.web = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("http: listening on %s:%s (/healthz, /webhook/ticket)", self._server.server_address[0], self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
