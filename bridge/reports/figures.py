"""The report's figures from its tickets: each section a ``Table`` (bridge/reports/tables.py)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime

from bridge.config import Config
from bridge.reports.journal import AUTO_RESOLVED, ESCALATED, SKIPPED
from bridge.reports.period import Period
from bridge.reports.reads import Carried, ReportTicket
from bridge.reports.recurring import recurring
from bridge.reports.tables import Column, Report, Table
from bridge.sla.facts import METRIC_NAMES

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EXAMPLES = 3


def median_hours(seconds: Iterable[float | None]) -> float | None:
    known = [s for s in seconds if s is not None]
    return statistics.median(known) / 3600 if known else None


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _day(moment: datetime, period: Period) -> str:
    return moment.astimezone(period.zone).date().isoformat()


def daily(tickets: list[ReportTicket], carried: list[Carried], period: Period) -> Table:
    """Opened and closed per local day, and the backlog (open tickets) at each day's end."""
    opened = Counter(_day(t.created, period) for t in tickets)
    closed = Counter(_day(c, period) for c in [t.closed_at for t in tickets] + [c.closed_at for c in carried]
                     if c is not None and c < period.end)
    backlog, rows = len(carried), []
    for day in period.days():
        key = day.isoformat()
        backlog += opened[key] - closed[key]
        rows.append((key, WEEKDAYS[day.weekday()], opened[key], closed[key], backlog))
    return Table("daily", "Daily summary", (Column("day", "date"), Column("weekday"), Column("opened", "count"),
                                            Column("closed", "count"), Column("backlog at day end", "count")),
                 tuple(rows), note=f"{len(carried)} ticket(s) were open when the period began")


def hour_of_week(tickets: list[ReportTicket], period: Period) -> Table:
    """Tickets opened per weekday and local hour: when the work arrives."""
    counts = Counter((at.weekday(), at.hour) for at in (t.created.astimezone(period.zone) for t in tickets))
    rows = tuple((WEEKDAYS[d], *(counts[(d, h)] for h in range(24)), sum(counts[(d, h)] for h in range(24)))
                 for d in range(7))
    return Table("hour_of_week", f"Volume by hour of week ({period.zone.key})",
                 (Column("weekday"), *(Column(f"{h:02d}", "count") for h in range(24)), Column("total", "count")), rows)


def categories(tickets: list[ReportTicket]) -> Table:
    by: dict[str, list[ReportTicket]] = defaultdict(list)
    for t in tickets:
        by[t.category].append(t)
    rows = tuple((name, len(group), share(len(group), len(tickets)), median_hours(t.first_response for t in group),
                  median_hours(t.resolution for t in group))
                 for name, group in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    return Table("categories", "Categories", (Column("category"), Column("tickets", "count"),
                                              Column("share", "percent"), Column("median first response", "hours"),
                                              Column("median resolution", "hours")), rows)


def recurring_issues(tickets: list[ReportTicket], period: Period, threshold: float, top: int) -> Table:
    rows = tuple((n, g.category, g.title, len(g.tickets), g.customers, _day(g.first_seen, period),
                  _day(g.last_seen, period), ", ".join(str(t.id) for t in g.tickets[:EXAMPLES]))
                 for n, g in enumerate(recurring(tickets, threshold, top), 1))
    return Table("recurring", f"Top {top} recurring issues", (
        Column("rank", "count"), Column("category"), Column("issue"), Column("tickets", "count"),
        Column("customers", "count"), Column("first seen", "date"), Column("last seen", "date"),
        Column("example tickets")), rows, note="similar subjects within one category")


def people(tickets: list[ReportTicket], key: str, title: str, who: Callable[[ReportTicket], str]) -> Table:
    """Tickets handled, first response and reopen rate per team or per agent."""
    by: dict[str, list[ReportTicket]] = defaultdict(list)
    for t in tickets:
        by[who(t)].append(t)
    rows = tuple((name, len(group), sum(t.closed_at is not None for t in group),
                  median_hours(t.first_response for t in group),
                  share(sum(t.reopened for t in group), len(group)))
                 for name, group in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0])))
    return Table(key, title, (Column(key.rstrip("s")), Column("tickets handled", "count"), Column("closed", "count"),
                              Column("median first response", "hours"), Column("reopen rate", "percent")), rows)


