"""Working days and hours in the team's time zone: weekends, holidays, a lunch break, a start outside
working time, DST, and the fast long-span arithmetic checked against a slow day-by-day reference."""

from __future__ import annotations

import random
import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bridge.sla.calendar import BusinessCalendar, parse_hours


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


# Working hours for SLA clocks: working_seconds, add_working_seconds, next_working_moment.

BERLIN = ZoneInfo("Europe/Berlin")
NINE_TO_FIVE = ((540, 1020),)
LUNCH_BREAK = ((480, 720), (780, 1020))  # 08:00-12:00 and 13:00-17:00
HOUR = 3600.0


def berlin(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=BERLIN)  # type: ignore[arg-type, misc]


def slow_working_seconds(calendar: BusinessCalendar, start: datetime, end: datetime) -> float:
    """Day by day with zoneinfo, no caches and no weeks: the reference the fast path must match."""
    zone = ZoneInfo(calendar.timezone)
    total = timedelta()
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date() + timedelta(days=1):
        if day.weekday() in calendar.workdays and day not in calendar.holidays:
            for first, last in calendar.hours or ((0, 1440),):
                midnight = datetime.combine(day, time(0))
                opens = (midnight + timedelta(minutes=first)).replace(tzinfo=zone).astimezone(UTC)
                closes = (midnight + timedelta(minutes=last)).replace(tzinfo=zone).astimezone(UTC)
                low, high = max(opens, start), min(closes, end)
                if high > low:
                    total += high - low
        day += timedelta(days=1)
    return total.total_seconds()


def test_the_clock_stops_at_the_weekend() -> None:
    office = BusinessCalendar("Europe/Berlin", hours=NINE_TO_FIVE)
    friday_four = berlin(2026, 6, 5, 16, 0)
    monday_ten = datetime(2026, 6, 8, 8, 0, tzinfo=UTC)  # 10:00 CEST
    assert office.add_working_seconds(friday_four, 2 * HOUR) == monday_ten
    assert office.working_seconds(friday_four, monday_ten) == 2 * HOUR
    assert office.working_seconds(berlin(2026, 6, 6, 0, 0), berlin(2026, 6, 8, 0, 0)) == 0.0
    assert office.working_seconds(monday_ten, friday_four) == 0.0


def test_holidays_are_skipped() -> None:
    office = BusinessCalendar("Europe/Berlin", holidays=frozenset({date(2026, 6, 8)}), hours=NINE_TO_FIVE)
    friday_four = berlin(2026, 6, 5, 16, 0)
    assert office.add_working_seconds(friday_four, 2 * HOUR) == datetime(2026, 6, 9, 8, 0, tzinfo=UTC)
    assert office.working_seconds(friday_four, berlin(2026, 6, 9, 17, 0)) == 9 * HOUR


def test_work_stops_over_the_lunch_break() -> None:
    office = BusinessCalendar("Europe/Berlin", hours=LUNCH_BREAK)
    assert office.add_working_seconds(berlin(2026, 6, 9, 11, 30), HOUR) == berlin(2026, 6, 9, 13, 30)
    assert office.working_seconds(berlin(2026, 6, 9, 11, 0), berlin(2026, 6, 9, 14, 0)) == 2 * HOUR
    assert office.working_seconds(berlin(2026, 6, 9, 12, 10), berlin(2026, 6, 9, 12, 50)) == 0.0
    assert office.working_seconds(berlin(2026, 6, 9, 0, 0), berlin(2026, 6, 10, 0, 0)) == 8 * HOUR


