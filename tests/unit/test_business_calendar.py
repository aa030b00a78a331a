"""Working days in the team's time zone: weekends, holidays, a start outside working days, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from bridge.sla.calendar import BusinessCalendar


def test_a_friday_afternoon_wait_of_one_working_day_ends_on_monday_afternoon() -> None:
    berlin = BusinessCalendar("Europe/Berlin")
    friday = datetime(2026, 6, 5, 13, 0, tzinfo=UTC)  # 15:00 CEST
    assert berlin.add_working_days(friday, 1) == datetime(2026, 6, 8, 13, 0, tzinfo=UTC)
    assert berlin.add_working_days(friday, 0) == friday


def test_the_dst_change_keeps_the_wall_clock_time_not_the_utc_time() -> None:
    berlin = BusinessCalendar("Europe/Berlin")
    friday = datetime(2026, 10, 23, 13, 0, tzinfo=UTC)  # 15:00 CEST; clocks go back on Sunday 25th
    assert berlin.add_working_days(friday, 1) == datetime(2026, 10, 26, 14, 0, tzinfo=UTC)  # 15:00 CET


def test_a_start_on_a_weekend_counts_from_the_next_working_midnight_and_holidays_are_skipped() -> None:
    hanoi = BusinessCalendar("Asia/Ho_Chi_Minh", holidays=frozenset({date(2026, 9, 1), date(2026, 9, 2)}))
    saturday = datetime(2026, 8, 29, 3, 0, tzinfo=UTC)
    # Monday 31 August 00:00 local, then one working day: 1 and 2 September are holidays.
    assert hanoi.add_working_days(saturday, 1) == datetime(2026, 9, 2, 17, 0, tzinfo=UTC)  # Thu 3rd 00:00 +07


def test_a_calendar_without_working_days_is_refused() -> None:
    with pytest.raises(ValueError):
        BusinessCalendar("UTC", workdays=frozenset()).add_working_days(datetime(2026, 1, 1, tzinfo=UTC), 1)
