"""A report as one HTML page: its tables and inline SVG charts, for a phone, a desk or paper."""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from bridge.reports import charts
from bridge.reports.tables import Report, cell_text

CSS = {"count": "n", "hours": "n", "percent": "n", "date": "d"}  # numbers right-aligned, dates kept on one line
CHARTS = {  # table key → how it is drawn
    "daily": charts.daily_chart,
    "hour_of_week": charts.hour_of_week_chart,
    "categories": charts.categories_chart,
    "automation": charts.automation_chart,
}


def _environment() -> Environment:
    # Autoescape always on: subjects, customers and tag names come from email and Odoo.
    env = Environment(loader=PackageLoader("bridge", "templates"), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["cell"] = cell_text
    env.filters["css"] = lambda column: "issue" if column.name == "issue" else CSS.get(column.kind, "")
    return env


def as_html(report: Report) -> str:
    svgs = {t.key: Markup(draw(t)) for t in report.tables if (draw := CHARTS.get(t.key)) and t.rows}
    return _environment().get_template("report.html.j2").render(report=report, charts=svgs)
