"""The report's formats from a hand-made report: numbers as each format shows them, hostile text
(markup, pipes, spreadsheet formulas) made harmless; the period and the journal's outcomes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bridge.reports.build import render
from bridge.reports.journal import outcome_of
from bridge.reports.period import Period, period_of
from bridge.reports.tables import Column, Report, Table

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
HOSTILE = '<img src=x onerror="alert(1)"> | **bold** =HYPERLINK("http://evil")'


def report() -> Report:
    period = Period(datetime(2026, 11, 1, 17, tzinfo=UTC), datetime(2026, 11, 3, 17, tzinfo=UTC), ZONE)
    issues = Table("recurring", "Top 5 recurring issues", (Column("rank", "count"), Column("issue"),
                                                           Column("median", "hours"), Column("share", "percent")),
                   ((1, HOSTILE, 0.25, 0.5), (2, "-2+3", None, None)))
    figures = Table("overview", "Overview", (Column("opened", "count"), Column("median resolution", "hours")),
                    ((12, 21.5),), vertical=True)
    return Report("Support report", period, NOW, "team Care", (figures, issues))


def test_text_rounds_for_people_and_keeps_the_subject_as_written():
    text = render(report(), "text")
    assert "Support report: 2026-11-02 – 2026-11-03 Asia/Ho_Chi_Minh (team Care)" in text
    assert "opened             12\nmedian resolution  21.5 h" in text
    assert "15 min" in text and "50 %" in text and "—" in text
    assert '<img src=x onerror="alert(1)"> | **bold** =HYPERLINK("http:…' in text  # cut at 60 characters


def test_markdown_escapes_what_would_break_the_table_or_become_markup():
    markdown = render(report(), "markdown")
    row = next(line for line in markdown.splitlines() if line.startswith("| 1 |"))
    assert row.count(" | ") == 3  # the subject's pipe does not add a column
    assert "\\<img" in row and "\\*\\*bold\\*\\*" in row and "<img" not in row.replace("\\<img", "")
    assert "| --- | ---: |" in markdown and "| median resolution | 21.5 h |" in markdown


def test_csv_keeps_numbers_and_defuses_formulas():
    blocks = [list(csv.reader(io.StringIO(b))) for b in render(report(), "csv").strip().split("\n\n")]
    assert blocks[0] == [["# overview"], ["opened", "median resolution"], ["12", "21.5"]]
    assert blocks[1][2] == ["1", HOSTILE, "0.25", "0.5"]  # starts with "<": no formula
    assert blocks[1][3] == ["2", "'-2+3", "", ""]


def test_html_escapes_the_subjects():
    page = render(report(), "html")
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page and "<img" not in page
    assert "<script" not in page and '<meta name="viewport"' in page and "@media print" in page


@pytest.mark.parametrize(("since", "start", "end", "first", "last"), [
    ("7d", None, None, datetime(2026, 11, 27, 9, 30, tzinfo=UTC), NOW),
    (None, "2026-11-02", "2026-11-08", datetime(2026, 11, 1, 17, tzinfo=UTC), datetime(2026, 11, 8, 17, tzinfo=UTC)),
    (None, None, "2026-11-08", datetime(2026, 11, 1, 17, tzinfo=UTC), datetime(2026, 11, 8, 17, tzinfo=UTC)),
    (None, "2026-12-01", None, datetime(2026, 11, 30, 17, tzinfo=UTC), NOW),
])
def test_periods_are_local_days_or_a_span_up_to_now(since, start, end, first, last):
    period = period_of(since, start, end, ZONE, NOW)
    assert (period.start, period.end) == (first, last)


def test_bad_periods_are_refused():
    for args, message in (((None, "2026-11-08", "2026-11-02"), "empty"), (("7d", "2026-11-02", None), "not both"),
                          ((None, "2.11.2026", None), "--from"), (("week", None, None), "--since")):
        with pytest.raises(ValueError, match=message):
            period_of(*args, ZONE, NOW)


def test_local_days_of_a_period():
    period = period_of(None, "2026-11-02", "2026-11-04", ZONE, NOW)
    assert [d.isoformat() for d in period.days()] == ["2026-11-02", "2026-11-03", "2026-11-04"]


def test_the_journal_tells_the_playbook_outcome():
    assert outcome_of({"login": {"login": True, "outcome": "reset", "dry_run": False}}) == "auto-resolved"
    assert outcome_of({"login": {"login": True, "outcome": "reactivated", "dry_run": True}}) == "skipped"
    assert outcome_of({"login": {"login": True, "outcome": "escalated"}}) == "escalated"
    assert outcome_of({"login": {"login": False, "skipped": "not a new ticket from a person"}}) == "skipped"
    assert outcome_of({"login": {"login": False, "classified": "not a login problem"}}) == ""
    assert outcome_of({}) == ""
