"""The business calendar: which days and hours count as working time in the support team's time zone.

Follow-up reminders wait N *working* days (a ticket set to "waiting on the customer" on Friday
afternoon is not chased on Saturday). Days are counted in the configured IANA time zone, so a
DST change moves the wall-clock time, not the day.

SLA clocks count working *seconds*: ``hours`` lists each working day's periods in local wall-clock
minutes, so a clock stops overnight, at the weekend, on holidays and over a lunch break. The
arithmetic runs on integer microseconds since the epoch, so adding a duration and measuring it
back gives exactly that duration; each local day's periods are converted to UTC once and cached,
and long spans are counted in whole weeks plus the days that differ from their weekday's usual
total (holidays, DST changes), so a year-long clock costs a few microseconds.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import NamedTuple
from zoneinfo import ZoneInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_MICROSECOND = timedelta(microseconds=1)
_DAY = 86_400_000_000  # microseconds
_MINUTE = 60_000_000
_WHOLE_DAY = ((0, 1440),)
_SEARCH_DAYS = 3660  # this many days without working time: the calendar has none to give
_PERIOD = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")


class _Day(NamedTuple):
    """One local day in UTC microseconds: its window [start, end) and its working periods in it."""

    ordinal: int
    start: int
    end: int
    periods: tuple[tuple[int, int], ...]
    total: int


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp would drift by a fraction of a µs)."""
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _overlap(periods: tuple[tuple[int, int], ...], start: int, end: int) -> int:
    """Working µs of the periods inside [start, end) (a plain loop: this is the hot path)."""
    total = 0
    for first, last in periods:
        if last > start and first < end:
            total += (last if last < end else end) - (first if first > start else start)
    return total


def _spend(periods: tuple[tuple[int, int], ...], after: int, left: int) -> tuple[int | None, int]:
    """Spend ``left`` µs of the periods' working time after ``after``: the moment it runs out
    (None if the periods run out first) and what is still left to spend."""
    for first, last in periods:
        if last > after:
            first = max(first, after)
            if left <= last - first:
                return first + left, 0
            left -= last - first
    return None, left