@pytest.mark.parametrize(("start", "opens", "later"), [
    (berlin(2026, 6, 9, 7, 0), berlin(2026, 6, 9, 8, 0), berlin(2026, 6, 9, 9, 0)),  # before opening
    (berlin(2026, 6, 9, 12, 15), berlin(2026, 6, 9, 13, 0), berlin(2026, 6, 9, 14, 0)),  # lunch break
    (berlin(2026, 6, 9, 12, 0), berlin(2026, 6, 9, 13, 0), berlin(2026, 6, 9, 14, 0)),  # just as it starts
    (berlin(2026, 6, 9, 18, 0), berlin(2026, 6, 10, 8, 0), berlin(2026, 6, 10, 9, 0)),  # after closing
    (berlin(2026, 6, 5, 17, 0), berlin(2026, 6, 9, 8, 0), berlin(2026, 6, 9, 9, 0)),  # Friday closing time
    (berlin(2026, 6, 8, 10, 0), berlin(2026, 6, 9, 8, 0), berlin(2026, 6, 9, 9, 0)),  # on a holiday
    (berlin(2026, 6, 9, 9, 30), berlin(2026, 6, 9, 9, 30), berlin(2026, 6, 9, 10, 30)),  # working already
])
def test_a_start_outside_working_time_counts_from_the_next_working_period(
        start: datetime, opens: datetime, later: datetime) -> None:
    office = BusinessCalendar("Europe/Berlin", holidays=frozenset({date(2026, 6, 8)}), hours=LUNCH_BREAK)
    assert office.next_working_moment(start) == opens
    assert office.next_working_moment(start).tzinfo is UTC
    assert office.add_working_seconds(start, HOUR) == later


def test_a_duration_of_zero_or_less_returns_the_start_in_utc() -> None:
    office = BusinessCalendar("Europe/Berlin", hours=NINE_TO_FIVE)
    saturday = berlin(2026, 6, 6, 3, 0)
    for seconds in (0, 0.0, -5.0):
        moment = office.add_working_seconds(saturday, seconds)
        assert moment == saturday and moment.tzinfo is UTC


def test_dst_days_in_berlin_count_real_hours() -> None:
    every_day = BusinessCalendar("Europe/Berlin", frozenset(range(7)), hours=((60, 240), (540, 1020)))
    nine_to_five = BusinessCalendar("Europe/Berlin", frozenset(range(7)), hours=NINE_TO_FIVE)
    # Spring forward on Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
    spring, spring_end = berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 30, 0, 0)
    assert nine_to_five.working_seconds(spring, spring_end) == 8 * HOUR
    assert every_day.working_seconds(spring, spring_end) == (2 + 8) * HOUR  # 01:00-04:00 lost an hour
    assert every_day.add_working_seconds(spring, 1.5 * HOUR) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert every_day.add_working_seconds(spring, 2 * HOUR) == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)  # 04:00 CEST
    assert every_day.add_working_seconds(spring, 3 * HOUR) == datetime(2026, 3, 29, 8, 0, tzinfo=UTC)  # 10:00 CEST
    # Fall back on Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
    autumn, autumn_end = berlin(2026, 10, 25, 0, 0), berlin(2026, 10, 26, 0, 0)
    assert nine_to_five.working_seconds(autumn, autumn_end) == 8 * HOUR
    assert every_day.working_seconds(autumn, autumn_end) == (4 + 8) * HOUR  # 01:00-04:00 gained an hour
    assert every_day.add_working_seconds(autumn, 3.5 * HOUR) == datetime(2026, 10, 25, 2, 30, tzinfo=UTC)  # 03:30 CET
    assert every_day.add_working_seconds(autumn, 5 * HOUR) == datetime(2026, 10, 25, 9, 0, tzinfo=UTC)  # 10:00 CET
    # A whole week around each change: six ordinary days plus the changed Sunday.
    assert every_day.working_seconds(berlin(2026, 3, 23, 0, 0), berlin(2026, 3, 30, 0, 0)) == (6 * 11 + 10) * HOUR
    assert every_day.working_seconds(berlin(2026, 10, 19, 0, 0), berlin(2026, 10, 26, 0, 0)) == (6 * 11 + 12) * HOUR


def test_a_dst_gain_bigger_than_a_usual_week_does_not_overshoot() -> None:
    sundays = BusinessCalendar("Europe/Berlin", frozenset({6}), hours=((120, 180),))  # one hour a week
    # 25 October gives two hours (02:00 CEST to 03:00 CET), 1 November one: three hours from Monday 19th.
    assert sundays.add_working_seconds(berlin(2026, 10, 19, 0, 0), 3 * HOUR) == datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    assert sundays.working_seconds(berlin(2026, 10, 19, 0, 0), berlin(2026, 11, 2, 0, 0)) == 3 * HOUR


