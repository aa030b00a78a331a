"""Blocking client for Odoo's external API over one pooled requests.Session, errors translated into the tree."""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
import xmlrpc.client
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from xml.parsers.expat import ExpatError

import requests

from bridge.config import OdooConfig
from bridge.errors import (
    AccessDenied,
    BridgeError,
    ConfigurationError,
    RejectedByService,
    ServiceDown,
    TransientError,
)
from bridge.http_session import pooled_session
from bridge.logs import display_url

log = logging.getLogger(__name__)

SERVICE = "odoo"
_MAX_MESSAGE = 300

# Faults that say "try again later": Odoo's LockError and PostgreSQL concurrency failures.
_TRANSIENT_NAMES = frozenset(
    {"LockError", "SerializationFailure", "TransactionRollbackError", "DeadlockDetected", "LockNotAvailable"}
)
_TRANSIENT_TEXT = ("could not serialize access", "concurrent update", "deadlock", "could not obtain lock")
# Faults that say "the bridge is pointed at the wrong thing": an operator must act.
_CONFIG_TEXT = re.compile(
    r"Object \S+ doesn't exist"  # unknown model (module not installed, wrong profile)
    r"|The method '[^']+' does not exist"  # unknown method on that model
    r'|database "[^"]*" does not exist',  # wrong db name
)
# `/xmlrpc/2` fault codes (odoo/addons/base/controllers/rpc.py, addons/rpc in 19).
_XML_CODES = {
    2: "odoo.exceptions.UserError",
    3: "odoo.exceptions.AccessDenied",
    4: "odoo.exceptions.AccessError",
}
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*): (.*)$", re.MULTILINE)


class _LoginRefused(AccessDenied):
    """Odoo refused the uid/password pair (AccessDenied, expired session): a fresh login may cure it."""


# --------------------------------------------------------------------------- error translation


def classify_fault(name: str, message: str, where: str, *, code: int = 200) -> BridgeError:
    """Map one Odoo fault, named by its exception class (``odoo.exceptions.AccessError``), to the tree.

    Both transports feed this one function so the same Odoo refusal is the same bridge error
    whichever wire it crossed. ``code`` is the JSON-RPC error code (100 = session expired,
    404 = not found); XML-RPC callers leave it at 200. Over XML-RPC a LockError arrives as
    code 2 like any UserError and is therefore a rejection; JSON-RPC names it and it is transient.
    """
    short = name.rsplit(".", 1)[-1]
    text = f"{where}: {_first_line(message)}"
    lowered = message.lower()
    if code == 100 or short in ("AccessDenied", "SessionExpiredException"):
        return _LoginRefused(text, service=SERVICE)
    if short == "AccessError":
        return AccessDenied(text, service=SERVICE)
    # Text markers only for database-level faults: a business refusal may quote user text.
    database_level = not name.startswith("odoo.exceptions.")
    if short in _TRANSIENT_NAMES or (database_level and any(marker in lowered for marker in _TRANSIENT_TEXT)):
        return TransientError(text, service=SERVICE)
    if code == 404 or _CONFIG_TEXT.search(message):
        return ConfigurationError(text, service=SERVICE)
    return RejectedByService(text, service=SERVICE)


def json_fault(error: Mapping[str, Any], where: str) -> BridgeError:
    """Translate a JSON-RPC ``error`` object (``{code, message, data: {name, message}}``)."""
    data = error.get("data") if isinstance(error.get("data"), Mapping) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else 200
    message = str(data.get("message") or error.get("message") or "Odoo error")
    return classify_fault(str(data.get("name") or ""), message, where, code=code)


def xml_fault(fault: xmlrpc.client.Fault, where: str) -> BridgeError:
    """Translate a ``/xmlrpc/2`` fault: codes 2–4 name the Odoo exception, code 1 carries a traceback.

    (The legacy ``/xmlrpc/<svc>`` endpoints with string codes are never called.)
    """
    code, text = fault.faultCode, str(fault.faultString)
    if code in _XML_CODES:
        return classify_fault(_XML_CODES[code], text, where)
    if text.startswith("Traceback"):  # code 1: the exception line ("module.Class: message") is last
        found = _EXCEPTION_LINE.findall(text)
        name, message = found[-1] if found else ("", text.strip().splitlines()[-1])
        return classify_fault(name, message or name, where)
    return classify_fault("", text, where)


def status_error(status: int, where: str, url: str) -> BridgeError:
    """Translate a non-200 HTTP answer; Odoo itself answers RPC faults with 200."""
    if status == 503:
        return TransientError(f"{where}: Odoo unavailable (HTTP 503)", service=SERVICE)
    if status >= 500 or status in (408, 425, 429):
        return TransientError(f"{where}: HTTP {status}", service=SERVICE)
    if status == 404:
        return ConfigurationError(
            f"{where}: HTTP 404 at {url}: wrong url or Odoo's RPC endpoints disabled", service=SERVICE
        )
    return ConfigurationError(f"{where}: HTTP {status} at {url}", service=SERVICE)


