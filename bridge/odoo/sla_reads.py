"""The Odoo reads of the SLA monitor: tickets page by page and all their messages in one call
per page, so a sweep costs O(pages) calls whatever the number of tickets."""

from __future__ import annotations

import logging
from typing import Any

from bridge.errors import AccessDenied
from bridge.odoo.rpc import OdooRPC, as_id, many2one
from bridge.odoo.tickets import TicketDesk

log = logging.getLogger("bridge.sla")


class SlaReader:
    """Blocking, thread-safe reads for bridge/sla/monitor.py."""

    def __init__(self, rpc: OdooRPC, desk: TicketDesk) -> None:
        self._rpc = rpc
        self._desk = desk
        self._tags: dict[int, str] = {}
        self._fields: list[str] | None = None
        self._odoo_sla = False  # Enterprise: helpdesk.ticket.sla_status_ids exists
        self._tracking: bool | None = None  # whether mail.tracking.value is readable (None: not asked yet)

    def _ticket_fields(self) -> list[str]:
        """What a clock needs of a ticket, plus Enterprise's own ``sla_deadline`` where it exists."""
        if self._fields is None:
            profile = self._desk.profile
            fields = ["create_date", "write_date", "priority", "stage_id", "tag_ids", "partner_id",
                      profile.stage_date_field, profile.closed_date_field]
            if profile.team_field:
                fields.append(profile.team_field)
            if profile.has_partner_email:
                fields += ["partner_email", "partner_name"]
            known = self._rpc.execute_kw(profile.model, "fields_get", [], {"attributes": ["type"]})
            if "sla_deadline" in known:
                fields.append("sla_deadline")
            self._odoo_sla = "sla_status_ids" in known
            self._fields = list(dict.fromkeys(f for f in fields if f in known))
        return self._fields

    def odoo_sla_statuses(self, ticket_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Enterprise's own SLA statuses of these tickets (helpdesk.sla.status: the SLA's name,
        ongoing / reached / failed, deadline, reached time), by ticket, soonest deadline first;
        empty where Odoo computes none or the bridge's user may not read them."""
        self._ticket_fields()
        if not ticket_ids or not self._odoo_sla:
            return {}
        try:
            rows = self._rpc.execute_kw("helpdesk.sla.status", "search_read", [[("ticket_id", "in", ticket_ids)]], {
                "fields": ["ticket_id", "sla_id", "status", "deadline", "reached_datetime"],
                "order": "deadline asc, id asc"})
        except AccessDenied as exc:
            log.info("sla: Odoo's own SLA statuses are not readable (%s); only sla_deadline is shown", exc)
            self._odoo_sla = False
            return {}
        found: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            ticket, _ = many2one(row.get("ticket_id"))
            found.setdefault(ticket or 0, []).append({
                "sla": many2one(row.get("sla_id"))[1], "status": row.get("status") or "",
                "deadline": row.get("deadline") or "", "reached": row.get("reached_datetime") or ""})
        return found

    def _closed_leaf(self, closed: bool) -> tuple[str, str, bool]:
        profile = self._desk.profile
        flag = profile.closed_field.removeprefix("stage_id.")
        return (f"stage_id.{'closed' if flag == profile.closed_field else flag}", "=", closed)

    def open_tickets(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Open tickets (not in a closed stage) with an id above ``after_id``, by id."""
        return self._rpc.execute_kw(self._desk.profile.model, "search_read", [[
            self._closed_leaf(False), ("id", ">", after_id)]],
            {"fields": self._ticket_fields(), "order": "id asc", "limit": limit})

    def closed_since(self, stamp: str, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Closed tickets written at or after ``stamp`` (just closed, for their summaries)."""
        return self._rpc.execute_kw(self._desk.profile.model, "search_read", [[
            self._closed_leaf(True), ("write_date", ">=", stamp), ("id", ">", after_id)]],
            {"fields": self._ticket_fields(), "order": "id asc", "limit": limit})

    def created_since(self, stamp: str, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Tickets created at or after ``stamp``, open or closed (archived too), by id: a report's period."""
        return self._rpc.execute_kw(self._desk.profile.model, "search_read", [[
            ("create_date", ">=", stamp), ("id", ">", after_id)]],
            {"fields": self._ticket_fields(), "order": "id asc", "limit": limit, "context": {"active_test": False}})

    def tickets(self, ids: list[int]) -> list[dict[str, Any]]:
        return self._rpc.execute_kw(self._desk.profile.model, "search_read", [[("id", "in", ids)]],
                                    {"fields": self._ticket_fields(), "context": {"active_test": False}})

    def messages(self, ticket_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """The emails and comments of these tickets in one call, by ticket, oldest first. Their
        author and subtype come as bare ids (``load`` off: read()'s option since Odoo 14): every
        reader needs only the ids, and Odoo then skips a display-name lookup per message."""
        if not ticket_ids:
            return {}
        rows = self._rpc.execute_kw("mail.message", "search_read", [[
            ("model", "=", self._desk.profile.model), ("res_id", "in", ticket_ids),
            ("message_type", "in", ["email", "comment"])]],
            {"fields": ["res_id", "date", "create_date", "message_type", "subtype_id", "author_id", "message_id"],
             "order": "id asc", "load": ""})
        found: dict[int, list[dict[str, Any]]] = {i: [] for i in ticket_ids}
        for row in rows:
            found.setdefault(as_id(row.get("res_id") or 0), []).append(row)
        return found

    def stage_history(self, ticket_ids: list[int]) -> dict[int, list[tuple[str, int, int]]] | None:
        """Every stage change of these tickets from Odoo's chatter tracking (mail.tracking.value):
        ``(UTC stamp, old stage id, new stage id)`` per ticket, oldest first, in one call. None
        when the bridge's Odoo user may not read tracking (Odoo restricts it to administrators in
        some versions): the monitor then counts the pauses it saw itself."""
        if not ticket_ids or self._tracking is False:
            return None if self._tracking is False else {}
        field = "field" if self._rpc.server_major < 17 else "field_id"
        model = self._desk.profile.model
        try:
            rows = self._rpc.execute_kw("mail.tracking.value", "search_read", [[
                (f"{field}.name", "=", "stage_id"), (f"{field}.model", "=", model),
                ("mail_message_id.model", "=", model), ("mail_message_id.res_id", "in", ticket_ids)]],
                {"fields": ["mail_message_id", "old_value_integer", "new_value_integer", "create_date"],
                 "order": "id asc"})
            messages = self._rpc.execute_kw("mail.message", "search_read", [[
                ("id", "in", sorted({as_id(r["mail_message_id"][0]) for r in rows if r.get("mail_message_id")}))]],
                {"fields": ["res_id", "date"]}) if rows else []
        except AccessDenied:
            log.warning("sla: the Odoo user may not read stage tracking (mail.tracking.value): pauses are "
                        "counted from what the bridge saw; give it Settings access for Odoo's full history")
            self._tracking = False
            return None
        self._tracking = True
        of = {as_id(m["id"]): (as_id(m.get("res_id") or 0), str(m.get("date") or "")) for m in messages}
        history: dict[int, list[tuple[str, int, int]]] = {i: [] for i in ticket_ids}
        for row in rows:
            ticket, when = of.get(as_id(row["mail_message_id"][0]), (0, ""))
            if ticket in history:
                history[ticket].append((when or str(row.get("create_date") or ""), int(row.get("old_value_integer") or 0),
                                        int(row.get("new_value_integer") or 0)))
        return history

    def tag_names(self, ids: set[int]) -> dict[int, str]:
        """Tag id → name, cached (tags are rarely renamed; a rename shows after a restart)."""
        unknown = sorted(i for i in ids if i not in self._tags)
        if unknown:
            rows = self._rpc.execute_kw(self._desk.profile.tag_model, "search_read", [[("id", "in", unknown)]],
                                        {"fields": ["name"]})
            self._tags.update({as_id(row["id"]): str(row.get("name") or "") for row in rows})
        return {i: self._tags.get(i, "") for i in ids}
