"""The HTML report's charts: static SVG drawn by matplotlib (no pyplot, no display, no JavaScript)."""

from __future__ import annotations

import io

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from bridge.reports.tables import Table

# Text is drawn as paths (no font needed by the reader, nothing of a subject left as markup), "$"
# in a category name stays a dollar (no mathtext), and ids are stable from one run to the next.
STYLE = {"svg.fonttype": "path", "text.parse_math": False, "svg.hashsalt": "bridge-report",
         "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
OPENED, CLOSED, BACKLOG = "#3b6ea8", "#6aa84f", "#c0504d"
MAX_BARS = 12


def _svg(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element that scales with the page (no fixed size)."""
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight")
    text = out.getvalue()
    svg = text[text.index("<svg"):]
    head, rest = svg.split(">", 1)
    head = " ".join(part for part in head.split(" ") if not part.startswith(("width=", "height=")))
    return f'{head} role="img" preserveAspectRatio="xMidYMid meet">{rest}'


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def daily_chart(days: Table) -> str:
    """Opened and closed per day as bars, the backlog as a line."""
    with matplotlib.rc_context(STYLE):
        figure = _figure(8, 3)
        ax = figure.add_subplot()
        labels = [row[0][5:] for row in days.rows]  # MM-DD
        x = range(len(labels))
        ax.bar([i - 0.2 for i in x], [row[2] for row in days.rows], width=0.4, color=OPENED, label="opened")
        ax.bar([i + 0.2 for i in x], [row[3] for row in days.rows], width=0.4, color=CLOSED, label="closed")
        ax.plot(list(x), [row[4] for row in days.rows], color=BACKLOG, marker=".", label="backlog at day end")
        step = max(1, len(labels) // 15)
        ax.set_xticks(list(x)[::step], labels[::step])
        ax.set_ylabel("tickets")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False, ncols=3)
        return _svg(figure)


def hour_of_week_chart(table: Table) -> str:
    """Tickets opened per weekday and hour as a heat map."""
    with matplotlib.rc_context(STYLE):
        figure = _figure(8, 2.6)
        ax = figure.add_subplot()
        grid = [list(row[1:25]) for row in table.rows]
        image = ax.imshow(grid, aspect="auto", cmap="Blues", interpolation="nearest")
        ax.set_yticks(range(7), [row[0] for row in table.rows])
        ax.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
        ax.set_xlabel("hour")
        ax.spines[:].set_visible(False)
        figure.colorbar(image, ax=ax, label="tickets", shrink=0.9)
        return _svg(figure)


def categories_chart(table: Table) -> str:
    """Tickets per category, biggest on top."""
    rows = table.rows[:MAX_BARS]
    with matplotlib.rc_context(STYLE):
        figure = _figure(8, 0.5 + 0.3 * max(1, len(rows)))
        ax = figure.add_subplot()
        ax.barh([row[0][:40] for row in rows][::-1], [row[1] for row in rows][::-1], color=OPENED)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("tickets")
        return _svg(figure)


def automation_chart(table: Table) -> str:
    """Where the period's tickets went: solved by automation, escalated, skipped, or by people only."""
    tickets, solved, _, escalated, _, skipped, *_ = table.rows[0]
    parts = [("auto-resolved", solved, CLOSED), ("escalated", escalated, BACKLOG), ("skipped", skipped, "#999999"),
             ("manual only", max(0, tickets - solved - escalated - skipped), OPENED)]
    with matplotlib.rc_context(STYLE):
        figure = _figure(8, 1.2)
        ax = figure.add_subplot()
        left = 0
        for name, count, color in parts:
            ax.barh([0], [count], left=left, color=color, label=f"{name} ({count})")
            left += count
        ax.set_yticks([])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("tickets")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.6), frameon=False, ncols=4)
        return _svg(figure)