def test_a_weekday_office_keeps_its_wall_clock_hours_across_a_dst_weekend() -> None:
    office = BusinessCalendar("Europe/Berlin", hours=NINE_TO_FIVE)
    friday_four = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)  # 16:00 CET
    assert office.add_working_seconds(friday_four, 2 * HOUR) == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # 10:00 CEST
    friday_four = datetime(2026, 10, 23, 14, 0, tzinfo=UTC)  # 16:00 CEST
    assert office.add_working_seconds(friday_four, 2 * HOUR) == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)  # 10:00 CET


def test_a_period_boundary_inside_the_dst_gap_or_fold_is_read_with_fold_0() -> None:
    early = BusinessCalendar("Europe/Berlin", frozenset(range(7)), hours=((150, 240),))  # 02:30-04:00
    # 02:30 does not exist on 29 March; fold=0 reads it with the winter offset, as 03:30 CEST.
    assert early.working_seconds(berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 30, 0, 0)) == 0.5 * HOUR
    # 02:30 happens twice on 25 October; fold=0 takes the first (summer time, 00:30 UTC).
    assert early.working_seconds(berlin(2026, 10, 25, 0, 0), berlin(2026, 10, 26, 0, 0)) == 2.5 * HOUR
    # So 00:00-02:30 ends at 03:30 CEST, after 03:00-03:20 and halfway through 03:00-04:00: a later
    # period is clipped to start where the one before ended, and is not counted twice.
    clipped = BusinessCalendar("Europe/Berlin", frozenset(range(7)), hours=((0, 150), (180, 200), (210, 240)))
    assert clipped.working_seconds(berlin(2026, 3, 29, 0, 0), berlin(2026, 3, 30, 0, 0)) == 3 * HOUR
    assert clipped.next_working_moment(datetime(2026, 3, 29, 1, 30, tzinfo=UTC)) == datetime(2026, 3, 29, 1, 30,
                                                                                               tzinfo=UTC)
    assert clipped.add_working_seconds(berlin(2026, 3, 29, 0, 0), 3 * HOUR) == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)


def test_a_period_in_a_gap_before_midnight_stays_inside_its_day() -> None:
    nuuk = ZoneInfo("America/Nuuk")  # Saturday 28 March 2026, 23:00-24:00 -02 does not exist
    greenland = BusinessCalendar("America/Nuuk", frozenset(range(7)), hours=((0, 60), (1380, 1425)))
    saturday, sunday = datetime(2026, 3, 28, tzinfo=nuuk), datetime(2026, 3, 29, tzinfo=nuuk)
    # fold=0 reads 23:00-23:45 as 01:00-01:45 UTC, after Sunday began at 01:00 UTC: clipped to nothing,
    # or it would count twice with Sunday's 00:00-01:00.
    assert greenland.working_seconds(saturday, sunday) == HOUR
    assert greenland.working_seconds(sunday, sunday + timedelta(hours=12)) == HOUR


def test_a_day_the_zone_skipped_has_no_working_time() -> None:
    apia = ZoneInfo("Pacific/Apia")  # Samoa went from 29 to 31 December 2011, -10 to +14
    samoa = BusinessCalendar("Pacific/Apia", frozenset(range(7)), hours=NINE_TO_FIVE)
    assert samoa.working_seconds(datetime(2011, 12, 29, tzinfo=apia), datetime(2012, 1, 1, tzinfo=apia)) == 16 * HOUR
    assert samoa.add_working_seconds(datetime(2011, 12, 29, 16, 0, tzinfo=apia), 2 * HOUR) == \
        datetime(2011, 12, 31, 10, 0, tzinfo=apia)
    assert samoa.next_working_moment(datetime(2011, 12, 29, 17, 0, tzinfo=apia)) == datetime(2011, 12, 31, 9, 0,
                                                                                               tzinfo=apia)


