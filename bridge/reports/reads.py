"""The Odoo reads of a report: the period's tickets page by page, each page's messages, tags and
stage history in one call each, turned into one ``ReportTicket`` per ticket."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bridge.config import Config
from bridge.odoo.rpc import as_id, many2one, odoo_time
from bridge.odoo.sla_reads import SlaReader
from bridge.reports.journal import automation_outcomes
from bridge.reports.period import Period
from bridge.sla.facts import iso
from bridge.sla.report import SlaView
from bridge.ticket_record import TicketBook, TicketRecord

UNCATEGORISED = "uncategorised"
UNASSIGNED = "unassigned"
_TAG = re.compile(r"<[^>]*>")
BODY_CHARS = 300  # of the description, for grouping tickets whose subject says little


@dataclass(slots=True)
class ReportTicket:
    """One ticket of the period as the figures need it; times are UTC-aware, durations seconds."""

    id: int
    subject: str
    body: str  # the start of the description as plain text
    customer: str
    category: str
    team: str
    agent: str
    priority: str
    created: datetime
    closed_at: datetime | None
    first_response: float | None  # until the first public agent answer (bridge/sla/facts.py's definition)
    reopened: bool
    automation: str  # bridge/reports/journal.py's outcome, "" when automation had nothing to do with it
    sla: tuple[tuple[str, str, str, str], ...]  # (policy, priority, metric, clock state) per clock

    @property
    def resolution(self) -> float | None:
        return (self.closed_at - self.created).total_seconds() if self.closed_at else None


@dataclass
class Page:
    """One page of tickets with what was read for them."""

    rows: list[dict[str, Any]]
    full: bool  # as many rows as asked for: there may be more
    last_id: int
    history: dict[int, list[tuple[str, int, int]]] | None = None
    records: dict[int, TicketRecord] = field(default_factory=dict)
    messages: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    internal: set[int] = field(default_factory=set)
    tags: dict[int, str] = field(default_factory=dict)
    people: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Carried:
    """A ticket opened before the period and still open at its start: part of the backlog."""

    created: datetime
    closed_at: datetime | None


def plain_text(value: Any, limit: int = BODY_CHARS) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", str(value or "")[: limit * 4])).split())[:limit]


class ReportReader(SlaReader):
    """SlaReader's reads, over a period, with what a report shows besides the clocks' fields."""

    def _report_fields(self) -> list[str]:
        return [*self._ticket_fields(), "name", "description", self._desk.profile.assignee_field]

    def _team_leaf(self, team: str) -> list[tuple[str, str, str]]:
        field = self._desk.profile.team_field
        if team and not field:
            raise ValueError(f"--team: the {self._desk.profile.key} profile has no team")
        return [(f"{field}.name", "=", team)] if team else []

    def created_between(self, period: Period, team: str, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Tickets created in the period (archived too), by id."""
        return self._rpc.execute_kw(self._desk.profile.model, "search_read", [[
            ("create_date", ">=", iso(period.start)), ("create_date", "<", iso(period.end)),
            *self._team_leaf(team), ("id", ">", after_id)]],
            {"fields": self._report_fields(), "order": "id asc", "limit": limit, "context": {"active_test": False}})

    def open_at(self, period: Period, team: str, after_id: int, limit: int) -> list[dict[str, Any]]:
        """Tickets created before the period that were not closed by its start: the backlog carried in."""
        profile = self._desk.profile
        return self._rpc.execute_kw(profile.model, "search_read", [[
            ("create_date", "<", iso(period.start)), *self._team_leaf(team), ("id", ">", after_id),
            "|", self._closed_leaf(False), (profile.closed_date_field, ">=", iso(period.start))]],
            {"fields": ["create_date", "stage_id", profile.closed_date_field], "order": "id asc", "limit": limit,
             "context": {"active_test": False}})

    def user_names(self, ids: set[int]) -> dict[int, str]:
        """For project.task's several assignees (bare ids): their names, in one call."""
        rows = self._rpc.execute_kw("res.users", "search_read", [[("id", "in", sorted(ids))]],
                                    {"fields": ["name"], "context": {"active_test": False}}) if ids else []
        return {as_id(r["id"]): str(r.get("name") or "") for r in rows}


