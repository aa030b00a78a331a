"""The period a report covers: from ``--since`` or ``--from``/``--to``, in the team's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bridge.sla.report import since_moment


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC-aware datetimes; ``zone`` is whose days and hours the report counts."""

    start: datetime
    end: datetime
    zone: ZoneInfo

    def days(self) -> list[date]:
        """Every local calendar day the period touches, in order."""
        first = self.start.astimezone(self.zone).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(self.zone).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def day_end(self, day: date) -> datetime:
        """The end of a local day (midnight after it), or the period's end if sooner."""
        return min(self.end, datetime.combine(day + timedelta(days=1), time(), self.zone))

    def label(self) -> str:
        """Whole local days as their first and last dates, any other span to the minute."""
        start, end = self.start.astimezone(self.zone), self.end.astimezone(self.zone)
        if start.time() == end.time() == time():
            return f"{start.date()} – {(end - timedelta(days=1)).date()} {self.zone.key}"
        fmt = "%Y-%m-%d %H:%M"
        return f"{start.strftime(fmt)} – {end.strftime(fmt)} {self.zone.key}"


def _local_day(text: str, zone: ZoneInfo, what: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(text), time(), zone)
    except ValueError:
        raise ValueError(f"{what} {text!r}: use a date like 2026-11-30") from None


def period_of(since: str | None, start: str | None, end: str | None, zone: ZoneInfo, now: datetime) -> Period:
    """``--since 7d`` ends now; ``--from``/``--to`` are local dates, both included (``--to`` alone:
    the 7 days up to it, ``--from`` alone: up to now)."""
    if since and (start or end):
        raise ValueError("give --since or --from/--to, not both")
    if start or end:
        stop = _local_day(end, zone, "--to") + timedelta(days=1) if end else now
        begin = _local_day(start, zone, "--from") if start else stop - timedelta(days=7)
    else:
        stop, begin = now, since_moment(since or "7d", now)
    if begin >= stop:
        raise ValueError("the period is empty: --from must come before --to")
    return Period(begin, stop, zone)
