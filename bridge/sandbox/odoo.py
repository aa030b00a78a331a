"""A stand-in Odoo (16–19) serving the external API over XML-RPC and JSON-RPC from memory, steerable for tests.

It answers the way real Odoo does (shared/reference/odoo-api.md): same endpoints, fault codes,
JSON-RPC error shape, ORM semantics and version differences, so the bridge's client can be tested
against it and later against other implementations of the same API. Tests and other processes can
make it slow, down, fail the next calls, or kill a process right after a call was committed.

    with OdooSandbox(version=17) as odoo:
        proxy = xmlrpc.client.ServerProxy(odoo.url + "/xmlrpc/2/object")

Run alone: ``python -m bridge.sandbox.odoo --port 8069 --version 17`` prints ``ready http://…``.
"""

from __future__ import annotations

import argparse
import base64
import copy
import inspect
import json
import os
import re
import sys
import threading
import time
import traceback
import xmlrpc.client
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import formataddr, parseaddr
from typing import Any, Callable

from bridge.sandbox.httpserve import BackgroundHTTPServer, KeepAliveHandler, serve_until_signalled
from bridge.sandbox.odoo_domain import compile_domain
from bridge.sandbox.odoo_models import (AccessDenied, AccessError, MissingError, OperationalError, SerializationFailure,
                                        UserError, ValidationError)
from bridge.sandbox.odoo_orm import Database, now_utc

CONTROL_PATH = "/_sandbox/control"
RPC_PATHS = frozenset({"/jsonrpc", "/xmlrpc/2/common", "/xmlrpc/2/object", "/xmlrpc/common", "/xmlrpc/object"})
DOWN_PAGE = (b"<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
             b"<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
             b"</body>\r\n</html>\r\n")
NOT_FOUND = b"<!doctype html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n"
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_UNSET: Any = object()
ERROR_KINDS = ("validation", "transient", "access", "missing", "user", "denied")