class TicketSource:
    """Reads a report's tickets: Odoo for the tickets and their chatter; state/ for what
    automation did, and where needed the mailbox and the pauses the monitor saw. Opened once."""

    def __init__(self, cfg: Config, view: SlaView | None = None) -> None:
        self.cfg = cfg
        self.view = view or SlaView(cfg)
        self.reader = ReportReader(self.view.rpc, self.view.desk)
        self.book = TicketBook(self.view.store.tickets)
        self.page = cfg.reports.page_size

    def close(self) -> None:
        self.view.close()

    def carried(self, period: Period, team: str, mailbox: str) -> list[Carried]:
        found, after = [], 0
        closed_field = self.view.desk.profile.closed_date_field
        while True:
            rows = self.reader.open_at(period, team, after, self.page)
            records = self.book.get_many([as_id(r["id"]) for r in rows]) if mailbox else {}
            for row in rows:
                if mailbox and not ((rec := records.get(as_id(row["id"]))) and rec.mailbox == mailbox):
                    continue
                closed = self.view.desk.stage_closed(many2one(row.get("stage_id"))[0])
                created = odoo_time(row.get("create_date"))
                if created:
                    found.append(Carried(created, odoo_time(row.get(closed_field)) if closed else None))
            if len(rows) < self.page:
                return found
            after = as_id(rows[-1]["id"])

    def tickets(self, period: Period, team: str, mailbox: str, now: datetime) -> Iterator[ReportTicket]:
        """The period's tickets, page by page: the next page is read from Odoo (in a worker
        thread) while this one is computed, so waiting on Odoo and the clocks overlap."""
        outcomes = automation_outcomes(self.view.store.jobs)
        with ThreadPoolExecutor(1, thread_name_prefix="report-read") as pool:
            ahead = pool.submit(self._read_page, period, team, mailbox, 0)
            while ahead is not None:
                page = ahead.result()
                ahead = pool.submit(self._read_page, period, team, mailbox, page.last_id) if page.full else None
                yield from self._page(page, outcomes, now)

    def _read_page(self, period: Period, team: str, mailbox: str, after: int) -> Page:
        """Everything one page needs from Odoo and state/, a few calls whatever its size."""
        reader = self.reader
        rows = reader.created_between(period, team, after, self.page)
        page = Page(rows, full=len(rows) == self.page, last_id=as_id(rows[-1]["id"]) if rows else after)
        ids = [as_id(r["id"]) for r in rows]
        page.history = reader.stage_history(ids) if ids else {}
        if mailbox or page.history is None:  # the mailbox, or the pauses seen where tracking is not readable
            page.records = self.book.get_many(ids)
        if mailbox:
            rows = [r for r in rows if (rec := page.records.get(as_id(r["id"]))) and rec.mailbox == mailbox]
            ids = [as_id(r["id"]) for r in rows]
        page.rows = rows
        if not rows:
            return page
        page.messages = reader.messages(ids)
        authors = [a for ms in page.messages.values() for m in ms if (a := many2one(m.get("author_id"))[0])]
        page.internal = self.view.changes.internal_authors(authors) if authors else set()
        page.tags = reader.tag_names({as_id(t) for r in rows for t in r.get("tag_ids") or []})
        field = self.view.desk.profile.assignee_field
        page.people = reader.user_names({i for r in rows if field == "user_ids" for i in r.get(field) or []})
        return page

    def _page(self, page: Page, outcomes: dict[int, str], now: datetime) -> Iterator[ReportTicket]:
        view = self.view
        profile = view.desk.profile
        prefix = self.cfg.categories.tag_prefix
        for row in page.rows:
            ticket = as_id(row["id"])
            record = page.records.get(ticket)
            sla = record.sla if record else {}
            mine = page.messages.get(ticket, [])
            changes = None if page.history is None else page.history.get(ticket, [])
            facts = view.engine.facts(row, mine, page.internal, view.pause_ids, sla, changes)
            answered = next((when for who, when in facts.conversation if who == "agent"), None)
            names = [page.tags.get(as_id(t), "") for t in row.get("tag_ids") or []]
            clocks: tuple[tuple[str, str, str, str], ...] = ()
            priority = str(row.get("priority") or "0")
            if self.cfg.sla.policies:
                targets, found = view.engine.clocks_of(row, mine, page.internal, page.tags, view.pause_ids, now,
                                                       changes, sla, facts)
                if targets is not None:
                    clocks = tuple((targets.policy, priority, c.metric, c.state) for c in found)
            yield ReportTicket(
                id=ticket, subject=str(row.get("name") or ""), body=plain_text(row.get("description")),
                customer=str(row.get("partner_email") or "") or many2one(row.get("partner_id"))[1] or "—",
                category=next((n[len(prefix):].strip() for n in names if prefix and n.startswith(prefix)),
                              UNCATEGORISED) or UNCATEGORISED,
                team=many2one(row.get(profile.team_field))[1] if profile.team_field else "",
                agent=self._agent(row.get(profile.assignee_field), page.people),
                priority=priority, created=facts.created, closed_at=facts.closed_at,
                first_response=max(0.0, (answered - facts.created).total_seconds()) if answered else None,
                reopened=self._reopened(changes, record.odoo if record else {}),
                automation=outcomes.get(ticket, ""), sla=clocks)

    def _agent(self, value: Any, people: dict[int, str]) -> str:
        if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
            return people.get(value[0], "") or UNASSIGNED  # project.task: its first assignee
        return many2one(value)[1] or UNASSIGNED

    def _reopened(self, changes: list[tuple[str, int, int]] | None, odoo: dict[str, Any]) -> bool:
        """Moved out of a closed stage (Odoo's tracking), or, where tracking may not be read,
        closed more than once as the bridge saw it."""
        if changes is None:
            return int(odoo.get("closures", 0)) > 1
        closed = self.view.desk.stage_closed
        return any(closed(old) and not closed(new) for _, old, new in changes if old)
