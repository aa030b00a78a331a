"""The weekly digest's pure parts: schedule slots in the calendar's zone (DST included), the
message's numbers and escaping, and the config's checks."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigurationError
from bridge.reports.digest import digest_message, last_slot, next_slot

ZONE = ZoneInfo("Europe/Berlin")


def test_the_slot_is_the_local_time_of_the_schedule_across_a_dst_change() -> None:
    # Monday 09:00 Berlin: 08:00 UTC in winter, 07:00 UTC in summer (DST began Sunday 29 March 2026)
    assert last_slot("0 9 * * mon", ZONE, datetime(2026, 3, 25, 12, tzinfo=UTC)) == datetime(2026, 3, 23, 8, tzinfo=UTC)
    assert next_slot("0 9 * * mon", ZONE, datetime(2026, 3, 25, 12, tzinfo=UTC)) == datetime(2026, 3, 30, 7, tzinfo=UTC)


def test_a_slot_is_its_own_last_slot_to_the_minute() -> None:
    at = datetime(2026, 12, 7, 8, 0, 30, tzinfo=UTC)  # Monday 09:00:30 in Berlin
    assert last_slot("0 9 * * mon", ZONE, at) == datetime(2026, 12, 7, 8, tzinfo=UTC)
    assert last_slot("0 9 * * mon", ZONE, datetime(2026, 12, 7, 7, 59, tzinfo=UTC)) == datetime(2026, 11, 30, 8, tzinfo=UTC)


def report(recurring_rows: list[list]) -> dict:
    return {"period": "2026-11-30 – 2026-12-06 Europe/Berlin", "tables": [
        {"key": "overview", "columns": [{"name": n} for n in (
            "opened", "closed", "backlog at end", "median first response", "median resolution",
            "auto-resolved share", "estimated time saved")],
         "rows": [[120, 97, 31, 0.75, 20.5, 0.25, 3.75]]},
        {"key": "recurring", "columns": [{"name": n} for n in (
            "rank", "category", "issue", "tickets", "customers", "first seen", "last seen", "example tickets")],
         "rows": recurring_rows},
    ]}


def test_the_digest_shows_the_five_numbers_and_three_recurring_issues_escaped() -> None:
    rows = [[1, "Login", "<!channel> VPN & SSO <https://evil.example|login>", 9, 7, "", "", "1, 2"],
            [2, "Email", "Outlook keeps asking for the password", 5, 5, "", "", "3"],
            [3, "Billing", "Invoice missing", 4, 3, "", "", "4"],
            [4, "Other", "Fourth issue", 2, 2, "", "", "5"]]
    text, blocks = digest_message(report(rows), "https://support.example.com/reports/latest?token=t")
    fields = [f["text"] for b in blocks if b["type"] == "section" and "fields" in b for f in b["fields"]]
    assert fields == ["*Opened*\n120", "*Closed*\n97", "*Backlog now*\n31", "*Median first response*\n45 min",
                      "*Solved by automation*\n25 % (3.8 h saved)"]
    [recurring] = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    assert "Outlook keeps asking" in recurring and "Invoice missing" in recurring and "Fourth" not in recurring
    assert "<!channel>" not in recurring and "&lt;!channel&gt;" in recurring and "&amp;" in recurring
    assert "<https://evil" not in recurring
    assert "<https://support.example.com/reports/latest?token=t|The full report>" in str(blocks)
    assert text.startswith("Support digest: opened 120, closed 97")


def test_without_a_link_or_recurring_issues_the_digest_has_neither() -> None:
    text, blocks = digest_message(report([]), "")
    assert not any("Recurring" in str(b) for b in blocks) and "full report" not in str(blocks)


BASE = {"imap": {"username": "support"}, "smtp": {"from_address": "support@example.com"},
        "odoo": {"url": "http://odoo.example", "db": "d", "username": "u", "password": "p"}}


@pytest.mark.parametrize("digest,extra,problem", [
    ({"enabled": True, "schedule": "every monday"}, {}, "is not a cron schedule"),
    ({"enabled": True}, {}, "needs slack.enabled"),
    ({"enabled": True, "base_url": "https://s.example", "link_token": "short"}, {}, "link_token must be set"),
    ({"enabled": True, "base_url": "https://s.example", "link_token": "x" * 16},
     {"slack": {"enabled": True, "bot_token": "xoxb-1", "channel": "C1"}}, "set http.port"),
])
def test_the_digest_config_is_checked(digest: dict, extra: dict, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        parse_config({**BASE, **extra, "reports": {"digest": digest}})
