"""A report as plain tables of typed cells: what every format (text, markdown, csv, html) prints."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bridge.reports.period import Period

Kind = Literal["text", "count", "hours", "percent", "date"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind = "text"


@dataclass(frozen=True)
class Table:
    """One section. Cells hold raw values (hours and shares as floats, None for "no data"), so csv
    keeps the numbers and the readable formats round them their own way. ``vertical``: a single
    row of figures, printed as ``name: value`` lines."""

    key: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""
    vertical: bool = False


@dataclass(frozen=True)
class Report:
    title: str
    period: Period
    generated: datetime
    scope: str  # the filters, e.g. "team Customer Care, mailbox support"
    tables: tuple[Table, ...]

    def table(self, key: str) -> Table | None:
        return next((t for t in self.tables if t.key == key), None)


def cell_text(value: Any, kind: Kind) -> str:
    """A cell as people read it: under an hour in minutes, else hours to one decimal; shares as
    whole percent; "—" for none."""
    if value is None:
        return "—"
    if kind == "hours":
        return f"{value * 60:.0f} min" if value < 1 else f"{value:.1f} h"
    if kind == "percent":
        return f"{100 * value:.0f} %"
    return str(value)


def cell_csv(value: Any, kind: Kind) -> str:
    """A cell for a spreadsheet: plain numbers (hours, fractions), empty for none."""
    if value is None:
        return ""
    if kind in ("hours", "percent"):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"
    return str(value)