def _escape(text: str) -> str:
    """markupsafe.escape, which Odoo 17+ applies to a plain-text message body."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("'", "&#39;"))


class BaseModel:
    """One model as ``call_kw`` sees it: the public methods, with Odoo's signatures so misuse fails alike.

    Record methods take the ids as first argument (``args[0]`` of execute_kw); model methods do not.
    """

    COMMON = frozenset({"search", "search_count", "search_read", "read", "create", "write", "unlink", "exists",
                        "name_search", "fields_get", "check_access_rights", "default_get"})

    def __init__(self, sandbox: OdooSandbox, model: str, context: dict[str, Any]) -> None:
        self._sb, self._db, self._model = sandbox, sandbox._orm, model
        self._active_test = bool(context.get("active_test", True))

    def method(self, name: str) -> Callable[..., Any]:
        """The bound public method, or the AttributeError Odoo raises for an unknown one."""
        spec, version = self._db.spec(self._model), self._db.version
        allowed = set(self.COMMON)
        allowed |= {"message_post"} if spec.mail_thread else set()
        allowed |= {"name_get"} if version <= 17 else {"has_access"} if version >= 18 else set()
        allowed |= {"res.partner": {"find_or_create"}, "res.users": {"context_get"},
                    "ir.model.data": {"check_object_reference"}}.get(self._model, set())
        if name not in allowed:
            raise AttributeError(f"The method '{self._model}.{name}' does not exist")
        return getattr(self, name)

    def _ids_out(self, rid: int) -> int | list[int]:
        """Up to 18 ``@api.returns`` downgrades a record to its id; 19's call_kw sends ``.ids``."""
        return [rid] if self._db.version >= 19 else rid

    def search(self, domain: list[Any], offset: int = 0, limit: int | None = None, order: str | None = None,
               count: Any = _UNSET) -> list[int] | int:
        if count is not _UNSET and self._db.version >= 17:
            raise TypeError("BaseModel.search() got an unexpected keyword argument 'count'")
        ids = self._db.search(self._model, domain, offset, limit, order, self._active_test)
        return len(ids) if count not in (_UNSET, False, None) else ids

    def search_count(self, domain: list[Any], limit: int | None = None) -> int:
        return len(self._db.search(self._model, domain, 0, limit, None, self._active_test))

    def search_read(self, domain: list[Any] | None = None, fields: list[str] | None = None, offset: int = 0,
                    limit: int | None = None, order: str | None = None, **read_kwargs: Any) -> list[dict[str, Any]]:
        ids = self._db.search(self._model, domain, offset, limit, order, self._active_test)
        return self.read(ids, fields, **read_kwargs) if ids else []

    def read(self, ids: Any, fields: list[str] | None = None, load: str | None = "_classic_read") -> list[dict[str, Any]]:
        return self._db.read(self._model, ids, fields, load)

    def create(self, vals_list: dict[str, Any] | list[dict[str, Any]]) -> int | list[int]:
        if isinstance(vals_list, dict):
            return self._db.create(self._model, vals_list)
        if isinstance(vals_list, list):
            return [self._db.create(self._model, vals) for vals in vals_list]
        raise ValueError(f"create() expects a dict or a list of dicts, got {vals_list!r}")

    def write(self, ids: Any, vals: dict[str, Any]) -> bool:
        self._db.write(self._model, ids, vals)
        return True

    def unlink(self, ids: Any) -> bool:
        self._db.unlink(self._model, ids)
        return True

    def exists(self, ids: Any) -> list[int]:
        return [i for i in self._db.as_ids(ids) if self._db.browse(self._model, i) is not None]

    def name_get(self, ids: Any) -> list[list[Any]]:
        return [[rec["id"], self._db.display_name(self._model, rec)] for rec in self._db.existing(self._model, ids)]

    def name_search(self, *args: Any, **kwargs: Any) -> list[list[Any]]:
        # The domain parameter is ``args`` up to 17 and ``domain`` from 18 on.
        second = "args" if self._db.version <= 17 else "domain"
        params = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=d)
                  for n, d in (("name", ""), (second, None), ("operator", "ilike"), ("limit", 100))]
        bound = inspect.Signature(params).bind(*args, **kwargs)
        bound.apply_defaults()
        name, domain, operator, limit = bound.arguments.values()
        full = list(domain or []) + ([("display_name", operator, name)] if name else [])
        ids = self._db.search(self._model, full, 0, limit, None, self._active_test)
        return [[i, self._db.display_name(self._model, self._db.data[self._model][i])] for i in ids]

    def fields_get(self, allfields: list[str] | None = None, attributes: list[str] | None = None) -> dict[str, Any]:
        return self._db.fields_get(self._model, allfields, attributes)

    def default_get(self, fields_list: list[str]) -> dict[str, Any]:
        spec = self._db.spec(self._model)
        return {n: spec.fields[n].default for n in fields_list
                if n in spec.fields and spec.fields[n].default is not None and not callable(spec.fields[n].default)}

    def check_access_rights(self, operation: str, raise_exception: bool = True) -> bool:
        if operation not in ("read", "write", "create", "unlink"):
            raise ValueError("Invalid access mode")
        return True

    def has_access(self, operation: str) -> bool:
        return self.check_access_rights(operation)

    def find_or_create(self, email: str, assert_valid_email: bool = False) -> int | list[int]:
        if assert_valid_email and "@" not in parseaddr(email or "")[1]:
            raise ValueError("A valid email is required for find_or_create to work properly.")
        return self._ids_out(self._db.find_or_create_partner(email))

    def context_get(self) -> dict[str, Any]:
        return {"lang": "en_US", "tz": "UTC", "uid": self._db.uid}

    def check_object_reference(self, module: str, xml_id: str, raise_on_access_error: bool = False) -> list[Any]:
        for rec in self._db.data["ir.model.data"].values():
            if rec["module"] == module and rec["name"] == xml_id:
                return [rec["model"], rec["res_id"]]
        raise ValueError(f"External ID not found in the system: {module}.{xml_id}")

    def message_post(self, ids: Any, *, body: str = "", subject: str | None = None,
                     message_type: str = "notification", email_from: str | None = None, author_id: Any = None,
                     parent_id: Any = False, subtype_xmlid: str | None = None, subtype_id: Any = False,
                     partner_ids: Any = None, attachments: Any = None, attachment_ids: Any = None,
                     body_is_html: Any = _UNSET, **kwargs: Any) -> int | list[int]:
        """mail.thread.message_post, with the version differences clients trip over (reference §7)."""
        db, model = self._db, self._model
        wanted = db.as_ids(ids)
        if len(wanted) != 1:
            raise ValueError(f"Expected singleton: {model}{tuple(wanted)!r}")
        record = db.existing(model, wanted)[0]
        if message_type == "user_notification":
            raise ValueError("Posting a message should be done on a business document. "
                             "Use message_notify to send a notification to an user.")
        if "model" in kwargs or "res_id" in kwargs:
            raise ValueError("message_post does not support model and res_id parameters anymore. "
                             "Please call message_post on record.")
        if "subtype" in kwargs:
            raise ValueError("message_post does not support subtype parameter anymore. "
                             "Please give a valid subtype_id or subtype_xmlid value instead.")
        partner_ids, attachment_ids = list(partner_ids or []), list(attachment_ids or [])
        if any(not isinstance(i, int) or isinstance(i, bool) for i in partner_ids):
            raise ValueError("message_post partner_ids and must be integer list, not commands.")
        if any(not isinstance(i, int) or isinstance(i, bool) for i in attachment_ids):
            raise ValueError("message_post attachment_ids must be integer list, not commands.")
        # Extra keywords naming mail.message fields become message values; the rest go to notification.
        values = {k: v for k, v in kwargs.items() if k in db.specs["mail.message"].fields}
        if body_is_html is not _UNSET and db.version < 17:
            values["body_is_html"] = body_is_html  # 16 has no such parameter; create() refuses it
        user = db.data["res.users"][db.uid]
        if author_id is None:
            if email_from:
                address = parseaddr(email_from)[1]
                found = db.search("res.partner", [("email", "=ilike", address)], limit=1) if address else []
                author_id = found[0] if found else False
            else:
                author_id = user["partner_id"]
        if email_from is None and author_id:
            author = db.existing("res.partner", [author_id])[0]
            email_from = formataddr((author.get("name") or "", author["email"])) if author.get("email") else False
        if not email_from:
            raise UserError("Unable to log message, please configure the sender's email address.")
        if subtype_xmlid:
            subtype_id = db.xmlid_to_res_id(subtype_xmlid)
        if not subtype_id:
            subtype_id = db.xmlid_to_res_id("mail.mt_note")
        body = "" if body is None or body is False else str(body)
        if db.version >= 17 and not (body_is_html not in (_UNSET, False, None) and not user.get("share")):
            body = _escape(body)
        for item in attachments or []:
            content = item[1].encode() if isinstance(item[1], str) else bytes(item[1])
            attachment_ids.append(db.create("ir.attachment", {
                "name": item[0], "datas": base64.b64encode(content).decode("ascii"),
                "res_model": model, "res_id": record["id"]}))
        if attachment_ids:
            db.write("ir.attachment", attachment_ids, {"res_model": model, "res_id": record["id"]})
        values.setdefault("date", now_utc())  # mail.message.date defaults to now
        values.update({
            "author_id": author_id, "email_from": email_from, "model": model, "res_id": record["id"],
            "body": body, "subject": subject or False, "message_type": message_type,
            "parent_id": self._thread_parent(record["id"], parent_id), "subtype_id": subtype_id,
            "partner_ids": [(6, 0, partner_ids)], "attachment_ids": [(6, 0, attachment_ids)],
        })
        return self._ids_out(db.create("mail.message", values))

    def _thread_parent(self, res_id: int, parent_id: Any) -> int | bool:
        """Flat threading (_mail_flat_thread): attach to the thread's first message, or the parent's root."""
        db = self._db
        if not parent_id:
            first = db.search("mail.message", [("model", "=", self._model), ("res_id", "=", res_id),
                                               ("message_type", "!=", "user_notification")], limit=1, order="id asc")
            return first[0] if first else False
        current = db.existing("mail.message", [parent_id])[0]
        seen = {current["id"]}
        while current.get("parent_id") and current["parent_id"] not in seen:
            current = db.data["mail.message"][current["parent_id"]]
            seen.add(current["id"])
        return current["id"]