def parse_hours(spec: list[str] | tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Working periods like ``["08:00-12:00", "13:00-17:00"]`` as sorted (start, end) minutes after
    midnight, for ``BusinessCalendar.hours``; "24:00" is the end of the day. ValueError names the
    period that is malformed, empty or overlapping another."""
    parsed: list[tuple[int, int, str]] = []
    for text in spec:
        match = _PERIOD.fullmatch(text)
        if match is None:
            raise ValueError(f"working hours {text!r}: expected a period like 09:00-17:00")
        start_hour, start_minute, end_hour, end_minute = map(int, match.groups())
        if start_minute > 59 or end_minute > 59 or max(start_hour * 60 + start_minute, end_hour * 60 + end_minute) > 1440:
            raise ValueError(f"working hours {text!r}: not a time of day (00:00 to 24:00)")
        parsed.append((start_hour * 60 + start_minute, end_hour * 60 + end_minute, text))
    parsed.sort()
    previous_end, previous_text = 0, ""
    for start, end, text in parsed:
        if start >= end:
            raise ValueError(f"working hours {text!r}: the period must end after it starts")
        if start < previous_end:
            raise ValueError(f"working hours {text!r} overlap {previous_text!r}")
        previous_end, previous_text = end, text
    return tuple((start, end) for start, end, _ in parsed)


@dataclass(frozen=True)
class BusinessCalendar:
    """Working weekdays (0 = Monday), holidays and each working day's hours, in ``timezone``.

    ``hours`` are (start, end) minutes after local midnight, sorted and apart, e.g.
    ((480, 720), (780, 1020)) for 08:00-12:00 and 13:00-17:00; empty means the whole day.
    Periods are wall-clock times: a period boundary that a DST change makes nonexistent or
    ambiguous is read with zoneinfo's default fold=0 -- an ambiguous time (clocks going back) is
    its first occurrence, a nonexistent one (clocks going forward) takes the offset from before
    the change, so 02:30 in Berlin's spring gap means 03:30 summer time. A period whose ends that
    reading puts out of order is clipped to stay after the period before it and inside its day
    (so nothing counts twice, and a day a zone skipped, Samoa's 30 December 2011, has none).
    So 09:00-17:00 is always 8 real hours, and 01:00-04:00 is 2 hours on the spring-forward day
    and 4 on the fall-back day.
    """

    timezone: str = "UTC"
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    holidays: frozenset[date] = frozenset()
    hours: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        previous_end = 0
        for period in self.hours:
            if not (isinstance(period, tuple) and len(period) == 2 and all(type(minute) is int for minute in period)):
                raise ValueError(f"working hours {period!r}: expected a (start minute, end minute) pair")
            start, end = period
            if not 0 <= start < end <= 1440:
                raise ValueError(f"working hours {period!r}: needs 0 <= start < end <= 1440 minutes after midnight")
            if start < previous_end:
                raise ValueError(f"working hours {period!r} in {self.hours!r}: overlaps or comes before the period "
                                 "ahead of it (periods are sorted and apart)")
            previous_end = end

    @classmethod
    def around_the_clock(cls) -> BusinessCalendar:
        """Every hour of every day, for 24/7 policies."""
        return cls("UTC", frozenset(range(7)), frozenset(), ())

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.workdays and day not in self.holidays

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The moment ``days`` working days after ``start`` (an aware datetime), at the same wall
        time; a start outside working days counts from the next working day's midnight."""
        zone = ZoneInfo(self.timezone)
        local = start.astimezone(zone)
        if not self.workdays:
            raise ValueError("a business calendar needs at least one working day")
        if not self.is_working_day(local.date()):
            day = local.date()
            while not self.is_working_day(day):
                day += timedelta(days=1)
            local = datetime.combine(day, time(0), zone)
        day, left = local.date(), days
        while left > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return datetime.combine(day, local.timetz().replace(tzinfo=None), zone).astimezone(UTC)

    def working_seconds(self, start: datetime, end: datetime) -> float:
        """Working time between two aware datetimes, in seconds (0.0 if ``end`` is not later)."""
        first, last = _micros(start), _micros(end)
        if last <= first:
            return 0.0
        head, tail = self._day_at(first), self._day_at(last)
        if head.ordinal == tail.ordinal:
            return _overlap(head.periods, first, last) / 1_000_000
        return (_overlap(head.periods, first, head.end) + self._whole_days(head.ordinal + 1, tail.ordinal)
                + _overlap(tail.periods, tail.start, last)) / 1_000_000

    def add_working_seconds(self, start: datetime, seconds: float) -> datetime:
        """The moment (UTC) at which ``seconds`` of working time after ``start`` have passed,
        counting from the next working period if ``start`` is outside one; it is inside a working
        period or at its end. ValueError if the calendar has no working time to give."""
        if seconds <= 0:
            return start.astimezone(UTC)
        week = self._require_working_time()
        after = _micros(start)
        day = self._day_at(after)
        done, left = _spend(day.periods, after, round(seconds * 1_000_000))
        ordinal, idle = day.ordinal + 1, 0
        while done is None:
            weeks = left // week - 1  # whole weeks that surely leave some of the count to spend
            while weeks > 0 and (gained := self._whole_days(ordinal, ordinal + 7 * weeks)) >= left:
                weeks //= 2  # more DST gain than expected: only in odd calendars
            if weeks > 0:
                left -= gained
                ordinal += 7 * weeks
                idle = 0 if gained else idle + 7 * weeks
            else:
                day = self._day(ordinal)
                done, left = _spend(day.periods, day.start, left)
                ordinal += 1
                idle = 0 if day.total else idle + 1
            if idle > _SEARCH_DAYS:
                raise ValueError(f"no working time in {_SEARCH_DAYS} days after {start.isoformat()}")
        return _moment(done)

    def next_working_moment(self, moment: datetime) -> datetime:
        """``moment`` (in UTC) if it is working time, else the start of the next working period."""
        self._require_working_time()
        after = _micros(moment)
        day = self._day_at(after)
        for _ in range(_SEARCH_DAYS + 1):
            done, _left = _spend(day.periods, after, 0)
            if done is not None:
                return _moment(done)
            day = self._day(day.ordinal + 1)
        raise ValueError(f"no working time in {_SEARCH_DAYS} days after {moment.isoformat()}")

    def _require_working_time(self) -> int:
        """A usual week's working microseconds; ValueError if there are none."""
        week = self._running[7]
        if not week:
            raise ValueError("a business calendar needs at least one working day")
        return week

    @cached_property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _running(self) -> tuple[int, ...]:
        """Usual working µs of the first k days of a fortnight starting on Monday, k = 0..14, so
        any run of up to 7 days from any weekday is one subtraction (holidays and DST aside)."""
        daily = sum(end - start for start, end in self.hours or _WHOLE_DAY) * _MINUTE
        running = [0]
        for index in range(14):
            running.append(running[-1] + (daily if index % 7 in self.workdays else 0))
        return tuple(running)

    @cached_property
    def _days(self) -> dict[int, _Day]:
        """Local days by proleptic ordinal, built on first use: a few hundred a year of clocks."""
        return {}

    @cached_property
    def _deviations_by_year(self) -> dict[int, tuple[tuple[int, ...], tuple[int, ...]]]:
        return {}

    @cached_property
    def _offset_guess(self) -> int:
        """A UTC offset of the zone in µs, to guess an instant's local day (``_day_at`` corrects it)."""
        offset = datetime(2026, 1, 1, tzinfo=self._zone).utcoffset()
        return offset // _MICROSECOND if offset is not None else 0

    def _local(self, day: date, minute: int) -> int:
        """The epoch µs of a wall-clock minute of ``day`` (1440 = the next midnight), with fold=0."""
        if minute == 1440:
            day, minute = day + timedelta(days=1), 0
        return _micros(datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=self._zone))

    def _day(self, ordinal: int) -> _Day:
        day = self._days.get(ordinal)
        if day is None:
            day = self._days[ordinal] = self._build_day(ordinal)
        return day

    def _build_day(self, ordinal: int) -> _Day:
        """A local day's window and working periods in epoch µs. Converting each boundary through
        zoneinfo (rather than adding minutes to midnight) is what makes DST days come out right;
        the clipping keeps periods in order where a boundary falls in a spring-forward gap."""
        day = date.fromordinal(ordinal)
        start, end = self._local(day, 0), self._local(day, 1440)
        periods: list[tuple[int, int]] = []
        if self.is_working_day(day):
            cursor = start
            for first_minute, last_minute in self.hours or _WHOLE_DAY:
                first = max(self._local(day, first_minute), cursor)
                cursor = min(max(self._local(day, last_minute), first), end)
                if cursor > first:
                    periods.append((first, cursor))
        return _Day(ordinal, start, end, tuple(periods), sum(last - first for first, last in periods))

    def _day_at(self, micros: int) -> _Day:
        """The local day whose window holds the instant: a day guessed from one UTC offset of the
        zone, then moved until its window holds it (which also settles a DST gap around midnight,
        where the instant's wall-clock date and its window can differ)."""
        day = self._day(_EPOCH_ORDINAL + (micros + self._offset_guess) // _DAY)
        while micros < day.start:
            day = self._day(day.ordinal - 1)
        while micros >= day.end:
            day = self._day(day.ordinal + 1)
        return day

    def _whole_days(self, first: int, last: int) -> int:
        """Working µs of the local days with ordinals in [first, last): whole usual weeks, the
        usual days left over, then each day in between that differs from its weekday's usual."""
        count = last - first
        if count < 7:
            return sum(self._day(ordinal).total for ordinal in range(first, last))
        weeks, rest = divmod(count, 7)
        weekday = (first + 6) % 7  # ordinal 1, 0001-01-01, is a Monday
        total = weeks * self._running[7] + self._running[weekday + rest] - self._running[weekday]
        for year in range(date.fromordinal(first).year, date.fromordinal(last - 1).year + 1):
            ordinals, running = self._deviations(year)
            total += running[bisect_left(ordinals, last)] - running[bisect_left(ordinals, first)]
        return total

    def _deviations(self, year: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The days of ``year`` whose working time differs from their weekday's usual (holidays on
        working days; days that a DST change makes shorter or longer than 24 hours, computed
        exactly) as sorted ordinals and the running sum of the differences (one longer)."""
        found = self._deviations_by_year.get(year)
        if found is not None:
            return found
        ordinals: list[int] = []
        running = [0]
        midnight = self._local(date(year, 1, 1), 0)
        for ordinal in range(date(year, 1, 1).toordinal(), date(year + 1, 1, 1).toordinal()):
            day = date.fromordinal(ordinal)
            next_midnight = self._local(day, 1440)
            if next_midnight - midnight != _DAY or day in self.holidays:
                usual = self._running[day.weekday() + 1] - self._running[day.weekday()]
                deviation = self._day(ordinal).total - usual
                if deviation:
                    ordinals.append(ordinal)
                    running.append(running[-1] + deviation)
            midnight = next_midnight
        found = self._deviations_by_year[year] = (tuple(ordinals), tuple(running))
        return found
