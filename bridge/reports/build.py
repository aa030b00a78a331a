"""One report end to end: read the period's tickets, compute the figures, render one format."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bridge.config import Config
from bridge.reports.figures import build_report
from bridge.reports.formats import as_csv, as_json, as_markdown, as_text
from bridge.reports.period import Period
from bridge.reports.reads import TicketSource
from bridge.reports.tables import Report


def as_html(report: Report) -> str:
    """Imported on use: matplotlib costs half a second and 30 MB that the other formats never need."""
    from bridge.reports.html import as_html as page

    return page(report)


FORMATS: dict[str, Callable[[Report], str]] = {"text": as_text, "markdown": as_markdown, "csv": as_csv,
                                               "html": as_html, "json": as_json}


def read_report(cfg: Config, period: Period, now: datetime, *, team: str = "", mailbox: str = "",
                source: TicketSource | None = None) -> Report:
    """The figures of the tickets created in ``period`` (of one team and/or mailbox if given)."""
    names = {box.name for box in cfg.mailboxes} or {cfg.imap.folder}
    if mailbox and mailbox not in names:
        raise ValueError(f"--mailbox {mailbox!r}: not one of {', '.join(sorted(names))}")
    opened = source or TicketSource(cfg)
    try:
        tickets = list(opened.tickets(period, team, mailbox, now))
        carried = opened.carried(period, team, mailbox)
        has_teams = bool(opened.view.desk.profile.team_field)
    finally:
        if source is None:
            opened.close()
    scope = ", ".join(([f"team {team}"] if team else []) + ([f"mailbox {mailbox}"] if mailbox else []))
    return build_report(cfg, tickets, carried, period, now, scope, has_teams)


def render(report: Report, fmt: str) -> str:
    return FORMATS[fmt](report)