def automation(tickets: list[ReportTicket], minutes_per_ticket: float) -> Table:
    """What the login playbook took off the agents' hands, and what it cost in waiting."""
    seen = Counter(t.automation for t in tickets)
    solved = seen[AUTO_RESOLVED]
    row = (len(tickets), solved, share(solved, len(tickets)), seen[ESCALATED], share(seen[ESCALATED], len(tickets)),
           seen[SKIPPED], median_hours(t.resolution for t in tickets if t.automation == AUTO_RESOLVED),
           median_hours(t.resolution for t in tickets if t.automation != AUTO_RESOLVED),
           solved * minutes_per_ticket / 60)
    return Table("automation", "Automation", (
        Column("tickets", "count"), Column("auto-resolved", "count"), Column("auto-resolved share", "percent"),
        Column("escalated", "count"), Column("escalated share", "percent"), Column("skipped", "count"),
        Column("median resolution, automated", "hours"), Column("median resolution, manual", "hours"),
        Column("estimated time saved", "hours")), (row,),
        note=f"time saved: {minutes_per_ticket:g} minutes per auto-resolved ticket (reports.minutes_per_manual_ticket)",
        vertical=True)


def sla(tickets: list[ReportTicket]) -> Table:
    counts: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    for t in tickets:
        for policy, priority, metric, state in t.sla:
            counts[(policy, priority, metric)][state] += 1
    rows = []
    for (policy, priority, metric), seen in sorted(counts.items()):
        decided = seen["met"] + seen["missed"] + seen["breached"]
        rows.append((policy, priority, METRIC_NAMES[metric], seen["met"], seen["missed"], seen["breached"],
                     seen["running"] + seen["paused"], share(seen["met"], decided)))
    return Table("sla", "SLA compliance", (
        Column("policy"), Column("priority"), Column("metric"), Column("met", "count"), Column("missed", "count"),
        Column("breached", "count"), Column("open", "count"), Column("compliance", "percent")), tuple(rows),
        note="the clocks of bridge/sla, as `bridge sla report` counts them")


def overview(tickets: list[ReportTicket], days: Table, saved: Table) -> Table:
    """The few numbers that matter, first."""
    closed = sum(row[3] for row in days.rows)
    auto = saved.rows[0]
    return Table("overview", "Overview", (
        Column("opened", "count"), Column("closed", "count"), Column("backlog at end", "count"),
        Column("median first response", "hours"), Column("median resolution", "hours"),
        Column("auto-resolved share", "percent"), Column("estimated time saved", "hours")),
        ((len(tickets), closed, days.rows[-1][4] if days.rows else 0, median_hours(t.first_response for t in tickets),
          median_hours(t.resolution for t in tickets), auto[2], auto[8]),), vertical=True)


def build_report(cfg: Config, tickets: list[ReportTicket], carried: list[Carried], period: Period,
                 generated: datetime, scope: str, has_teams: bool) -> Report:
    days = daily(tickets, carried, period)
    saved = automation(tickets, cfg.reports.minutes_per_manual_ticket)
    tables = [overview(tickets, days, saved), days, hour_of_week(tickets, period), categories(tickets),
              recurring_issues(tickets, period, cfg.reports.recurring_similarity, cfg.reports.recurring_top)]
    if has_teams:
        tables.append(people(tickets, "teams", "Teams", lambda t: t.team or "no team"))
    tables += [people(tickets, "agents", "Agents", lambda t: t.agent), saved]
    if cfg.sla.policies:
        tables.append(sla(tickets))
    return Report("Support report", period, generated, scope, tuple(tables))
