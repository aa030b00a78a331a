"""A report as text (a terminal), markdown (a wiki or chat), csv (a spreadsheet) or json (a program)."""

from __future__ import annotations

import csv
import io
import json

from bridge.reports.tables import Report, Table, cell_csv, cell_text

RIGHT = ("count", "hours", "percent")
MAX_CELL = 60  # subjects are cut in text and markdown, never in csv


def _cells(table: Table) -> list[list[str]]:
    return [[_cut(cell_text(v, c.kind)) for v, c in zip(row, table.columns)] for row in table.rows]


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _heading(report: Report) -> list[str]:
    return [f"{report.title}: {report.period.label()}" + (f" ({report.scope})" if report.scope else ""),
            f"generated {report.generated.astimezone(report.period.zone).strftime('%Y-%m-%d %H:%M %Z')}"]


def as_text(report: Report) -> str:
    lines = _heading(report)
    for table in report.tables:
        lines += ["", table.title, "=" * len(table.title)]
        if table.vertical:
            width = max(len(c.name) for c in table.columns)
            lines += [f"{c.name:<{width}}  {cell}" for c, cell in zip(table.columns, _cells(table)[0])]
        elif not table.rows:
            lines.append("(none)")
        else:
            rows = [[c.name for c in table.columns], *_cells(table)]
            widths = [max(len(r[i]) for r in rows) for i in range(len(table.columns))]
            for n, row in enumerate(rows):
                lines.append("  ".join(cell.rjust(w) if c.kind in RIGHT else cell.ljust(w)
                                       for cell, w, c in zip(row, widths, table.columns)).rstrip())
                if n == 0:
                    lines.append("  ".join("-" * w for w in widths))
        if table.note:
            lines.append(f"({table.note})")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """A cell that cannot break the table or turn into markup: pipes, HTML and emphasis escaped."""
    for char in "\\`*_[]<>|#":
        text = text.replace(char, "\\" + char)
    return text


def as_markdown(report: Report) -> str:
    title, generated = _heading(report)
    lines = [f"# {_md(title)}", "", f"_{generated}_"]
    for table in report.tables:
        lines += ["", f"## {table.title}", ""]
        if table.vertical:
            lines += ["| figure | value |", "| --- | ---: |"]
            lines += [f"| {c.name} | {_md(cell)} |" for c, cell in zip(table.columns, _cells(table)[0])]
        elif not table.rows:
            lines.append("(none)")
        else:
            lines.append("| " + " | ".join(c.name for c in table.columns) + " |")
            lines.append("| " + " | ".join("---:" if c.kind in RIGHT else "---" for c in table.columns) + " |")
            lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in _cells(table)]
        if table.note:
            lines += ["", f"_{_md(table.note)}_"]
    return "\n".join(lines) + "\n"


def _formula_safe(text: str) -> str:
    """A spreadsheet runs a cell starting with = + - @ as a formula: quote it (OWASP's advice)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def as_csv(report: Report) -> str:
    """One block per section: a line with its key, the header, the rows, a blank line. Hours and
    shares are plain numbers (hours, fractions of 1)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for table in report.tables:
        writer.writerow([f"# {table.key}"])
        writer.writerow([c.name for c in table.columns])
        for row in table.rows:
            writer.writerow([_formula_safe(cell_csv(v, c.kind)) if c.kind == "text" else cell_csv(v, c.kind)
                             for v, c in zip(row, table.columns)])
        writer.writerow([])
    return out.getvalue()


def as_json(report: Report) -> str:
    """Every section with its raw cells (hours and shares as numbers): for programs, such as the
    weekly digest (bridge/reports/digest.py)."""
    return json.dumps({
        "title": report.title, "period": report.period.label(), "generated": report.generated.isoformat(),
        "scope": report.scope,
        "tables": [{"key": t.key, "title": t.title, "columns": [{"name": c.name, "kind": c.kind} for c in t.columns],
                    "rows": [list(row) for row in t.rows], "note": t.note} for t in report.tables],
    }, ensure_ascii=False, default=str) + "\n"
