"""The sandbox's in-memory ORM: Odoo's exception classes, model schemas, seed data and record operations.

The schemas follow the reference (shared/reference/odoo-api.md §6): the Enterprise and the OCA
``helpdesk.ticket`` share a model name but not their fields or companion models, so the flavour
picks which family is registered; asking the other flavour's models gives "Object X doesn't exist",
as it would on a real database without that module.
"""

from __future__ import annotations

import base64
import binascii
import copy
import mimetypes
import random
import re
import time
from collections.abc import Callable, Iterator, Set
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import formataddr, parseaddr
from typing import Any

from bridge.sandbox.odoo_domain import (OTHER_KEY, X2MANY, candidates, compile_domain, eq_key, is_unset,
                                        mentions_field, text_key)

# --- exceptions, named as Odoo's so faults and JSON-RPC ``data.name`` read like the real thing ---

class UserError(Exception):
    """odoo.exceptions.UserError: a business refusal (XML-RPC fault code 2)."""

    __module__ = "odoo.exceptions"


class ValidationError(UserError):
    """odoo.exceptions.ValidationError: a constraint or required field failed (code 2)."""

    __module__ = "odoo.exceptions"


class MissingError(UserError):
    """odoo.exceptions.MissingError: the record does not exist or was deleted (code 2)."""

    __module__ = "odoo.exceptions"


class AccessError(UserError):
    """odoo.exceptions.AccessError: authenticated but not allowed (code 4)."""

    __module__ = "odoo.exceptions"


class AccessDenied(UserError):
    """odoo.exceptions.AccessDenied: bad credentials (code 3)."""

    __module__ = "odoo.exceptions"

    def __init__(self, message: str = "Access Denied") -> None:
        super().__init__(message)


class SerializationFailure(Exception):
    """psycopg2.errors.SerializationFailure: what a concurrent-update conflict surfaces as (code 1)."""

    __module__ = "psycopg2.errors"


class OperationalError(Exception):
    """psycopg2.OperationalError: what an unknown database name surfaces as (code 1)."""

    __module__ = "psycopg2"


# --- schemas ---

@dataclass(frozen=True)
class Field:
    """One field of a model; ``computed`` fields are derived on read and never stored."""

    type: str
    string: str = ""
    comodel: str | None = None
    required: bool = False
    default: Any = None  # a value, or a callable taking the Database
    selection: tuple[tuple[str, str], ...] = ()
    inverse: str | None = None  # one2many: the comodel's many2one pointing back
    computed: bool = False
    readonly: bool = False

    @property
    def stored(self) -> bool:
        """Whether the value lives in the record dict (one2many and computed ones do not)."""
        return not self.computed and self.type != "one2many"


@dataclass
class ModelSpec:
    """A model's schema and the class attributes Odoo would give it."""

    name: str
    description: str
    fields: dict[str, Field]
    order: str = "id"
    rec_name: str = "name"
    parent_name: str | None = None
    mail_thread: bool = False


MAGIC = ("id", "display_name", "create_date", "write_date", "create_uid", "write_uid")


def _f(type_: str, string: str, **kw: Any) -> Field:
    return Field(type_, string, **kw)


def char(string: str, **kw: Any) -> Field:
    return _f("char", string, **kw)


def html(string: str, **kw: Any) -> Field:
    return _f("html", string, **kw)


def text(string: str, **kw: Any) -> Field:
    return _f("text", string, **kw)


def integer(string: str, **kw: Any) -> Field:
    return _f("integer", string, **kw)


def boolean(string: str, **kw: Any) -> Field:
    return _f("boolean", string, **kw)


def dt(string: str, **kw: Any) -> Field:
    return _f("datetime", string, **kw)


def sel(string: str, options: tuple[tuple[str, str], ...], **kw: Any) -> Field:
    return _f("selection", string, selection=options, **kw)


def m2o(comodel: str, string: str, **kw: Any) -> Field:
    return _f("many2one", string, comodel=comodel, **kw)


def m2m(comodel: str, string: str, **kw: Any) -> Field:
    return _f("many2many", string, comodel=comodel, **kw)


def o2m(comodel: str, inverse: str, string: str) -> Field:
    return _f("one2many", string, comodel=comodel, inverse=inverse)


def computed(type_: str, string: str, comodel: str | None = None) -> Field:
    return Field(type_, string, comodel=comodel, computed=True, readonly=True)


ACTIVE = boolean("Active", default=True)
PRIORITY_ENTERPRISE = (("0", "Low priority"), ("1", "Medium priority"), ("2", "High priority"), ("3", "Urgent"))
PRIORITY_OCA = (("0", "Low"), ("1", "Medium"), ("2", "High"), ("3", "Very High"))
KANBAN = (("normal", "Grey"), ("done", "Green"), ("blocked", "Red"))
TASK_STATES = (("01_in_progress", "In Progress"), ("02_changes_requested", "Changes Requested"),
               ("03_approved", "Approved"), ("04_waiting_normal", "Waiting"),
               ("1_done", "Done"), ("1_canceled", "Canceled"))
MESSAGE_TYPES = (("email", "Incoming Email"), ("comment", "Comment"), ("email_outgoing", "Outgoing Email"),
                 ("notification", "System notification"), ("auto_comment", "Automated Targeted Notification"),
                 ("user_notification", "User Specific Notification"))


def _mail_thread(fields: dict[str, Field]) -> dict[str, Field]:
    return {**fields, "message_ids": computed("one2many", "Messages", "mail.message")}


