"""Reads what changed in Odoo since a moment: tickets (stage, assignee) and chatter messages.

The watcher (bridge/pipeline/odoo_watch.py) asks for records whose ``write_date`` is at or after
``since``, paged by ``id`` within that fixed filter, so a poll costs a few calls whatever the
number of tickets, and paging always ends. It does not page by a ``(write_date, id)`` keyset:
PostgreSQL keeps microseconds in ``write_date`` while the API returns whole seconds, so
``write_date = <read value>`` matches nothing and ``write_date > <read value>`` matches the same
second again; and a transaction stamps its start time but becomes visible at commit, so a
change can appear with a stamp older than one already read. The watcher re-reads a look-back
window instead, and what it does with a record is idempotent.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Any

from bridge.errors import ConfigurationError
from bridge.models import Attachment
from bridge.odoo.rpc import SERVICE, OdooRPC, as_id, many2one
from bridge.odoo.tickets import TicketDesk

EPOCH = "1970-01-01 00:00:00"
AUTHOR_TTL = 600.0  # seconds an author's "internal user" answer is trusted


@dataclass(frozen=True)
class TicketState:
    """A ticket's state as the watcher compares it with what the bridge last knew."""

    ticket_id: int
    stage_id: int | None
    stage: str
    closed: bool
    assignee_id: int | None
    assignee: str
    written_by: str  # who wrote the ticket last (the stage change's author, usually)
    write_date: str


@dataclass(frozen=True)
class ChatterMessage:
    """A public comment on a ticket, with what decides whether it goes to the customer."""

    odoo_id: int
    ticket_id: int
    body: str
    author_partner_id: int | None
    author_name: str
    message_id: str
    attachment_ids: tuple[int, ...]
    write_date: str