def test_ho_chi_minh_city_has_no_dst() -> None:
    hanoi = BusinessCalendar("Asia/Ho_Chi_Minh", holidays=frozenset({date(2026, 9, 1), date(2026, 9, 2)}),
                             hours=NINE_TO_FIVE)
    monday_three = datetime(2026, 6, 8, 8, 0, tzinfo=UTC)  # 15:00 +07
    assert hanoi.add_working_seconds(monday_three, 4 * HOUR) == datetime(2026, 6, 9, 4, 0, tzinfo=UTC)  # 11:00 +07
    assert hanoi.working_seconds(datetime(2026, 6, 8, tzinfo=UTC), datetime(2026, 6, 9, tzinfo=UTC)) == 8 * HOUR
    monday_four = datetime(2026, 8, 31, 9, 0, tzinfo=UTC)  # 16:00 +07; Tuesday and Wednesday are holidays
    assert hanoi.add_working_seconds(monday_four, 2 * HOUR) == datetime(2026, 9, 3, 3, 0, tzinfo=UTC)  # Thu 10:00
    assert hanoi.working_seconds(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)) == \
        slow_working_seconds(hanoi, datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_around_the_clock_counts_every_second() -> None:
    always = BusinessCalendar.around_the_clock()
    assert always == BusinessCalendar("UTC", frozenset(range(7)), frozenset(), ())
    saturday = berlin(2026, 6, 6, 3, 7, 11)
    assert always.working_seconds(saturday, saturday + timedelta(days=400, seconds=5)) == 400 * 86400 + 5
    assert always.add_working_seconds(saturday, 1e6 + 0.25) == saturday + timedelta(seconds=1e6 + 0.25)
    assert always.next_working_moment(saturday) == saturday


ROUND_TRIP_CALENDARS = [
    BusinessCalendar("Europe/Berlin", hours=LUNCH_BREAK,
                     holidays=frozenset({date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1),
                                         date(2027, 4, 2), date(2027, 4, 5)})),
    BusinessCalendar("Europe/Berlin", frozenset(range(7)), hours=((60, 240), (540, 1020))),
    BusinessCalendar("Europe/Berlin", frozenset(range(7)), hours=((0, 150), (150, 200), (1380, 1440))),
    BusinessCalendar("Europe/Berlin", frozenset({6}), hours=((120, 180),)),  # Sundays, in the DST hour
    BusinessCalendar("America/New_York", frozenset({0, 2, 4}), hours=((0, 90), (1410, 1440))),
    # Chile changes its clocks at Saturday 24:00; Greenland skips Saturday 23:00-24:00 in spring.
    BusinessCalendar("America/Santiago", frozenset(range(7)), hours=((0, 60), (1380, 1440))),
    BusinessCalendar("America/Nuuk", frozenset(range(7)), hours=((0, 60), (1380, 1425))),
    BusinessCalendar("Asia/Ho_Chi_Minh", frozenset(range(6)), hours=NINE_TO_FIVE,
                     holidays=frozenset(date(2026, 9, 1) + timedelta(days=k) for k in range(20))),
    BusinessCalendar.around_the_clock(),
]


def test_adding_working_seconds_and_measuring_them_back_round_trips() -> None:
    rng = random.Random(1234)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(300):
        calendar = rng.choice(ROUND_TRIP_CALENDARS)
        start = base + timedelta(seconds=rng.uniform(0, 2 * 365 * 86400))
        if rng.random() < 0.3:
            start = start.astimezone(BERLIN)
        seconds = 10 ** rng.uniform(0, 7.5)  # a second to about a year of working time
        end = calendar.add_working_seconds(start, seconds)
        assert end.tzinfo is UTC and end > start
        assert abs(calendar.working_seconds(start, end) - seconds) <= 1e-6, (calendar, start, seconds)
        # The microsecond before the end is working time: the end is inside a period or at its end.
        assert calendar.working_seconds(end - timedelta(microseconds=1), end) > 0, (calendar, start, seconds)


