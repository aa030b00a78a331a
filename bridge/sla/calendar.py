"""The business calendar: which days count as working days in the support team's time zone.

Follow-up reminders wait N *working* days (a ticket set to "waiting on the customer" on Friday
afternoon is not chased on Saturday). Days are counted in the configured IANA time zone, so a
DST change moves the wall-clock time, not the day. Working hours within a day are the SLA
issue's to add here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class BusinessCalendar:
    """Working weekdays (0 = Monday) and holidays, in ``timezone``."""

    timezone: str = "UTC"
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})
    holidays: frozenset[date] = frozenset()

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
