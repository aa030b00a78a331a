"""The bridge's HTTP endpoint (stdlib server in a thread): GET /healthz (liveness), /readyz
(readiness), /metrics (Prometheus), and POST /webhook/ticket for Odoo automation rules
announcing a ticket created in Odoo.

The GET endpoints need no token: they show service states and counts, never email content.
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
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        web: WebServer = self.server.web  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._reply(200, {"status": "ok"})
        elif path == "/readyz":
            report = web.readiness()
            self._reply(200 if report["status"] == "ready" else 503, report)
        elif path == "/metrics":
            self._send(200, *web.metrics())
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
    """Serves in a daemon thread; the callables are called in that thread: ``on_ticket`` for each
    webhook, ``readiness`` for /readyz (a JSON report whose ``status`` is "ready" or not) and
    ``metrics`` for /metrics (body and content type)."""

    def __init__(
        self,
        cfg: HttpConfig,
        on_ticket: Callable[[int], None],
        *,
        readiness: Callable[[], dict[str, Any]],
        metrics: Callable[[], tuple[bytes, str]],
    ) -> None:
        self.token = cfg.webhook_token.get_secret_value()
        self.on_ticket = on_ticket
        self.readiness = readiness
        self.metrics = metrics
        self._server = ThreadingHTTPServer((cfg.host, cfg.port), _Handler)
        self._server.daemon_threads = True
        self._server.web = self  # type: ignore[attr-defined]
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("http: listening on %s:%s (/healthz, /readyz, /metrics, /webhook/ticket)",
                 self._server.server_address[0], self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
