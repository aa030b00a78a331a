"""A stand-in HR directory over HTTP/JSON, seeded from directory.yaml, that can be made slow, down or failing.

    with HrSandbox() as hr:
        requests.get(hr.url + "/employees/alice@customer.example", headers={"Authorization": "Bearer hr-token"})

It also holds ``JsonStandIn``, the machinery the LMS stand-in shares: records found by email or
alias, bearer-token auth, latency, outages, scripted failures and a log of every call.

Run alone: ``python -m bridge.sandbox.hr --port 8071`` prints ``ready http://…``.
"""

from __future__ import annotations

import abc

import argparse
import copy
import json
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

from bridge.sandbox.httpserve import BackgroundHTTPServer, KeepAliveHandler, serve_until_signalled

SEED_FILE = Path(__file__).with_name("directory.yaml")
DOWN_PAGE = (b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
             b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")
JSON = "application/json; charset=utf-8"

def load_seed(path: str | Path = SEED_FILE) -> dict[str, list[dict[str, Any]]]:
    """The seed directory: ``employees`` for the HR stand-in, ``accounts`` for the LMS stand-in."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return {"employees": list(data.get("employees") or []), "accounts": list(data.get("accounts") or [])}


class JsonStandIn(BackgroundHTTPServer, abc.ABC):
    """A JSON service on loopback; subclasses answer in ``route`` while this class plays the network's tricks.

    Every request is checked in this order: down (503 page, at once), latency, bearer token (401),
    scripted failure, then ``route``. State is guarded by one lock: tests steer from their thread.
    """

    server_attribute = "stand_in"  # handler_class is set below _Handler
    seed_key = ""  # which list of directory.yaml seeds this service

    def __init__(self, records: list[dict[str, Any]] | None, *, token: str, latency: float) -> None:
        """`records` None means the seed file; each record needs an "email" and may list "aliases"."""
        self.token = token
        self.latency = float(latency)
        self.url = ""
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}  # casefolded address on record → record
        self._addresses: dict[str, str] = {}  # any casefolded address or alias → key of _records
        self._down = False
        self._failures: deque[tuple[int, bytes | None]] = deque()
        self._calls: list[dict[str, Any]] = []
        for record in load_seed()[self.seed_key] if records is None else records:
            self._put(record["email"], record)

    # --- steering ---

    def set_down(self, down: bool) -> None:
        """While down every request gets a proxy's 503 page, without latency and without being served."""
        with self._lock:
            self._down = bool(down)

    def fail_next(self, status: int = 500, count: int = 1, body: str | bytes | None = None) -> None:
        """The next `count` authorised requests get `status` and `body` (default a JSON error) and do nothing.

        ``fail_next(200, body="not json")`` is a broken upstream that still claims success.
        """
        payload = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._failures.extend([(int(status), payload)] * count)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every request so far as {method, path (decoded), time, status}; a snapshot."""
        with self._lock:
            return list(self._calls)

    # --- records ---

    def _put(self, email: str, fields: dict[str, Any]) -> None:
        """Create or update (shallow merge) the record found under `email`."""
        fields = copy.deepcopy(fields)
        with self._lock:
            key = self._addresses.get(email.casefold(), email.casefold())
            record = self._records.setdefault(key, {"email": email})
            record.update(fields)
            for address in [email, record["email"], *record.get("aliases", ())]:
                self._addresses[address.casefold()] = key

    def _find(self, email: str) -> dict[str, Any] | None:
        """The stored record (callers hold the lock while they change it)."""
        key = self._addresses.get(email.casefold())
        return self._records.get(key) if key is not None else None

    def _public(self, email: str) -> dict[str, Any] | None:
        """What a GET answers: a copy of the record without its aliases."""
        with self._lock:
            record = self._find(email)
            return None if record is None else {k: copy.deepcopy(v) for k, v in record.items() if k != "aliases"}

    # --- serving ---

    @abc.abstractmethod
    def route(self, method: str, parts: list[str], headers: dict[str, str]) -> tuple[int, Any]:
        """Answer one authorised request: `parts` are the decoded path segments; returns (status, JSON value)."""

    def _answer(self, method: str, parts: list[str], headers: dict[str, str]) -> tuple[int, str, bytes]:
        with self._lock:
            down = self._down
        if down:
            return 503, "text/html", DOWN_PAGE
        if self.latency > 0:
            time.sleep(self.latency)  # on the request's own thread, so concurrent requests overlap
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, JSON, b'{"error": "unauthorized"}'
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
        if failure is not None:
            status, body = failure
            return status, JSON, body if body is not None else json.dumps({"error": f"injected {status}"}).encode()
        status, answer = self.route(method, parts, headers)
        return status, JSON, json.dumps(answer, ensure_ascii=False).encode()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        arrived = time.time()
        handler.rfile.read(int(handler.headers.get("Content-Length") or 0))  # bodies are not used
        parts = [unquote(part) for part in handler.path.split("?", 1)[0].split("/")[1:]]
        headers = {name.lower(): value for name, value in handler.headers.items()}
        status, content_type, payload = self._answer(handler.command, parts, headers)
        with self._lock:
            self._calls.append({"method": handler.command, "path": "/" + "/".join(parts), "time": arrived,
                                "status": status})
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        if status == 401:
            handler.send_header("WWW-Authenticate", "Bearer")
        handler.end_headers()
        handler.wfile.write(payload)


class _Handler(KeepAliveHandler):
    """Hands every request to the stand-in."""

    def _serve(self) -> None:
        self.server.stand_in._serve(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


JsonStandIn.handler_class = _Handler


class HrSandbox(JsonStandIn):
    """GET /employees/{email} → {email, name, employment_status, department} or 404.

    With ``list_envelope`` set (e.g. "data"), it answers like the many HR APIs that never 404:
    200 with ``{"data": [record]}``, or ``{"data": []}`` for nobody.
    """

    seed_key = "employees"

    def __init__(self, employees: list[dict[str, Any]] | None = None, *, token: str = "hr-token",
                 latency: float = 0.0, list_envelope: str = "") -> None:
        super().__init__(employees, token=token, latency=latency)
        self.list_envelope = list_envelope  # plain attribute: tests may switch it at any time

    def set_employee(self, email: str, /, **fields: Any) -> None:
        """Add or change an employee; any JSON value goes, so nested shapes (``data={...}``) can be served."""
        self._put(email, fields)

    def route(self, method: str, parts: list[str], headers: dict[str, str]) -> tuple[int, Any]:
        if len(parts) != 2 or parts[0] != "employees":
            return 404, {"error": "not found"}
        if method != "GET":
            return 405, {"error": "method not allowed"}
        employee = self._public(parts[1])
        envelope = self.list_envelope
        if envelope:
            return 200, {envelope: [employee] if employee is not None else []}
        return (200, employee) if employee is not None else (404, {"error": "no such employee"})


def serve(kind: type[JsonStandIn], argv: list[str] | None, prog: str) -> int:
    """Run one stand-in until SIGTERM or SIGINT, after printing ``ready <url>`` for the parent process."""
    parser = argparse.ArgumentParser(prog=prog, description=kind.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--token", help="the bearer token clients must send (default: the class's)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--seed", type=Path, default=SEED_FILE, help="YAML directory file")
    opts = parser.parse_args(argv)
    extra = {"token": opts.token} if opts.token else {}
    stand_in = kind(load_seed(opts.seed)[kind.seed_key], latency=opts.latency, **extra)  # type: ignore[call-arg]
    return serve_until_signalled(stand_in, opts.host, opts.port)


def main(argv: list[str] | None = None) -> int:
    return serve(HrSandbox, argv, "python -m bridge.sandbox.hr")


if __name__ == "__main__":
    sys.exit(main())