def _enterprise_helpdesk() -> list[ModelSpec]:
    return [
        ModelSpec("helpdesk.team", "Helpdesk Team", {
            "name": char("Helpdesk Team", required=True), "sequence": integer("Sequence", default=10),
            "active": ACTIVE, "stage_ids": m2m("helpdesk.stage", "Stages"),
            "member_ids": m2m("res.users", "Team Members"),
        }, order="sequence,name", mail_thread=True),
        ModelSpec("helpdesk.stage", "Helpdesk Stage", {
            "name": char("Stage Name", required=True), "sequence": integer("Sequence", default=1),
            "fold": boolean("Folded in Kanban"), "active": ACTIVE, "description": text("Requirements"),
            "team_ids": m2m("helpdesk.team", "Helpdesk Teams"),
        }, order="sequence, id"),
        ModelSpec("helpdesk.tag", "Helpdesk Tags", {
            "name": char("Tag Name", required=True), "color": integer("Color"),
        }, order="name"),
        ModelSpec("helpdesk.ticket", "Helpdesk Ticket", _mail_thread({
            "name": char("Subject", required=True), "description": html("Description"),
            "active": ACTIVE, "ticket_ref": char("Ticket IDs Sequence", readonly=True),
            "team_id": m2o("helpdesk.team", "Helpdesk Team"), "user_id": m2o("res.users", "Assigned to"),
            "partner_id": m2o("res.partner", "Customer"), "partner_name": char("Customer Name"),
            "partner_email": char("Customer Email"), "partner_phone": char("Customer Phone"),
            "email_cc": char("Email cc"), "stage_id": m2o("helpdesk.stage", "Stage"),
            "tag_ids": m2m("helpdesk.tag", "Tags"),
            "priority": sel("Priority", PRIORITY_ENTERPRISE, default="0"),
            "kanban_state": sel("Status", KANBAN, default="normal"),
            "fold": computed("boolean", "Folded in Kanban"),
            "close_date": dt("Close date", readonly=True), "sla_deadline": dt("SLA Deadline", readonly=True),
            "date_last_stage_update": dt("Last Stage Update", readonly=True),
        }), order="priority desc, id desc", mail_thread=True),
    ]


def _oca_helpdesk() -> list[ModelSpec]:
    return [
        ModelSpec("helpdesk.ticket.team", "Helpdesk Ticket Team", {
            "name": char("Name", required=True), "active": ACTIVE, "user_ids": m2m("res.users", "Members"),
        }, mail_thread=True),
        ModelSpec("helpdesk.ticket.stage", "Helpdesk Ticket Stage", {
            "name": char("Stage Name", required=True), "description": html("Description"),
            "sequence": integer("Sequence", default=1), "active": ACTIVE,
            "unattended": boolean("Unattended"), "closed": boolean("Closed"), "fold": boolean("Folded in Kanban"),
            "team_ids": m2m("helpdesk.ticket.team", "Helpdesk Teams"),
        }, order="sequence, id"),
        ModelSpec("helpdesk.ticket.tag", "Helpdesk Ticket Tag", {
            "name": char("Name", required=True), "color": integer("Color Index"), "active": ACTIVE,
        }),
        ModelSpec("helpdesk.ticket.category", "Helpdesk Ticket Category", {
            "name": char("Name", required=True), "active": ACTIVE,
        }),
        ModelSpec("helpdesk.ticket.channel", "Helpdesk Ticket Channel", {
            "name": char("Name", required=True), "active": ACTIVE,
        }),
        ModelSpec("helpdesk.ticket", "Helpdesk Ticket", _mail_thread({
            "number": char("Ticket number", default="/", readonly=True),
            "name": char("Title", required=True), "description": html("Description", required=True),
            "user_id": m2o("res.users", "Assigned user"), "partner_id": m2o("res.partner", "Contact"),
            "partner_name": char("Partner Name"), "partner_email": char("Email"),
            "stage_id": m2o("helpdesk.ticket.stage", "Stage"), "tag_ids": m2m("helpdesk.ticket.tag", "Tags"),
            "category_id": m2o("helpdesk.ticket.category", "Category"),
            "team_id": m2o("helpdesk.ticket.team", "Team"), "channel_id": m2o("helpdesk.ticket.channel", "Channel"),
            "priority": sel("Priority", PRIORITY_OCA, default="1"),
            "kanban_state": sel("Kanban State", KANBAN, default="normal"),
            "sequence": integer("Sequence", default=10), "active": ACTIVE,
            "closed": computed("boolean", "Closed"), "unattended": computed("boolean", "Unattended"),
            "closed_date": dt("Closed Date"), "assigned_date": dt("Assigned Date"),
            "last_stage_update": dt("Last Stage Update"),
        }), order="priority desc, sequence, number desc, id desc", rec_name="number", mail_thread=True),
    ]


def _project(version: int) -> list[ModelSpec]:
    task_priority = (("0", "Low"), ("1", "High")) if version < 19 else (
        ("0", "Low"), ("1", "Medium"), ("2", "High"), ("3", "Urgent"))
    task_state: dict[str, Field] = (
        {"kanban_state": sel("Status", KANBAN, default="normal")} if version < 17 else
        {"state": sel("State", TASK_STATES, default="01_in_progress"), "is_closed": computed("boolean", "Closed")})
    return [
        ModelSpec("project.project", "Project", _mail_thread({
            "name": char("Name", required=True), "sequence": integer("Sequence", default=10), "active": ACTIVE,
            "partner_id": m2o("res.partner", "Customer"), "type_ids": m2m("project.task.type", "Tasks Stages"),
        }), order="sequence, name, id", mail_thread=True),
        ModelSpec("project.task.type", "Task Stage", {
            "name": char("Name", required=True), "sequence": integer("Sequence", default=1), "active": ACTIVE,
            "fold": boolean("Folded in Kanban"), "project_ids": m2m("project.project", "Projects"),
        }, order="sequence, id"),
        ModelSpec("project.tags", "Project Tags", {
            "name": char("Name", required=True), "color": integer("Color"),
        }, order="name"),
        ModelSpec("project.task", "Task", _mail_thread({
            "name": char("Title", required=True), "description": html("Description"), "active": ACTIVE,
            "project_id": m2o("project.project", "Project"), "stage_id": m2o("project.task.type", "Stage"),
            "user_ids": m2m("res.users", "Assignees"), "partner_id": m2o("res.partner", "Customer"),
            "email_from": char("Email From"), "tag_ids": m2m("project.tags", "Tags"),
            "priority": sel("Priority", task_priority, default="0"), "sequence": integer("Sequence", default=10),
            "date_deadline": dt("Deadline"), "date_last_stage_update": dt("Last Stage Update", readonly=True),
            **task_state,
        }), order="priority desc, sequence, id desc", mail_thread=True),
    ]


