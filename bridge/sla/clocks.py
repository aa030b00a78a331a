"""SLA clocks of one ticket from Odoo's facts, in working time: first response, next response
(one per customer message that follows an answer) and resolution (paused while waiting on the
customer). Pure: the same facts and ``now`` give the same clocks, whenever and however often the
bridge looks, so a restart or a day offline changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bridge.sla.calendar import BusinessCalendar
from bridge.sla.policy import Targets

Interval = tuple[datetime, datetime]
EPSILON = 1e-6  # seconds: the calendar's arithmetic is exact to the microsecond


@dataclass(frozen=True)
class TicketFacts:
    """What Odoo says about a ticket, as the clocks need it (aware UTC datetimes, sorted)."""

    ticket_id: int
    created: datetime
    # The conversation in Odoo's order (message ids): ("customer", when) for the customer's
    # emails, ("agent", when) for public answers by people (chatter comments, their emails).
    # Order decides what answers what: two messages may carry the same second.
    conversation: tuple[tuple[str, datetime], ...] = ()
    pauses: tuple[Interval, ...] = ()  # finished waits on the customer
    paused_since: datetime | None = None  # in a pause stage now, since
    closed_at: datetime | None = None  # in a closed stage now, since


@dataclass(frozen=True)
class Clock:
    """One running or finished clock. ``deadline``: when its target is (was) reached, None while
    paused before reaching it; ``state``: running, paused, breached (running past the deadline),
    met, missed (stopped after the deadline) or cancelled (closed without an answer)."""

    metric: str
    cycle: str  # names this clock among the metric's clocks (next response: the customer message)
    start: datetime
    target: float
    deadline: datetime | None
    stopped: datetime | None
    used: float  # working seconds counted, until ``stopped`` or now
    state: str
    pauses: tuple[Interval, ...] = field(default=(), repr=False)
    paused_since: datetime | None = field(default=None, repr=False)

    def moment(self, calendar: BusinessCalendar, seconds: float) -> datetime | None:
        """When ``seconds`` of this clock's working time are (were) used; None if a pause now
        holds it before that."""
        return reach(calendar, self.start, self.pauses, self.paused_since, seconds)


def reach(calendar: BusinessCalendar, start: datetime, pauses: tuple[Interval, ...], paused_since: datetime | None,
          seconds: float) -> datetime | None:
    """The moment ``seconds`` of working time after ``start`` have passed outside the pauses."""
    moment, left = start, seconds
    for begin, end in pauses:
        if end <= moment:
            continue
        begin = max(begin, moment)
        available = calendar.working_seconds(moment, begin)
        if available >= left:
            return calendar.add_working_seconds(moment, left)
        left -= available
        moment = end
    if paused_since is not None:
        begin = max(paused_since, moment)
        available = calendar.working_seconds(moment, begin)
        if available >= left:
            return calendar.add_working_seconds(moment, left)
        return None
    return calendar.add_working_seconds(moment, left)


def used(calendar: BusinessCalendar, start: datetime, until: datetime, pauses: tuple[Interval, ...],
         paused_since: datetime | None) -> float:
    """Working seconds from ``start`` to ``until`` outside the pauses."""
    total = calendar.working_seconds(start, until)
    for begin, end in (*pauses, *(((paused_since, until),) if paused_since else ())):
        begin, end = max(begin, start), min(end, until)
        if end > begin:
            total -= calendar.working_seconds(begin, end)
    return max(0.0, total)


def _clock(calendar: BusinessCalendar, metric: str, cycle: str, start: datetime, target: float,
           stop: datetime | None, now: datetime, pauses: tuple[Interval, ...] = (),
           paused_since: datetime | None = None, cancelled: bool = False) -> Clock:
    pauses = tuple(p for p in pauses if p[1] > start)
    # Breached once more working time than the target has passed: an answer in the evening after
    # a deadline at closing time used no more working time than allowed, so it is in time.
    if stop is not None:
        deadline = reach(calendar, start, pauses, None, target)
        spent = used(calendar, start, stop, pauses, None)
        state = "cancelled" if cancelled else "met" if spent <= target + EPSILON else "missed"
        return Clock(metric, cycle, start, target, deadline, stop, spent, state, pauses)
    deadline = reach(calendar, start, pauses, paused_since, target)
    spent = used(calendar, start, now, pauses, paused_since)
    if deadline is None:
        state = "paused"
    else:
        state = "breached" if spent > target + EPSILON else "paused" if paused_since else "running"
    return Clock(metric, cycle, start, target, deadline, None, spent, state, pauses, paused_since)


def compute_clocks(facts: TicketFacts, targets: Targets, calendar: BusinessCalendar, now: datetime) -> list[Clock]:
    """Every clock the policy's targets give this ticket, oldest first."""
    clocks: list[Clock] = []
    answers = [when for who, when in facts.conversation if who == "agent"]
    closed = facts.closed_at
    if targets.first_response:
        first = max(answers[0], facts.created) if answers else None
        stop = first if first is not None else closed
        clocks.append(_clock(calendar, "first_response", "1", facts.created, targets.first_response, stop, now,
                             cancelled=first is None and closed is not None))
    if targets.next_response:
        for start, answer in _waits(facts.conversation):
            stop = answer if answer is not None else closed
            clocks.append(_clock(calendar, "next_response", start.strftime("%Y%m%dT%H%M%S"), start,
                                 targets.next_response, stop, now, cancelled=answer is None and closed is not None))
    if targets.resolution:
        clocks.append(_clock(calendar, "resolution", "1", facts.created, targets.resolution, closed, now,
                             facts.pauses, facts.paused_since))
    return clocks