def test_a_400_day_span_equals_the_sum_of_its_days_and_the_slow_reference() -> None:
    office = BusinessCalendar("Europe/Berlin", frozenset(range(7)), hours=((60, 240), (540, 1020)),
                              holidays=frozenset({date(2026, 3, 29), date(2026, 4, 3), date(2026, 4, 6),
                                                  date(2026, 5, 1), date(2026, 12, 25), date(2027, 1, 1)}))
    for offset in range(7):  # starting on each weekday
        start = berlin(2026, 3, 1 + offset, 10, 17, 23, 456789)
        end = start + timedelta(days=400, hours=5)
        midnights = [berlin(2026, 3, 2 + offset) + timedelta(days=k) for k in range(402)]
        edges = [start] + [moment.replace(tzinfo=BERLIN) for moment in midnights if moment < end] + [end]
        by_day = sum(office.working_seconds(a, b) for a, b in zip(edges, edges[1:], strict=False))
        fast = office.working_seconds(start, end)
        assert fast == pytest.approx(by_day, abs=1e-6)
        assert fast == pytest.approx(slow_working_seconds(office, start, end), abs=1e-6)


def test_spans_of_any_length_match_the_slow_reference() -> None:
    rng = random.Random(1234)
    calendars = [ROUND_TRIP_CALENDARS[k] for k in (0, 1, 4, 5, 7)]  # those without a boundary in a DST gap
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(200):
        calendar = rng.choice(calendars)
        start = base + timedelta(seconds=rng.uniform(0, 2 * 365 * 86400))
        end = start + timedelta(seconds=rng.choice([3600, 86400, 7 * 86400, 30 * 86400, 400 * 86400]) * rng.random())
        assert calendar.working_seconds(start, end) == pytest.approx(slow_working_seconds(calendar, start, end),
                                                                     abs=1e-6), (calendar, start, end)


def test_parse_hours_reads_periods_and_names_a_bad_one() -> None:
    assert parse_hours(["13:00-24:00", "8:30-12:00"]) == ((510, 720), (780, 1440))
    assert parse_hours(("09:00-17:00",)) == ((540, 1020),)
    assert parse_hours([]) == ()
    for bad in ("9-17", "09:00", "09:00-17:60", "25:00-26:00", "24:00-24:30", "17:00-09:00", "12:00-12:00", ""):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            parse_hours(["08:00-08:30", bad])
    with pytest.raises(ValueError, match=re.escape("'11:00-13:00' overlap '09:00-12:00'")):
        parse_hours(["09:00-12:00", "11:00-13:00"])


@pytest.mark.parametrize("hours", [
    ((600, 500),), ((-1, 10),), ((0, 1441),), ((600, 600),), ((480, 720), (700, 1020)),
    ((780, 1020), (480, 720)), ((480,),), (("08:00", "12:00"),), ((480.0, 720),),
])
def test_invalid_hours_are_refused_by_the_constructor(hours: tuple[tuple[int, int], ...]) -> None:
    with pytest.raises(ValueError, match="working hours"):
        BusinessCalendar("Europe/Berlin", hours=hours)


def test_touching_periods_are_allowed() -> None:
    assert BusinessCalendar(hours=((480, 720), (720, 1440))).hours == ((480, 720), (720, 1440))


def test_a_calendar_without_working_time_is_refused_rather_than_searched_forever() -> None:
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    never = BusinessCalendar("UTC", workdays=frozenset())
    assert never.working_seconds(start, start + timedelta(days=30)) == 0.0
    with pytest.raises(ValueError):
        never.add_working_seconds(start, 60)
    with pytest.raises(ValueError):
        never.next_working_moment(start)
    closed = BusinessCalendar("UTC", holidays=frozenset(date(2026, 1, 1) + timedelta(days=k) for k in range(3700)))
    with pytest.raises(ValueError):
        closed.add_working_seconds(start, 60)
    with pytest.raises(ValueError):
        closed.next_working_moment(start)
    reopened = BusinessCalendar("UTC", holidays=frozenset(date(2026, 1, 1) + timedelta(days=k) for k in range(3000)))
    assert reopened.add_working_seconds(start, 60) == datetime(2034, 3, 20, 0, 1, tzinfo=UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(TypeError):
        BusinessCalendar().working_seconds(datetime(2026, 1, 1), datetime(2026, 1, 2))