def _base(version: int) -> list[ModelSpec]:
    message_types = MESSAGE_TYPES if version >= 17 else tuple(t for t in MESSAGE_TYPES if t[0] != "email_outgoing")
    return [
        ModelSpec("res.partner", "Contact", _mail_thread({
            "name": char("Name", required=True), "email": char("Email"), "phone": char("Phone"),
            "mobile": char("Mobile"), "active": ACTIVE, "is_company": boolean("Is a Company"),
            "parent_id": m2o("res.partner", "Related Company"), "child_ids": o2m("res.partner", "parent_id", "Contact"),
            "comment": html("Notes"), "lang": char("Language", default="en_US"),
            "user_ids": o2m("res.users", "partner_id", "Users"),
        }), order="name, id desc", parent_name="parent_id", mail_thread=True),
        ModelSpec("res.users", "User", {
            "login": char("Login", required=True), "name": char("Name", required=True),
            "partner_id": m2o("res.partner", "Related Partner", required=True),
            "email": computed("char", "Email"), "share": boolean("Share User"), "active": ACTIVE,
        }, order="name, login"),
        ModelSpec("mail.message.subtype", "Message subtypes", {
            "name": char("Message Type", required=True), "description": text("Description"),
            "internal": boolean("Internal Only"), "default": boolean("Default", default=True),
            "hidden": boolean("Hidden"), "sequence": integer("Sequence", default=1), "res_model": char("Model"),
        }, order="sequence, id"),
        ModelSpec("mail.message", "Message", {
            "model": char("Related Document Model"), "res_id": integer("Related Document ID"),
            "record_name": computed("char", "Message Record Name"),
            "body": html("Contents", default=""), "subject": char("Subject"), "date": dt("Date"),
            "message_type": sel("Type", message_types, required=True, default="comment"),
            "subtype_id": m2o("mail.message.subtype", "Subtype"), "author_id": m2o("res.partner", "Author"),
            "email_from": char("From"), "is_internal": boolean("Employee Only"),
            "message_id": char("Message-Id", readonly=True), "reply_to": char("Reply-To"),
            "parent_id": m2o("mail.message", "Parent Message"),
            "partner_ids": m2m("res.partner", "Recipients"), "attachment_ids": m2m("ir.attachment", "Attachments"),
        }, order="id desc", rec_name="record_name"),
        ModelSpec("ir.attachment", "Attachment", {
            "name": char("Name", required=True), "description": text("Description"),
            "res_model": char("Resource Model"), "res_id": integer("Resource ID"),
            "type": sel("Type", (("url", "URL"), ("binary", "File")), required=True, default="binary"),
            "url": char("Url"), "public": boolean("Is public document"),
            "datas": _f("binary", "File Content (base64)"), "mimetype": char("Mime Type"),
            "file_size": integer("File Size", readonly=True),
        }, order="id desc"),
        ModelSpec("ir.model.data", "Model Data", {
            "name": char("External Identifier", required=True), "module": char("Module", required=True),
            "model": char("Model Name", required=True), "res_id": integer("Record ID"), "noupdate": boolean("Non Updatable"),
        }, order="module, model, name"),
    ]


def build_specs(version: int, flavour: str) -> dict[str, ModelSpec]:
    """Every model the sandbox serves for this version and ticket flavour, with magic fields added."""
    if flavour not in ("enterprise", "oca"):
        raise ValueError(f"ticket_flavour must be 'enterprise' or 'oca', not {flavour!r}")
    helpdesk = _enterprise_helpdesk() if flavour == "enterprise" else _oca_helpdesk()
    specs = {spec.name: spec for spec in _base(version) + helpdesk + _project(version)}
    for spec in specs.values():
        spec.fields = {
            "id": Field("integer", "ID", readonly=True),
            **spec.fields,
            "display_name": computed("char", "Display Name"),
            "create_date": dt("Created on", readonly=True), "write_date": dt("Last Updated on", readonly=True),
            "create_uid": m2o("res.users", "Created by", readonly=True),
            "write_uid": m2o("res.users", "Last Updated by", readonly=True),
        }
    return specs


def seed(db: Database) -> None:
    """The records a fresh database has: the API user, mail subtypes, stages, a team and a project."""
    create = db.create

    def xmlid(module: str, name: str, model: str, res_id: int) -> None:
        create("ir.model.data", {"module": module, "name": name, "model": model, "res_id": res_id, "noupdate": True})

    # Ids mirror a fresh Odoo: partner 1 company, 2 OdooBot, 3 the admin; user 1 __system__, 2 the admin.
    create("res.partner", {"name": "My Company", "is_company": True, "email": "info@example.com"})
    create("res.partner", {"name": "OdooBot", "email": "odoobot@example.com", "active": False})
    create("res.partner", {"name": "Support Bot", "email": db.login})
    create("res.users", {"login": "__system__", "name": "OdooBot", "partner_id": 2, "active": False})
    create("res.users", {"login": db.login, "name": "Support Bot", "partner_id": 3, "share": False})
    for module, name, res_id in (("base", "main_partner", 1), ("base", "partner_root", 2), ("base", "partner_admin", 3)):
        xmlid(module, name, "res.partner", res_id)
    xmlid("base", "user_root", "res.users", 1)
    xmlid("base", "user_admin", "res.users", 2)
    comment = create("mail.message.subtype", {"name": "Discussions", "sequence": 0, "internal": False})
    note = create("mail.message.subtype", {"name": "Note", "sequence": 100, "internal": True, "default": False})
    xmlid("mail", "mt_comment", "mail.message.subtype", comment)
    xmlid("mail", "mt_note", "mail.message.subtype", note)
    if db.flavour == "enterprise":
        stages = [create("helpdesk.stage", {"name": name, "sequence": seq, "fold": fold})
                  for name, seq, fold in (("New", 1, False), ("In Progress", 2, False),
                                          ("Solved", 3, True), ("Cancelled", 4, True))]
        for key, sid in zip(("stage_new", "stage_in_progress", "stage_solved", "stage_cancelled"), stages):
            xmlid("helpdesk", key, "helpdesk.stage", sid)
        team = create("helpdesk.team", {"name": "Customer Care", "stage_ids": [(6, 0, stages)],
                                        "member_ids": [(6, 0, [2])]})
        xmlid("helpdesk", "helpdesk_team1", "helpdesk.team", team)
    else:
        rows = (("New", 1, False, True), ("In Progress", 2, False, False), ("Awaiting", 3, False, False),
                ("Done", 4, True, False), ("Cancelled", 5, True, False), ("Rejected", 6, True, False))
        for name, seq, closed, unattended in rows:
            sid = create("helpdesk.ticket.stage", {"name": name, "sequence": seq, "closed": closed, "fold": closed,
                                                   "unattended": unattended})
            xmlid("helpdesk_mgmt", "helpdesk_ticket_stage_" + name.lower().replace(" ", "_"),
                  "helpdesk.ticket.stage", sid)
        create("helpdesk.ticket.team", {"name": "Customer Care", "user_ids": [(6, 0, [2])]})
        for name in ("Web", "Email", "Phone", "Other"):
            create("helpdesk.ticket.channel", {"name": name})
    types = [create("project.task.type", {"name": name, "sequence": seq, "fold": fold})
             for name, seq, fold in (("New", 1, False), ("In Progress", 2, False), ("Done", 3, True))]
    create("project.project", {"name": "Support", "type_ids": [(6, 0, types)]})