def _waits(conversation: tuple[tuple[str, datetime], ...]) -> list[tuple[datetime, datetime | None]]:
    """Each customer message that follows an answer, with the answer to it (None: not yet)."""
    waits: list[tuple[datetime, datetime | None]] = []
    answered, waiting = False, None
    for who, when in conversation:
        if who == "agent":
            if waiting is not None:
                waits.append((waiting, max(when, waiting)))
                waiting = None
            answered = True
        elif answered and waiting is None:
            waiting = when
    if waiting is not None:
        waits.append((waiting, None))
    return waits


@dataclass(frozen=True)
class Due:
    """An SLA event that is due: a warning (``at``: the fraction or lead time that triggered it)
    or a breach; ``moment``: when it became due (a breach's true time)."""

    kind: str  # warning | breach
    clock: Clock
    at: str
    moment: datetime

    @property
    def key(self) -> str:
        return f"{self.clock.metric}:{self.clock.cycle}:{self.kind}:{self.at}"


def due_events(clocks: list[Clock], calendar: BusinessCalendar, now: datetime, *, warn_at: tuple[float, ...],
               warn_before: tuple[float, ...]) -> list[Due]:
    """For each clock: its breach if it is past its deadline (running or stopped late), else the
    most advanced warning due now (one, however many thresholds passed while nobody looked)."""
    events: list[Due] = []
    for clock in clocks:
        if clock.state in ("breached", "missed") and clock.deadline is not None:
            events.append(Due("breach", clock, "deadline", clock.deadline))
            continue
        if clock.state != "running":
            continue
        thresholds = [(f"{int(round(f * 100))}%", clock.target * f) for f in warn_at]
        thresholds += [(f"{int(lead // 60)}m-before", clock.target - lead) for lead in warn_before if lead < clock.target]
        passed = [(label, moment) for label, seconds in thresholds
                  if (moment := clock.moment(calendar, seconds)) is not None and moment <= now]
        if passed:
            label, moment = max(passed, key=lambda item: item[1])
            events.append(Due("warning", clock, label, moment))
    return events


def next_deadline(clocks: list[Clock]) -> Clock | None:
    """The open clock whose deadline comes first (breached ones included), for the card."""
    open_clocks = [c for c in clocks if c.stopped is None and c.deadline is not None]
    return min(open_clocks, key=lambda c: c.deadline) if open_clocks else None