class OdooChanges:
    """Blocking, thread-safe reads of changes (and the one write-back) for the watcher."""

    def __init__(self, rpc: OdooRPC, desk: TicketDesk) -> None:
        self._rpc = rpc
        self._desk = desk
        self._subtype: int | None = None
        self._internal: dict[int, tuple[bool, float]] = {}  # partner id → (an active internal user's, when asked)

    def newest_write_date(self) -> str:
        """The newest ``write_date`` among tickets and messages: where a first watch starts."""
        newest = EPOCH
        for model in (self._desk.profile.model, "mail.message"):
            found = self._rpc.execute_kw(model, "search_read", [[]], {
                "fields": ["write_date"], "order": "write_date desc", "limit": 1, "context": {"active_test": False}})
            if found and str(found[0].get("write_date") or "") > newest:
                newest = str(found[0]["write_date"])
        return newest

    def tickets(self, since: str, after_id: int, limit: int) -> list[TicketState]:
        """Tickets written at or after ``since`` with an id above ``after_id``, by id."""
        desk = self._desk
        profile = desk.profile
        fields = ["stage_id", profile.assignee_field, "write_date", "write_uid"]
        found = self._rpc.execute_kw(profile.model, "search_read", [[
            ("write_date", ">=", since), ("id", ">", after_id)]], {"fields": fields, "order": "id asc", "limit": limit})
        names = self._task_assignees(found) if profile.assignee_field == "user_ids" else {}
        states = []
        for row in found:
            stage_id, stage = many2one(row.get("stage_id"))
            assignees = row.get(profile.assignee_field)
            if profile.assignee_field == "user_ids":
                assignee_id = as_id(assignees[0]) if assignees else None
                assignee = names.get(assignee_id, "") if assignee_id else ""
            else:
                assignee_id, assignee = many2one(assignees)
            states.append(TicketState(as_id(row["id"]), stage_id, stage, desk.stage_closed(stage_id), assignee_id,
                                      assignee, many2one(row.get("write_uid"))[1], str(row.get("write_date") or "")))
        return states

    def _task_assignees(self, rows: list[dict[str, Any]]) -> dict[int, str]:
        """Names of the first assignee of each task on a page, in one read."""
        firsts = sorted({as_id(row["user_ids"][0]) for row in rows if row.get("user_ids")})
        if not firsts:
            return {}
        users = self._rpc.execute_kw("res.users", "search_read", [[("id", "in", firsts)]],
                                     {"fields": ["name"], "context": {"active_test": False}})
        return {as_id(user["id"]): str(user.get("name") or "") for user in users}

    def messages(self, since: str, after_id: int, limit: int) -> list[ChatterMessage]:
        """Public comments (subtype Discussions) on tickets written at or after ``since``, by id.
        Internal notes, emails and system notifications are never asked for."""
        found = self._rpc.execute_kw("mail.message", "search_read", [[
            ("model", "=", self._desk.profile.model), ("message_type", "=", "comment"),
            ("subtype_id", "=", self.discussion_subtype()), ("write_date", ">=", since), ("id", ">", after_id),
        ]], {"fields": ["res_id", "body", "author_id", "message_id", "attachment_ids", "write_date"],
             "order": "id asc", "limit": limit})
        messages = []
        for row in found:
            author_id, author_name = many2one(row.get("author_id"))
            messages.append(ChatterMessage(
                as_id(row["id"]), as_id(row.get("res_id") or 0), str(row.get("body") or ""), author_id, author_name,
                str(row.get("message_id") or ""), tuple(as_id(i) for i in row.get("attachment_ids") or []),
                str(row.get("write_date") or "")))
        return messages

    def discussion_subtype(self) -> int:
        """The id of ``mail.mt_comment`` (Discussions), looked up once."""
        if self._subtype is None:
            found = self._rpc.execute_kw("ir.model.data", "search_read", [[
                ("module", "=", "mail"), ("name", "=", "mt_comment")]], {"fields": ["res_id"], "limit": 1})
            if not found:
                raise ConfigurationError("Odoo has no mail.mt_comment subtype", service=SERVICE)
            self._subtype = as_id(found[0]["res_id"])
        return self._subtype

    def internal_authors(self, partner_ids: list[int]) -> set[int]:
        """Which of these partners are an active internal user's (not portal, not the bridge's own
        user): only their comments are answers to email. Cached per partner for AUTHOR_TTL, so an
        agent deactivated in Odoo stops being one within that time."""
        now = time.monotonic()
        unknown = [p for p in dict.fromkeys(partner_ids)
                   if p not in self._internal or now - self._internal[p][1] > AUTHOR_TTL]
        if unknown:
            users = self._rpc.execute_kw("res.users", "search_read", [[
                ("partner_id", "in", unknown), ("share", "=", False)]], {"fields": ["partner_id"]})
            internal = {many2one(user.get("partner_id"))[0] for user in users if as_id(user["id"]) != self._rpc.uid}
            for partner in unknown:
                self._internal[partner] = (partner in internal, now)
        return {p for p in partner_ids if self._internal.get(p, (False, 0.0))[0]}

    def attachments(self, ids: tuple[int, ...]) -> list[Attachment]:
        """The files of a message, in its order; a file whose content cannot be read is left out."""
        if not ids:
            return []
        rows = self._rpc.execute_kw("ir.attachment", "search_read", [[("id", "in", list(ids))]],
                                    {"fields": ["name", "mimetype", "datas"]})
        by_id = {as_id(row["id"]): row for row in rows}
        files = []
        for attachment_id in ids:
            row = by_id.get(attachment_id)
            if not row or not row.get("datas"):
                continue
            try:
                payload = base64.b64decode(str(row["datas"]), validate=False)
            except (binascii.Error, ValueError):
                continue
            files.append(Attachment(str(row.get("name") or "attachment"),
                                    str(row.get("mimetype") or "application/octet-stream"), payload))
        return files

    def tickets_in_stages(self, stage_ids: list[int], after_id: int, limit: int) -> list[tuple[int, int, str]]:
        """Tickets in these stages with an id above ``after_id``, by id: (id, stage id, the UTC
        stamp they entered it, "" when Odoo has none)."""
        profile = self._desk.profile
        rows = self._rpc.execute_kw(profile.model, "search_read", [[
            ("stage_id", "in", stage_ids), ("id", ">", after_id)]],
            {"fields": ["stage_id", profile.stage_date_field, "write_date"], "order": "id asc", "limit": limit})
        return [(as_id(row["id"]), many2one(row.get("stage_id"))[0] or 0,
                 str(row.get(profile.stage_date_field) or row.get("write_date") or "")) for row in rows]