# --- the ORM ---

_ORDER_RE = re.compile(r"^\s*(\w+)(?:\s+(asc|desc))?(?:\s+nulls\s+(first|last))?\s*$", re.IGNORECASE)
_DT_FORMAT = "%Y-%m-%d %H:%M:%S"


def now_utc() -> str:
    """The current UTC time the way Odoo stores and returns datetimes."""
    return datetime.now(timezone.utc).strftime(_DT_FORMAT)


def _normalized_email(value: Any) -> str:
    return (parseaddr(value)[1] or str(value)).strip().lower() if value else ""


_ATOMIC = (str, int, float, bool, type(None))


def _copy_record(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    """copy.deepcopy for a stored record, fast for what records hold: scalars and lists of ids."""
    if rec is None:
        return None
    out = {}
    for name, value in rec.items():
        if type(value) in _ATOMIC:
            out[name] = value
        elif type(value) is list and all(type(v) in _ATOMIC for v in value):
            out[name] = value.copy()
        else:
            out[name] = copy.deepcopy(value)
    return out


_EMPTY: frozenset[int] = frozenset()


class _Index:
    """One (model, field, kind) index: key → ids, and id → key to move a record when it changes."""

    __slots__ = ("buckets", "keys", "ftype", "_key", "_get")

    def __init__(self, name: str, kind: str, ftype: str) -> None:
        self.buckets: dict[Any, set[int]] = {}
        self.keys: dict[int, Any] = {}
        self._key = eq_key if kind == "eq" else text_key
        self.ftype = ftype
        self._get: Callable[[dict[str, Any]], Any] = (
            (lambda rec: rec["id"]) if name == "id" else (lambda rec: rec.get(name, False)))

    def add(self, rid: int, rec: dict[str, Any]) -> None:
        key = self._key(self._get(rec), self.ftype)
        self.keys[rid] = key
        bucket = self.buckets.get(key)
        if bucket is None:
            self.buckets[key] = {rid}
        else:
            bucket.add(rid)

    def discard(self, rid: int) -> None:
        key = self.keys.pop(rid, _EMPTY)
        if key is _EMPTY:
            return
        bucket = self.buckets[key]
        bucket.discard(rid)
        if not bucket:
            del self.buckets[key]

    def lookup(self, keys: list[Any]) -> Set[int]:
        """The ids whose key is one of ``keys``, plus those the index could not place; read-only."""
        other = self.buckets.get(OTHER_KEY)
        if len(keys) == 1 and other is None:
            return self.buckets.get(keys[0], _EMPTY)
        found: set[int] = set(other or ())
        for key in keys:
            found.update(self.buckets.get(key, ()))
        return found


class Database:
    """Every record of one sandbox database, with Odoo's create/read/write/search/unlink semantics.

    Not thread-safe by itself: the server holds one lock around each call. ``transaction()`` undoes
    a failed call's changes, as the request's rolled-back cursor would (ids are not reused, like
    PostgreSQL sequences).

    Searches use equality indexes, as the database's would: built per (model, field) on first use,
    then kept current lazily. Every change to a record goes through ``_touch`` first (the journal
    needs it too); a touched record is always a search candidate while the create/write/unlink that
    touched it runs (it may still change), and is re-indexed once that has ended. The indexes only
    narrow the candidates: the full domain still decides, so results are exactly a scan's. Code that
    changes ``data`` by hand must call ``drop_indexes()``; ``indexing = False`` turns them off.
    """

    indexing = True

    def __init__(self, *, version: int = 17, flavour: str = "enterprise",
                 login: str = "bot@example.com", uid: int = 2) -> None:
        self.version, self.flavour, self.login, self.uid = version, flavour, login, uid
        self.specs = build_specs(version, flavour)
        self.reset()

    def reset(self) -> None:
        """Back to the seed records."""
        self.data: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in self.specs}
        self._next_id = {m: 1 for m in self.specs}
        self._sequences: dict[str, int] = {}
        self._journal: list[tuple[str, int, dict[str, Any] | None]] | None = None
        self.drop_indexes()
        seed(self)

    def drop_indexes(self) -> None:
        """Forgets every index (rebuilt on next use)."""
        self._indexes: dict[str, dict[tuple[str, str], _Index]] = {}
        self._dirty: dict[str, set[int]] = {}  # touched by finished operations: re-index before use
        self._inflight: list[dict[str, set[int]]] = []  # per running create/write/unlink: what it touched
        self._unordered: set[str] = set()  # tables whose dict order is no longer ascending ids

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Runs a call; on any exception every record it touched is put back."""
        outer = self._journal is None
        if outer:
            self._journal = []
        try:
            yield
        except BaseException:
            if outer and self._journal is not None:
                for model, rid, old in reversed(self._journal):
                    table = self.data[model]
                    if old is None:
                        table.pop(rid, None)
                    else:
                        if rid not in table and table and rid < next(reversed(table)):
                            self._unordered.add(model)  # re-inserted at the end, as before: scans see it last
                        table[rid] = old
                    self._dirty.setdefault(model, set()).add(rid)
            raise
        finally:
            if outer:
                self._journal = None

    def _touch(self, model: str, rid: int) -> None:
        """Called before a record is created, changed or deleted: journal and indexes."""
        if self._journal is not None:
            self._journal.append((model, rid, _copy_record(self.data[model].get(rid))))
        if self._inflight:
            self._inflight[-1].setdefault(model, set()).add(rid)
        else:
            self._dirty.setdefault(model, set()).add(rid)

    def _begin(self) -> None:
        self._inflight.append({})

    def _end(self) -> None:
        for model, rids in self._inflight.pop().items():
            self._dirty.setdefault(model, set()).update(rids)

    # --- indexes ---

    def _index(self, model: str, name: str, kind: str) -> _Index | None:
        """The current index, built on first use; None for fields not stored as a scalar or id."""
        fld = self.specs[model].fields[name]
        if name != "id" and (fld.computed or fld.type in X2MANY):
            return None
        indexes = self._indexes.setdefault(model, {})
        table = self.data[model]
        dirty = self._dirty.pop(model, None)
        if dirty:
            for index in indexes.values():
                for rid in dirty:
                    index.discard(rid)
                    rec = table.get(rid)
                    if rec is not None:
                        index.add(rid, rec)
        index = indexes.get((name, kind))
        if index is None:
            index = indexes[(name, kind)] = _Index(name, kind, fld.type)
            for rid, rec in table.items():
                index.add(rid, rec)
        return index

    def _pool(self, model: str, found: Set[int] | None) -> list[int] | None:
        """Index candidates plus records being changed, existing ones only, in the table's order."""
        if found is None:
            return None
        busy = [frame[model] for frame in self._inflight if model in frame]
        if busy:
            found = found.union(*busy)
        table = self.data[model]
        if len(found) * 8 >= len(table) or model in self._unordered:
            return [rid for rid in table if rid in found]
        return sorted(rid for rid in found if rid in table)

    def _candidates(self, model: str, domain: list[Any]) -> list[int] | None:
        if not self.indexing:
            return None

        def lookup(name: str, kind: str, keys: list[Any]) -> Set[int] | None:
            index = self._index(model, name, kind)
            return None if index is None else index.lookup(keys)
        return self._pool(model, candidates(self, model, domain, lookup))

    def _ids_where(self, model: str, name: str, value: int) -> list[int]:
        """Ids (table order) of the records whose stored ``name`` may equal the id ``value``: a superset
        of ``rec.get(name) == value``, for callers that then test that themselves."""
        table = self.data[model]
        if self.indexing and isinstance(value, int) and not isinstance(value, bool) and value:
            index = self._index(model, name, "eq")
            if index is not None:
                pool = self._pool(model, index.lookup([eq_key(value, index.ftype)]))
                if pool is not None:
                    return pool
        return list(table)

    def next_sequence(self, code: str) -> int:
        """Like ir.sequence: never rolled back, never reused."""
        self._sequences[code] = self._sequences.get(code, 0) + 1
        return self._sequences[code]

    # --- the domain Source protocol ---

    def spec(self, model: str) -> ModelSpec:
        if model not in self.specs:
            raise UserError(f"Object {model} doesn't exist")
        return self.specs[model]

    def field(self, model: str, name: str) -> Field:
        found = self.spec(model).fields.get(name)
        if found is None:
            raise ValueError(f"Invalid field {name!r} on model {model!r}")
        return found

    def browse(self, model: str, rid: Any) -> dict[str, Any] | None:
        if not isinstance(rid, int) or isinstance(rid, bool):
            return None
        return self.data.get(model, {}).get(rid)

    def records(self, model: str) -> list[dict[str, Any]]:
        return list(self.data[model].values())

    def parent_name(self, model: str) -> str | None:
        return self.specs[model].parent_name

    def value_getter(self, model: str, name: str) -> Callable[[dict[str, Any]], Any]:
        """``lambda rec: self.value(model, rec, name)``, without the per-call field lookup for stored scalars."""
        if name == "id":
            return lambda rec: rec["id"]
        fld = self.field(model, name)
        if not fld.computed and fld.type not in X2MANY:
            return lambda rec: rec.get(name, False)
        return lambda rec: self.value(model, rec, name)

    def value(self, model: str, rec: dict[str, Any], name: str) -> Any:
        """The raw value: stored, computed, or (x2many) the linked active ids in the comodel's order."""
        if name == "id":
            return rec["id"]
        fld = self.field(model, name)
        if fld.computed:
            return self._compute(model, rec, name)
        if fld.type == "one2many":
            co_table, inverse = self.data[fld.comodel or ""], fld.inverse or ""
            ids = [i for i in self._ids_where(fld.comodel or "", inverse, rec["id"])
                   if co_table[i].get(inverse) == rec["id"]]
        elif fld.type == "many2many":
            ids = list(rec.get(name) or [])
        else:
            return rec.get(name, False)
        comodel = fld.comodel or ""
        active = "active" in self.specs[comodel].fields
        ids = [i for i in ids if i in self.data[comodel] and not (active and self.data[comodel][i].get("active") is False)]
        return self.sort(comodel, ids, self.specs[comodel].order)

    def _compute(self, model: str, rec: dict[str, Any], name: str) -> Any:
        if name == "display_name":
            return self.display_name(model, rec)
        if name == "message_ids":
            messages = self.data["mail.message"]
            return sorted((i for i in self._ids_where("mail.message", "res_id", rec["id"])
                           if messages[i].get("model") == model and messages[i].get("res_id") == rec["id"]),
                          reverse=True)
        if name in ("fold", "closed", "unattended"):
            stage = self.browse(self.field(model, "stage_id").comodel or "", rec.get("stage_id"))
            return bool(stage and stage.get(name))
        if name == "is_closed":
            return rec.get("state") in ("1_done", "1_canceled")
        if name == "email":
            partner = self.browse("res.partner", rec.get("partner_id"))
            return (partner or {}).get("email") or False
        if name == "record_name":
            target = self.browse(rec.get("model") or "", rec.get("res_id"))
            return self.display_name(rec["model"], target) if target else False
        raise ValueError(f"Field {model}.{name} has no computation")

    def display_name(self, model: str, rec: dict[str, Any]) -> str:
        """Odoo's display_name for the models whose name is not just their _rec_name."""
        if model == "helpdesk.ticket" and self.flavour == "enterprise":
            return f"{rec.get('name') or ''} (#{rec.get('ticket_ref') or ''})"
        if model == "helpdesk.ticket":
            return f"{rec.get('number') or '/'} - {rec.get('name') or ''}"
        if model == "res.partner" and rec.get("parent_id") and not rec.get("is_company"):
            parent = self.browse(model, rec["parent_id"])
            if parent:
                return f"{self.display_name(model, parent)}, {rec.get('name') or ''}"
        if model == "ir.model.data":
            return f"{rec.get('module')}.{rec.get('name')}"
        if model == "mail.message":
            return rec.get("subject") or self._compute(model, rec, "record_name") or f"{model},{rec['id']}"
        value = rec.get(self.specs[model].rec_name)
        return value if isinstance(value, str) and value else f"{model},{rec['id']}"

    # --- reading and searching ---

    def existing(self, model: str, ids: Any) -> list[dict[str, Any]]:
        """The records for these ids, or MissingError naming the missing ones like Odoo does."""
        wanted = self.as_ids(ids)
        self.spec(model)
        table = self.data[model]
        missing = tuple(i for i in dict.fromkeys(wanted) if i not in table)
        if missing:
            raise MissingError("Record does not exist or has been deleted.\n"
                               f"(Record: {model}{missing!r}, User: {self.uid})")
        return [table[i] for i in dict.fromkeys(wanted)]

    @staticmethod
    def as_ids(ids: Any) -> list[int]:
        """browse() accepts one id or a list of them."""
        if isinstance(ids, int) and not isinstance(ids, bool):
            return [ids]
        if isinstance(ids, (list, tuple)) and all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            return list(ids)
        raise ValueError(f"Invalid ids {ids!r}: expected an id or a list of ids")

    def search(self, model: str, domain: Any = None, offset: int = 0, limit: int | None = None,
               order: str | None = None, active_test: bool = True) -> list[int]:
        """Ids matching the domain, archived records hidden unless the domain names ``active``."""
        spec = self.spec(model)
        domain = list(domain or [])
        if active_test and "active" in spec.fields and not mentions_field(domain, "active"):
            domain = [("active", "=", True), *domain]
        predicate = compile_domain(self, model, domain)
        table = self.data[model]
        pool = self._candidates(model, domain)
        if pool is None:
            matched = [rid for rid, rec in table.items() if predicate(rec)]
        else:
            matched = [rid for rid in pool if predicate(table[rid])]
        ids = self.sort(model, matched, order or spec.order)
        offset = int(offset or 0)
        return ids[offset:offset + int(limit)] if limit else ids[offset:]

    def sort(self, model: str, ids: list[int], order: str, depth: int = 0) -> list[int]:
        """Ids in ``order`` ("name desc, id"); many2one sorts by the comodel's own order, like SQL joins."""
        terms = []
        for part in (order or "id").split(","):
            match = _ORDER_RE.match(part)
            fld = self.specs[model].fields.get(match.group(1)) if match else None
            if not match or fld is None or not (fld.stored or match.group(1) == "id") or fld.type in X2MANY:
                raise ValueError(f'Invalid "order" specified ({order}). A valid "order" specification is a '
                                 "comma-separated list of valid field names (optionally followed by asc/desc "
                                 "for the direction)")
            terms.append((match.group(1), fld, (match.group(2) or "asc").lower() == "desc", match.group(3)))
        recs = [self.data[model][i] for i in ids]
        for name, fld, desc, nulls in reversed(terms):
            rank: dict[int, int] = {}
            if fld.type == "many2one":
                co = fld.comodel or ""
                co_order = self.specs[co].order if depth < 2 else "id"
                rank = {rid: n for n, rid in enumerate(self.sort(co, list(self.data[co]), co_order, depth + 1))}
            nulls_first = desc if nulls is None else nulls.lower() == "first"
            null_flag = 0 if nulls_first != desc else 1

            def key(rec: dict[str, Any], name: str = name, fld: Field = fld, rank: dict[int, int] = rank,
                    null_flag: int = null_flag) -> tuple[int, Any]:
                v = rec["id"] if name == "id" else rec.get(name)
                if fld.type != "boolean" and is_unset(v, fld.type):
                    return (null_flag, 0)
                if fld.type == "many2one":
                    v = rank.get(v, 0)
                elif isinstance(v, str):
                    v = (v.casefold(), v)
                return (1 - null_flag, v)
            recs.sort(key=key, reverse=desc)
        return [r["id"] for r in recs]

    def read(self, model: str, ids: Any, fields: list[str] | None = None,
             load: str | None = "_classic_read") -> list[dict[str, Any]]:
        """Odoo's read(): many2one as [id, name] (bare id without load), empty values as False."""
        recs = self.existing(model, ids)
        names = list(fields) if fields else list(self.spec(model).fields)
        for name in names:
            self.field(model, name)
        return [{"id": rec["id"], **{n: self.read_value(model, rec, n, load) for n in names if n != "id"}}
                for rec in recs]

    def read_value(self, model: str, rec: dict[str, Any], name: str, load: str | None = "_classic_read") -> Any:
        """One field as read() returns it."""
        fld = self.field(model, name)
        v = self.value(model, rec, name)
        if fld.type == "many2one":
            target = self.browse(fld.comodel or "", v) if v else None
            if target is None:
                return False
            return [v, self.display_name(fld.comodel or "", target)] if load else v
        if fld.type in X2MANY:
            return list(v or [])
        if fld.type == "integer":
            return int(v or 0)
        if fld.type == "float":
            return float(v or 0.0)
        if fld.type == "boolean":
            return bool(v)
        return False if v is None or v is False else v

    def fields_get(self, model: str, allfields: list[str] | None = None,
                   attributes: list[str] | None = None) -> dict[str, dict[str, Any]]:
        """Field descriptions: type, string, required, readonly, relation, selection."""
        out = {}
        for name, fld in self.spec(model).fields.items():
            if allfields and name not in allfields:
                continue
            desc: dict[str, Any] = {"type": fld.type, "string": fld.string, "required": fld.required,
                                    "readonly": fld.readonly or fld.computed, "store": fld.stored,
                                    "searchable": True, "sortable": fld.stored and fld.type not in X2MANY}
            if fld.comodel:
                desc["relation"] = fld.comodel
            if fld.inverse:
                desc["relation_field"] = fld.inverse
            if fld.selection:
                desc["selection"] = [list(pair) for pair in fld.selection]
            out[name] = {k: v for k, v in desc.items() if not attributes or k in attributes}
        return out

    # --- writing ---

    def create(self, model: str, vals: dict[str, Any]) -> int:
        """Creates one record: defaults, conversions, x2many commands, required check, model hooks."""
        self._begin()
        try:
            return self._create(model, vals)
        finally:
            self._end()

    def write(self, model: str, ids: Any, vals: dict[str, Any]) -> None:
        """Writes the same values on every record; computed and magic fields are ignored."""
        self._begin()
        try:
            self._write(model, ids, vals)
        finally:
            self._end()

    def unlink(self, model: str, ids: Any) -> None:
        """Deletes records; many2one references become empty, a thread's messages and attachments go too."""
        self._begin()
        try:
            self._unlink(model, ids)
        finally:
            self._end()

    def _create(self, model: str, vals: dict[str, Any]) -> int:
        spec = self.spec(model)
        if not isinstance(vals, dict):
            raise ValueError(f"create() expects a dict of values, got {vals!r}")
        for name in vals:
            self.field(model, name)
        vals = dict(vals)
        self._before_create(model, vals)
        rid = self._next_id[model]
        self._next_id[model] += 1
        stamp = now_utc()
        rec: dict[str, Any] = {"id": rid}
        for name, fld in spec.fields.items():
            if name in MAGIC or not fld.stored:
                continue
            if fld.type == "many2many":
                rec[name] = []
            elif name in vals:
                rec[name] = self._convert(model, name, fld, vals[name])
            else:
                rec[name] = fld.default(self) if callable(fld.default) else (False if fld.default is None else fld.default)
        rec.update(create_date=stamp, write_date=stamp, create_uid=self.uid, write_uid=self.uid)
        self._touch(model, rid)
        self.data[model][rid] = rec
        for name, value in vals.items():
            if spec.fields[name].type in X2MANY and not spec.fields[name].computed:
                self._apply_commands(model, rec, name, value)
        self._check_required(model, rec)
        self._after_write(model, rec, vals, None)
        return rid

    def _write(self, model: str, ids: Any, vals: dict[str, Any]) -> None:
        recs = self.existing(model, ids)
        if not isinstance(vals, dict):
            raise ValueError(f"write() expects a dict of values, got {vals!r}")
        fields = {name: self.field(model, name) for name in vals}
        scalars = {n: self._convert(model, n, f, vals[n]) for n, f in fields.items()
                   if f.stored and f.type not in X2MANY and n not in MAGIC}
        stamp = now_utc()
        for rec in recs:
            old = dict(rec)
            self._touch(model, rec["id"])
            rec.update(scalars, write_date=stamp, write_uid=self.uid)
            for name, fld in fields.items():
                if fld.type in X2MANY and not fld.computed:
                    self._apply_commands(model, rec, name, vals[name])
            self._check_required(model, rec)
            self._after_write(model, rec, vals, old)

    def _unlink(self, model: str, ids: Any) -> None:
        doomed = [rec["id"] for rec in self.existing(model, ids)]
        for rid in doomed:
            self._touch(model, rid)
            del self.data[model][rid]
        gone = set(doomed)
        for other, spec in self.specs.items():
            for name, fld in spec.fields.items():
                if fld.comodel != model or not fld.stored or name in MAGIC:
                    continue
                for rec in self.data[other].values():
                    value = rec.get(name)
                    if fld.type == "many2one" and value in gone or fld.type == "many2many" and gone & set(value or []):
                        self._touch(other, rec["id"])
                        rec[name] = False if fld.type == "many2one" else [i for i in value if i not in gone]
        if self.specs[model].mail_thread:
            for child, key in (("mail.message", "model"), ("ir.attachment", "res_model")):
                linked = [r["id"] for r in self.data[child].values() if r.get(key) == model and r.get("res_id") in gone]
                if linked:
                    self.unlink(child, linked)

    def _convert(self, model: str, name: str, fld: Field, value: Any) -> Any:
        """A written value in stored form, refused the way Odoo's convert_to_cache/column would."""
        t = fld.type
        if value is None or value is False:
            return 0 if t == "integer" else 0.0 if t == "float" else False
        if t in ("char", "text", "html"):
            return value if isinstance(value, str) else str(value)
        if t == "integer":
            return int(value)
        if t == "float":
            return float(value)
        if t == "boolean":
            return bool(value)
        if t == "selection":
            if value not in {key for key, _ in fld.selection}:
                raise ValueError(f"Wrong value for {model}.{name}: {value!r}")
            return value
        if t == "date":
            return datetime.strptime(str(value)[:10], "%Y-%m-%d").strftime("%Y-%m-%d")
        if t == "datetime":
            text_value = str(value)[:19]
            if len(text_value) == 10:
                text_value += " 00:00:00"
            return datetime.strptime(text_value, _DT_FORMAT).strftime(_DT_FORMAT)
        if t == "many2one":
            rid = value[0] if isinstance(value, (list, tuple)) and value else value
            if self.browse(fld.comodel or "", rid) is None:
                raise ValidationError("The operation cannot be completed: another model requires the record "
                                      f"being referenced: {fld.comodel}({rid!r},) does not exist "
                                      f"(field {model}.{name}).")
            return rid
        if t == "binary":
            if isinstance(value, (bytes, bytearray)):
                return base64.b64encode(value).decode("ascii")
            return str(value)
        return value

    def _apply_commands(self, model: str, rec: dict[str, Any], name: str, commands: Any) -> None:
        """x2many commands (0,0,vals) (1,id,vals) (2,id) (3,id) (4,id) (5,) (6,0,ids); a bare id list means SET."""
        fld = self.field(model, name)
        comodel, inverse = fld.comodel or "", fld.inverse or ""
        if not commands:
            commands = [(5, 0, 0)]
        elif all(isinstance(c, int) and not isinstance(c, bool) for c in commands):
            commands = [(6, 0, list(commands))]

        def linked() -> list[int]:
            if fld.type == "one2many":
                return [r["id"] for r in self.data[comodel].values() if r.get(inverse) == rec["id"]]
            return list(rec.get(name) or [])

        def link(ids: list[int], on: bool) -> None:
            if fld.type == "one2many":
                for co_rec in self.existing(comodel, ids):
                    self._touch(comodel, co_rec["id"])
                    co_rec[inverse] = rec["id"] if on else False
                return
            self._touch(model, rec["id"])
            current = [i for i in rec.get(name) or [] if i not in ids]
            rec[name] = current + [i for i in dict.fromkeys(ids) if on]

        for command in commands:
            if not isinstance(command, (list, tuple)) or not command or command[0] not in range(7):
                raise ValueError(f"Invalid x2many command {command!r} for field {model}.{name}")
            code, arg = command[0], command[1] if len(command) > 1 else 0
            if code == 0:
                extra = {inverse: rec["id"]} if fld.type == "one2many" else {}
                new_id = self.create(comodel, {**dict(command[2]), **extra})
                if fld.type == "many2many":
                    link([new_id], True)
            elif code == 1:
                self.write(comodel, [arg], dict(command[2]))
            elif code in (2, 3):
                link([arg], False)
                if code == 2:
                    self.unlink(comodel, [arg])
            elif code == 4:
                self.existing(comodel, [arg])
                link([arg], True)
            elif code == 5:
                link(linked(), False)
            else:
                ids = self.as_ids(list(command[2] or []))
                self.existing(comodel, ids)
                link(linked(), False)
                link(ids, True)

    def _check_required(self, model: str, rec: dict[str, Any]) -> None:
        for name, fld in self.specs[model].fields.items():
            if fld.required and fld.stored and fld.type not in ("boolean", "integer", "float") and is_unset(rec.get(name)):
                raise ValidationError(f"The operation cannot be completed: Missing required field: {name}")

    # --- model behaviour ---

    def find_or_create_partner(self, email: str) -> int:
        """res.partner.find_or_create: the first active partner whose email =ilike the address, else a new one."""
        name, address = parseaddr(email or "")
        if address and "@" in address:
            found = self.search("res.partner", [("email", "=ilike", address)], limit=1)
            if found:
                return found[0]
            return self.create("res.partner", {"name": name or address, "email": address})
        return self.create("res.partner", {"name": email})

    def xmlid_to_res_id(self, xmlid: str) -> int | bool:
        """ir.model.data lookup of "module.name"; False when unknown, as _xmlid_to_res_id does."""
        module, _, name = xmlid.partition(".")
        for rec in self.data["ir.model.data"].values():
            if rec["module"] == module and rec["name"] == name:
                return rec["res_id"]
        return False

    def _first(self, model: str, domain: list[Any]) -> int | bool:
        ids = self.search(model, domain, limit=1)
        return ids[0] if ids else False

    def _before_create(self, model: str, vals: dict[str, Any]) -> None:
        if model == "helpdesk.ticket" and self.flavour == "enterprise":
            if vals.get("partner_name") and vals.get("partner_email") and not vals.get("partner_id"):
                vals["partner_id"] = self.find_or_create_partner(formataddr((vals["partner_name"], vals["partner_email"])))
            vals.setdefault("team_id", self._first("helpdesk.team", []))
            if not vals.get("stage_id"):
                vals["stage_id"] = self._first("helpdesk.stage", [("team_ids", "in", [vals["team_id"]])] if vals[
                    "team_id"] else []) or self._first("helpdesk.stage", [])
            vals["ticket_ref"] = str(self.next_sequence("helpdesk.ticket"))
        elif model == "helpdesk.ticket":
            if vals.get("number") in (None, False, "/"):
                vals["number"] = f"HT{self.next_sequence('helpdesk.ticket.sequence'):05d}"
            if not vals.get("stage_id"):
                vals["stage_id"] = self._first("helpdesk.ticket.stage", [])
        elif model == "project.task" and vals.get("project_id") and not vals.get("stage_id"):
            project = self.browse("project.project", vals["project_id"])
            if project and project.get("type_ids"):
                vals["stage_id"] = self.sort("project.task.type", list(project["type_ids"]), "sequence, id")[0]
        elif model == "mail.message":
            vals.setdefault("date", now_utc())
            if not vals.get("message_id"):
                res = f"{vals.get('res_id')}-{vals.get('model')}" if vals.get("model") else "message-notify"
                vals["message_id"] = f"<{random.random():.15f}.{time.time():.6f}-openerp-{res}@sandbox>"
        elif model == "ir.attachment" and not vals.get("mimetype"):
            vals["mimetype"] = mimetypes.guess_type(vals.get("name") or "")[0] or "application/octet-stream"

    def _after_write(self, model: str, rec: dict[str, Any], vals: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Side effects of create (old is None) and write: stage dates, partner sync, attachment size."""
        stamp = now_utc()
        stage_moved = "stage_id" in (self.specs[model].fields if old is None else vals) and (
            old is None or old.get("stage_id") != rec.get("stage_id"))
        if model == "helpdesk.ticket":
            stage = self.browse(self.field(model, "stage_id").comodel or "", rec.get("stage_id"))
            if stage_moved and self.flavour == "enterprise":
                rec["date_last_stage_update"] = stamp
                rec["close_date"] = stamp if stage and stage.get("fold") else False
            elif stage_moved:
                rec["last_stage_update"] = stamp
                if stage and stage.get("closed"):
                    rec["closed_date"] = stamp
            partner = self.browse("res.partner", rec.get("partner_id"))
            if partner and "partner_id" in vals:
                for key, source in (("partner_name", "name"), ("partner_email", "email"), ("partner_phone", "phone")):
                    if key not in vals and key in self.specs[model].fields:
                        rec[key] = partner.get(source) or False
            if (self.flavour == "enterprise" and partner and "partner_email" in vals and rec.get("partner_email")
                    and _normalized_email(rec["partner_email"]) != _normalized_email(partner.get("email"))):
                self.write("res.partner", [partner["id"]], {"email": rec["partner_email"]})
        elif model == "project.task" and stage_moved:
            rec["date_last_stage_update"] = stamp
        elif model == "ir.attachment" and vals.get("datas"):
            try:
                rec["file_size"] = len(base64.b64decode(rec["datas"], validate=False))
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"Invalid base64 in ir.attachment.datas: {exc}") from exc