def _first_line(message: str) -> str:
    line = message.strip().split("\n", 1)[0].strip()
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def _label(service: str, method: str, args: tuple[Any, ...]) -> str:
    """What a call is about, for messages: ``model.method`` for object calls. Never the arguments."""
    if service == "object" and len(args) >= 5 and isinstance(args[3], str) and isinstance(args[4], str):
        return f"{args[3]}.{args[4]}"
    return f"{service}.{method}"


def as_id(value: Any) -> int:
    """Accept Odoo's ``42`` (≤18) and ``[42]`` (19 turns recordsets into ``.ids``) as one id."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RejectedByService(f"expected a record id, got {str(value)[:80]!r}", service=SERVICE)


def many2one(value: Any) -> tuple[int | None, str]:
    """A many2one as read: ``[id, name]`` → (id, name); a bare id → (id, ""); False → (None, "")."""
    if isinstance(value, (list, tuple)) and value:
        return as_id(value[0]), str(value[1]) if len(value) > 1 and value[1] else ""
    return (as_id(value), "") if value else (None, "")


def odoo_time(stamp: Any) -> datetime | None:
    """An Odoo UTC stamp ("2026-12-04 09:30:00", maybe with microseconds) as an aware datetime;
    None for an empty one. fromisoformat is ten times faster than strptime."""
    if not stamp:
        return None
    return datetime.fromisoformat(str(stamp)[:19]).replace(tzinfo=UTC)


# --------------------------------------------------------------------------- transports


class Transport(Protocol):
    """One wire protocol to Odoo: call ``service.method(*args)`` and return the result."""

    def call(self, service: str, method: str, *args: Any) -> Any: ...


class _HttpTransport:
    """Shared POST with network and HTTP-status translation.

    Each URL's request is prepared once (session headers, auth from the URL) and copied per call
    with only the body changed, then handed straight to the Session's transport adapter. The
    Session's own per-call work (preparing, cookie jars, hooks, redirects, proxy resolution) is
    about half of requests' CPU per call, the bridge makes several calls per email, and Odoo's
    RPC endpoints need none of it: they set no cookies we use and never redirect (a POST turned
    into a GET elsewhere would only hide a wrong URL).
    """

    def __init__(self, url: str, session: requests.Session, timeout: float) -> None:
        self._url = url.rstrip("/")
        self._session = session
        self._timeout = timeout
        self._prepared: dict[str, requests.PreparedRequest] = {}  # by URL; a transport has one content type
        self._send_options = {"timeout": timeout, "verify": session.verify, "cert": session.cert,
                              "proxies": session.proxies}

    def _request(self, url: str, content_type: str, body: bytes) -> requests.PreparedRequest:
        template = self._prepared.get(url)
        if template is None:
            template = self._session.prepare_request(
                requests.Request("POST", url, headers={"Content-Type": content_type})
            )
            self._prepared[url] = template
        request = template.copy()
        request.prepare_body(body, None)
        return request

    def _post(self, url: str, where: str, body: bytes, content_type: str) -> requests.Response:
        started = time.monotonic()
        try:
            response = self._session.get_adapter(url).send(
                self._request(url, content_type, body), **self._send_options
            )
        except requests.ConnectionError as exc:  # includes ConnectTimeout
            raise ServiceDown(f"{where}: cannot reach {display_url(url)}", service=SERVICE) from exc
        except requests.Timeout as exc:
            raise TransientError(f"{where}: no answer within {self._timeout:g}s", service=SERVICE) from exc
        except requests.RequestException as exc:
            raise TransientError(f"{where}: {type(exc).__name__}", service=SERVICE) from exc
        log.debug("%s: HTTP %s in %.3fs", where, response.status_code, time.monotonic() - started)
        if response.status_code != 200:
            raise status_error(response.status_code, where, display_url(url))
        return response


class JsonRpcTransport(_HttpTransport):
    """``POST {url}/jsonrpc`` with the JSON-RPC 2.0 envelope Odoo 16–19 understand."""

    def __init__(self, url: str, session: requests.Session, timeout: float) -> None:
        super().__init__(url, session, timeout)
        self._ids = itertools.count(1)

    def call(self, service: str, method: str, *args: Any) -> Any:
        where = _label(service, method, args)
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": list(args)},
            "id": next(self._ids),
        }
        body = json.dumps(payload, allow_nan=False).encode()
        response = self._post(f"{self._url}/jsonrpc", where, body, "application/json")
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise TransientError(f"{where}: the answer is not JSON", service=SERVICE) from exc
        if not isinstance(body, dict):
            raise TransientError(f"{where}: the answer is not a JSON-RPC envelope", service=SERVICE)
        if "error" in body:
            error = body["error"] if isinstance(body["error"], Mapping) else {"message": str(body["error"])}
            raise json_fault(error, where)
        return body.get("result")  # 16/17 leave "result" out when the value is None


class XmlRpcTransport(_HttpTransport):
    """``POST {url}/xmlrpc/2/{service}``, marshalled by xmlrpc.client but sent through the shared Session.

    ServerProxy is not used: it has its own connection handling, no pool and no per-call timeout.
    """

    def call(self, service: str, method: str, *args: Any) -> Any:
        where = _label(service, method, args)
        try:
            body = xmlrpc.client.dumps(args, methodname=method, encoding="utf-8", allow_none=False)
        except TypeError as exc:  # None or an unmarshallable type: a bug in our code, not Odoo's
            raise ValueError(f"{where}: cannot send this over XML-RPC ({exc})") from None
        response = self._post(
            f"{self._url}/xmlrpc/2/{service}", where, body.encode("utf-8"), "text/xml; charset=utf-8"
        )
        try:
            params, _ = xmlrpc.client.loads(response.content, use_builtin_types=True)
        except xmlrpc.client.Fault as fault:
            raise xml_fault(fault, where) from fault
        except (ExpatError, xmlrpc.client.ResponseError, ValueError) as exc:
            raise TransientError(f"{where}: the answer is not XML-RPC", service=SERVICE) from exc
        return params[0] if params else None


def make_transport(cfg: OdooConfig, session: requests.Session) -> Transport:
    """The one place a transport is chosen by name (JSON-2 for Odoo 19+ plugs in here later)."""
    kinds: dict[str, type[JsonRpcTransport] | type[XmlRpcTransport]] = {
        "jsonrpc": JsonRpcTransport,
        "xmlrpc": XmlRpcTransport,
    }
    if cfg.transport not in kinds:
        raise ConfigurationError(f"odoo.transport: unknown transport {cfg.transport!r}", service=SERVICE)
    return kinds[cfg.transport](cfg.url, session, cfg.timeout_seconds)


# --------------------------------------------------------------------------- client


class OdooRPC:
    """The authenticated client: lazy login, one re-login after a refused session, thread-safe."""

    def __init__(self, cfg: OdooConfig, session: requests.Session | None = None) -> None:
        self._cfg = cfg
        self._own_session = session is None
        self._session = session if session is not None else pooled_session(cfg.url, cfg.pool_size)
        self._transport = make_transport(cfg, self._session)
        self._lock = threading.Lock()
        self._uid: int | None = None
        self._login_round = 0  # bumped on every login, so concurrent callers re-login only once
        self._version: dict | None = None

    def close(self) -> None:
        """Close the Session if this client created it."""
        if self._own_session:
            self._session.close()

    def version(self) -> dict:
        """``common.version``: needs no login."""
        result = self._transport.call("common", "version")
        if not isinstance(result, dict):
            raise TransientError("common.version: unexpected answer", service=SERVICE)
        return result

    @property
    def server_major(self) -> int:
        """Odoo's major version (16, 17, …), fetched once; ``saas~17`` style majors are read as 17."""
        with self._lock:
            if self._version is None:
                self._version = self.version()
            major = str((self._version.get("server_version_info") or ["0"])[0])
        digits = re.search(r"\d+", major)
        return int(digits.group()) if digits else 0

    @property
    def uid(self) -> int:
        """The uid we act as (what records we create carry as ``create_uid``); logs in first if needed."""
        with self._lock:
            return self._uid if self._uid is not None else self._login_locked()

    def authenticate(self) -> int:
        """Log in and remember the uid; Odoo answers False (not a fault) to bad credentials."""
        with self._lock:
            return self._login_locked()

    def execute_kw(self, model: str, method: str, args: list, kwargs: dict | None = None) -> Any:
        """``model.method(*args, **kwargs)``; logs in first if needed, and once more if the login is refused."""
        with self._lock:
            uid = self._uid if self._uid is not None else self._login_locked()
            login_round = self._login_round
        try:
            return self._object_call(uid, model, method, args, kwargs)
        except _LoginRefused:
            log.info("%s.%s: Odoo refused the session, logging in again", model, method)
            with self._lock:
                uid = self._login_locked() if self._login_round == login_round else self._uid
            assert uid is not None
            return self._object_call(uid, model, method, args, kwargs)

    def _object_call(self, uid: int, model: str, method: str, args: list, kwargs: dict | None) -> Any:
        password = self._cfg.password.get_secret_value()
        return self._transport.call(
            "object", "execute_kw", self._cfg.db, uid, password, model, method, args, kwargs or {}
        )

    def _login_locked(self) -> int:
        cfg = self._cfg
        try:
            uid = self._transport.call(
                "common", "authenticate", cfg.db, cfg.username, cfg.password.get_secret_value(), {}
            )
        except RejectedByService as exc:  # e.g. unknown database: nothing an email could change
            raise ConfigurationError(exc.args[0], service=SERVICE) from exc
        if isinstance(uid, bool) or not isinstance(uid, int):  # False: bad credentials
            raise AccessDenied(f"login refused for {cfg.username} on {cfg.db}", service=SERVICE)
        self._uid = uid
        self._login_round += 1
        return uid