@dataclass
class _Rule:
    """A pending fail_next or kill_after instruction."""

    model: str
    method: str
    count: int
    error: str = "validation"
    pid: int = 0
    sig: int = 9

    def matches(self, model: str, method: str) -> bool:
        return self.model in (model, "*") and self.method in (method, "*")


class OdooSandbox(BackgroundHTTPServer):
    """The stand-in server: one in-memory database, one lock around it, an HTTP server in a thread."""

    server_attribute, thread_name = "sandbox", "odoo-sandbox"  # handler_class is set below _Handler

    def __init__(self, *, version: int = 17, db: str = "bridge", login: str = "bot@example.com",
                 password: str = "secret", latency: float = 0.0, ticket_flavour: str = "enterprise") -> None:
        if version not in (16, 17, 18, 19):
            raise ValueError(f"version must be 16, 17, 18 or 19, not {version!r}")
        self.version, self.db, self.login, self.password = version, db, login, password
        self.ticket_flavour, self.uid = ticket_flavour, 2
        self.latency = float(latency)
        self._initial_latency = self.latency
        self.url = ""
        self._lock = threading.RLock()
        self._orm = Database(version=version, flavour=ticket_flavour, login=login, uid=self.uid)
        self._passwords = {self.uid: password}  # uid → password of every user who can log in
        self._down = False
        self._failures: list[_Rule] = []
        self._kills: list[_Rule] = []
        self._calls: Counter[tuple[str, str]] = Counter()

    # --- steering ---

    def set_down(self, down: bool) -> None:
        """While down every RPC request gets a proxy's 503 page; the control endpoint still answers."""
        self._down = bool(down)

    def fail_next(self, model: str, method: str, error: str = "validation", count: int = 1) -> None:
        """The next ``count`` calls of model.method ("*" matches any) fail before doing anything."""
        if error not in ERROR_KINDS:
            raise ValueError(f"error must be one of {', '.join(ERROR_KINDS)}, not {error!r}")
        with self._lock:
            self._failures.append(_Rule(model, method, int(count), error=error))

    def kill_after(self, model: str, method: str, pid: int, sig: int = 9, count: int = 1) -> None:
        """After model.method has been performed and stored, signal ``pid`` before answering."""
        with self._lock:
            self._kills.append(_Rule(model, method, int(count), pid=int(pid), sig=int(sig)))

    def add_user(self, login: str, name: str, *, share: bool = False, password: str = "secret") -> int:
        """A user who can log in over the API like the bridge's own, with a partner of the login's
        email: an agent, or (``share``) a portal customer, whose tickets then carry their create_uid.
        Returns the uid; ``reset`` removes the user."""
        with self._lock, self._orm.transaction():
            partner = self._orm.create("res.partner", {"name": name, "email": login})
            uid = self._orm.create("res.users", {"login": login, "name": name, "partner_id": partner, "share": share})
            self._passwords[uid] = password
            return uid

    def reset(self) -> None:
        """Seed data again; pending failures, kills, call counts, down state and latency are cleared."""
        with self._lock:
            self._orm.reset()
            self._passwords = {self.uid: self.password}
            self._failures.clear()
            self._kills.clear()
            self._calls.clear()
            self._down = False
            self.latency = self._initial_latency

    def records(self, model: str, domain: list[Any] | None = None) -> list[dict[str, Any]]:
        """Copies of the stored records (archived included), sorted by id, optionally filtered by a domain."""
        with self._lock:
            if model not in self._orm.specs:
                raise ValueError(f"unknown model {model!r}")
            predicate = compile_domain(self._orm, model, domain)
            return [copy.deepcopy(rec) for _, rec in sorted(self._orm.data[model].items()) if predicate(rec)]

    def call_count(self, model: str | None = None, method: str | None = None) -> int:
        """How many execute_kw calls were received (whatever their outcome), optionally for one model/method."""
        with self._lock:
            return sum(n for (m, meth), n in self._calls.items()
                       if model in (None, m) and method in (None, meth))

    def status(self) -> dict[str, Any]:
        """What another process needs to talk to this sandbox."""
        return {"url": self.url, "db": self.db, "login": self.login, "password": self.password, "uid": self.uid,
                "version": self.version, "ticket_flavour": self.ticket_flavour, "down": self._down,
                "latency": self.latency}

    def control(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One /_sandbox/control action, as a dict in and a dict out."""
        action = payload.get("action")
        if action == "reset":
            self.reset()
        elif action == "set_latency":
            self.latency = float(payload["seconds"])
        elif action == "set_down":
            self.set_down(bool(payload["down"]))
        elif action == "fail_next":
            self.fail_next(payload["model"], payload["method"], payload.get("error", "validation"),
                           int(payload.get("count", 1)))
        elif action == "kill_after":
            self.kill_after(payload["model"], payload["method"], int(payload["pid"]),
                            int(payload.get("signal", payload.get("sig", 9))), int(payload.get("count", 1)))
        elif action == "dump":
            return {"ok": True, "records": self.records(payload["model"], payload.get("domain"))}
        elif action == "call_count":
            return {"ok": True, "count": self.call_count(payload.get("model"), payload.get("method"))}
        elif action == "status":
            return {"ok": True, **self.status()}
        else:
            raise ValueError(f"unknown action {action!r}")
        return {"ok": True}

    # --- the services ---

    def version_info(self) -> dict[str, Any]:
        serie = f"{self.version}.0"
        return {"server_version": serie, "server_version_info": [self.version, 0, 0, "final", 0, ""],
                "server_serie": serie, "protocol_version": 1}

    def dispatch(self, service: str, method: str, args: list[Any]) -> Any:
        """odoo.http.dispatch_rpc: route a call to the common or object service."""
        if service == "common":
            def authenticate(db: str, login: str, password: str, user_agent_env: Any) -> int | bool:
                with self._lock:
                    users = self._orm.data["res.users"].values() if db == self.db else ()
                    return next((user["id"] for user in users if user["login"] == login and user.get("active")
                                 and self._passwords.get(user["id"]) == password), False)

            def login(db: str, login: str, password: str) -> int | bool:
                return authenticate(db, login, password, {})
            handlers: dict[str, Callable[..., Any]] = {"version": self.version_info, "authenticate": authenticate,
                                                       "login": login, "about": lambda *a: "See http://openerp.com"}
            if method not in handlers:
                raise Exception(f"Method not found: {method}")
            return handlers[method](*args)
        if service == "object":
            if method == "execute_kw":
                return self._execute_kw(*args)
            if method == "execute":
                db, uid, password, model, name, *rest = args
                return self._execute_kw(db, uid, password, model, name, rest, {})
            raise NameError(f"Method not available {method}")
        if service == "db" and method == "list":
            return [self.db]
        raise Exception(f"Unknown service or method: {service}.{method}")

    def _execute_kw(self, db: str, uid: int, password: str, model: str, method: str,
                    args: list[Any], kwargs: dict[str, Any] | None = None) -> Any:
        with self._lock:
            self._calls[(str(model), str(method))] += 1
        if db != self.db:
            raise OperationalError('connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: '
                                   f'FATAL:  database "{db}" does not exist')
        if isinstance(uid, bool) or self._passwords.get(uid) != password:
            raise AccessDenied()
        if not isinstance(method, str) or method.startswith("_"):
            raise AccessError(f"Private methods (such as '{model}.{method}') cannot be called remotely.")
        kwargs = dict(kwargs or {})
        context = kwargs.pop("context", None) or {}
        with self._lock:
            spec = self._orm.spec(model)
            failure = self._take(self._failures, model, method)
            if failure is not None:
                raise self._injected(failure.error, model, spec.description)
            bound = BaseModel(self, model, context).method(method)
            self._orm.uid = uid  # the caller's: create_uid, write_uid, the author of a message
            try:
                with self._orm.transaction():
                    result = bound(*list(args or []), **kwargs)
            finally:
                self._orm.uid = self.uid
            kill = self._take(self._kills, model, method)
        if kill is not None:
            os.kill(kill.pid, kill.sig)  # the effect is stored; the caller never sees the answer
        return result

    @staticmethod
    def _take(rules: list[_Rule], model: str, method: str) -> _Rule | None:
        for rule in rules:
            if rule.matches(model, method):
                rule.count -= 1
                if rule.count <= 0:
                    rules.remove(rule)
                return rule
        return None

    @staticmethod
    def _injected(kind: str, model: str, description: str) -> Exception:
        if kind == "transient":
            return SerializationFailure("could not serialize access due to concurrent update\n")
        if kind == "access":
            return AccessError(f"You are not allowed to modify '{description}' ({model}) records.\n\n"
                               "This operation is allowed for the following groups:\n\t- Helpdesk/Manager")
        if kind == "missing":
            return MissingError(f"Record does not exist or has been deleted.\n(Record: {model}(0,), User: 2)")
        if kind == "user":
            return UserError(f"The sandbox refused this {model} operation (fail_next).")
        if kind == "denied":
            return AccessDenied()
        return ValidationError(f"The operation cannot be completed: invalid values for {model} (fail_next).")

    # --- the wire formats ---

    def handle_xmlrpc(self, path: str, body: bytes) -> bytes:
        """One XML-RPC request; errors become faults coded as /xmlrpc/2 (or the legacy /xmlrpc) does."""
        try:
            params, method = xmlrpc.client.loads(body, use_builtin_types=True)
            result = self.dispatch(path.rsplit("/", 1)[1], method or "", _from_wire(list(params)))
            return xmlrpc.client.dumps((_clean(result),), methodresponse=True, allow_none=False).encode()
        except Exception as exc:  # every error is answered as a fault, like Odoo's handler
            fault = _fault(exc, legacy=not path.startswith("/xmlrpc/2/"))
            return xmlrpc.client.dumps(fault, methodresponse=True, allow_none=False).encode()

    def handle_jsonrpc(self, body: bytes) -> dict[str, Any]:
        """One JSON-RPC 2.0 request; errors come back in Odoo's ``error`` object, still HTTP 200."""
        request_id = None
        try:
            request = json.loads(body or b"{}")
            request_id = request.get("id")
            params = request.get("params") or {}
            result = self.dispatch(params.get("service"), params.get("method"), list(params.get("args") or []))
        except Exception as exc:
            return {"jsonrpc": "2.0", "id": request_id, "error": _json_error(exc)}
        response: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
        if result is not None or self.version >= 18:  # 16/17 leave "result" out when it is None
            response["result"] = result
        return response


def _from_wire(value: Any) -> Any:
    """XML-RPC binaries and datetimes as the ORM takes them from JSON: base64 text and UTC strings."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: _from_wire(v) for k, v in value.items()}
    return value


def _clean(value: Any) -> Any:
    """Strips the control characters XML cannot carry, as Odoo's marshaller does."""
    if isinstance(value, str):
        return _CONTROL_CHARS.sub("", value)
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def _fault(exc: Exception, legacy: bool) -> xmlrpc.client.Fault:
    """Odoo's xmlrpc_handle_exception_int (or _string for the legacy endpoints)."""
    if legacy:
        for cls, name in ((MissingError, "MissingError"), (AccessError, "AccessError")):
            if isinstance(exc, cls):
                return xmlrpc.client.Fault(f"warning -- {name}\n\n{exc}", "")  # type: ignore[arg-type]
        if isinstance(exc, AccessDenied):
            return xmlrpc.client.Fault("AccessDenied", str(exc))  # type: ignore[arg-type]
        if isinstance(exc, UserError):
            return xmlrpc.client.Fault(f"warning -- UserError\n\n{exc}", "")  # type: ignore[arg-type]
        return xmlrpc.client.Fault(_clean(str(exc)), _clean(_traceback(exc)))  # type: ignore[arg-type]
    if isinstance(exc, AccessError):
        return xmlrpc.client.Fault(4, _clean(str(exc)))
    if isinstance(exc, AccessDenied):
        return xmlrpc.client.Fault(3, _clean(str(exc)))
    if isinstance(exc, UserError):
        return xmlrpc.client.Fault(2, _clean(str(exc)))
    return xmlrpc.client.Fault(1, _clean(_traceback(exc)))


def _json_error(exc: Exception) -> dict[str, Any]:
    """odoo.http serialize_exception inside the JSON-RPC error envelope."""
    cls = type(exc)
    arguments = [a if isinstance(a, (str, int, float, bool)) or a is None else str(a) for a in exc.args]
    return {"code": 200, "message": "Odoo Server Error",
            "data": {"name": f"{cls.__module__}.{cls.__qualname__}", "message": str(exc), "arguments": arguments,
                     "context": {}, "debug": _traceback(exc)}}


class _Handler(KeepAliveHandler):
    """Routes HTTP requests to the sandbox; latency is slept here so concurrent requests overlap."""

    server_version = "Werkzeug/3.0.1"
    sys_version = "Python/3.11"

    def _reply(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        sandbox: OdooSandbox = self.server.sandbox  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        if path == CONTROL_PATH:
            try:
                status, answer = 200, sandbox.control(json.loads(body or b"{}"))
            except (KeyError, ValueError, TypeError, UserError) as exc:
                status, answer = 400, {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self._reply(status, "application/json", json.dumps(answer).encode())
            return
        if sandbox._down:
            self._reply(503, "text/html", DOWN_PAGE)
            return
        if path not in RPC_PATHS:
            self._reply(404, "text/html; charset=utf-8", NOT_FOUND)
            return
        if sandbox.latency > 0:
            time.sleep(sandbox.latency)
        if path == "/jsonrpc":
            self._reply(200, "application/json", json.dumps(sandbox.handle_jsonrpc(body)).encode())
        else:
            self._reply(200, "text/xml; charset=utf-8", sandbox.handle_xmlrpc(path, body))

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        sandbox: OdooSandbox = self.server.sandbox  # type: ignore[attr-defined]
        if sandbox._down:
            self._reply(503, "text/html", DOWN_PAGE)
        elif self.path.split("?", 1)[0] in RPC_PATHS:
            self._reply(405, "text/html; charset=utf-8", b"<h1>Method Not Allowed</h1>")
        else:
            self._reply(404, "text/html; charset=utf-8", NOT_FOUND)


OdooSandbox.handler_class = _Handler


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT, after printing ``ready <url>`` for the parent process."""
    parser = argparse.ArgumentParser(prog="python -m bridge.sandbox.odoo", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8069)
    parser.add_argument("--version", type=int, default=17, choices=(16, 17, 18, 19))
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--flavour", default="enterprise", choices=("enterprise", "oca"))
    parser.add_argument("--db", default="bridge")
    parser.add_argument("--login", default="bot@example.com")
    parser.add_argument("--password", default="secret")
    opts = parser.parse_args(argv)
    sandbox = OdooSandbox(version=opts.version, db=opts.db, login=opts.login, password=opts.password,
                          latency=opts.latency, ticket_flavour=opts.flavour)
    return serve_until_signalled(sandbox, opts.host, opts.port)


if __name__ == "__main__":
    sys.exit(main())
