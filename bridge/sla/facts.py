"""A ticket's SLA clocks from what Odoo returns: its row, its messages (who wrote what when) and
the pauses the monitor saw; shared by the monitor and ``bridge sla show``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bridge.config import WEEKDAYS, CalendarConfig, Config
from bridge.mail.thread_ids import ticket_from_message_id
from bridge.odoo.changes import OdooChanges
from bridge.odoo.rpc import as_id, many2one, odoo_time
from bridge.odoo.tickets import TicketDesk
from bridge.sla.calendar import BusinessCalendar, parse_hours
from bridge.sla.clocks import Clock, TicketFacts, compute_clocks
from bridge.sla.policy import Targets, match_policy

METRIC_NAMES = {"first_response": "first response", "next_response": "next response", "resolution": "resolution"}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def business_calendar(cal: CalendarConfig, *, hours: bool = True) -> BusinessCalendar:
    """The team's calendar (``calendar:``): with its working hours for SLA clocks, or whole
    working days (``hours=False``) for follow-ups."""
    return BusinessCalendar(cal.timezone, frozenset(WEEKDAYS.index(day) for day in cal.workdays),
                            frozenset(cal.holidays), parse_hours(cal.hours) if hours else ())


class SlaClocks:
    """Policy, facts and clocks of a ticket read from Odoo. ``sla_of`` gives the ticket record's
    SLA facts (the pauses seen), ``domain``/``secret`` recognise the bridge's agent mails."""

    def __init__(self, cfg: Config, desk: TicketDesk, changes: OdooChanges, domain: str, secret: bytes,
                 sla_of: Callable[[int], dict[str, Any]]) -> None:
        self.cfg = cfg
        self.desk = desk
        self.changes = changes
        self.domain = domain
        self.secret = secret
        self.sla_of = sla_of
        self.business = business_calendar(cfg.calendar)
        self.always = BusinessCalendar.around_the_clock()

    def calendar(self, targets: Targets) -> BusinessCalendar:
        return self.always if targets.around_the_clock else self.business

    def clocks_of(self, row: dict[str, Any], messages: list[dict[str, Any]], internal: set[int],
                  tags: dict[int, str], pause_ids: set[int], now: datetime,
                  history: list[tuple[str, int, int]] | None = None,
                  sla: dict[str, Any] | None = None,
                  known: TicketFacts | None = None) -> tuple[Targets | None, list[Clock]]:
        """The policy and clocks of one ticket as read (also for ``bridge sla show``); ``history``:
        its stage changes from Odoo's tracking, or None to use the pauses the monitor saw;
        ``sla``: the record's SLA facts when the caller has them (else ``sla_of`` is asked);
        ``known``: its facts when the caller already has them (``bridge report``)."""
        targets = self._targets(row, tags)
        if targets is None:
            return None, []
        facts = known or self.facts(row, messages, internal, pause_ids,
                                    self.sla_of(as_id(row["id"])) if sla is None else sla, history)
        return targets, compute_clocks(facts, targets, self.calendar(targets), now)

    def _held(self, stage_id: int | None, pause_ids: set[int]) -> bool:
        return bool(stage_id) and (stage_id in pause_ids or self.desk.stage_closed(stage_id))

    def _tracked_pauses(self, created: datetime, history: list[tuple[str, int, int]], pause_ids: set[int],
                        closed_at: datetime | None) -> tuple[tuple[tuple[datetime, datetime], ...], datetime | None]:
        """The finished holds (waiting on the customer, or closed and reopened) from the stage
        history, and when the current one began (None if none is going on)."""
        pauses: list[tuple[datetime, datetime]] = []
        began = created if history and self._held(history[0][1], pause_ids) else None
        for stamp, _, new in history:
            when = odoo_time(stamp)
            if when is None:
                continue
            if self._held(new, pause_ids):
                began = began or when
            elif began is not None:
                pauses.append((began, when))
                began = None
        if closed_at is not None and began is not None and began < closed_at:  # waited, then closed
            pauses.append((began, closed_at))
            began = None
        return tuple(pauses), began

    def _targets(self, row: dict[str, Any], tags: dict[int, str]) -> Targets | None:
        profile = self.desk.profile
        team = many2one(row.get(profile.team_field))[1] if profile.team_field else ""
        return match_policy(self.cfg.sla.policies, priority=str(row.get("priority") or "0"),
                            tags=[tags.get(as_id(t), "") for t in row.get("tag_ids") or []], team=team,
                            customer_email=str(row.get("partner_email") or ""))

    def facts(self, row: dict[str, Any], messages: list[dict[str, Any]], internal: set[int], pause_ids: set[int],
              sla: dict[str, Any], history: list[tuple[str, int, int]] | None = None) -> TicketFacts:
        """Who answered when, the holds and the closure of one ticket: what its clocks run on, and
        what ``bridge report`` measures first responses and resolutions by."""
        profile = self.desk.profile
        conversation: list[tuple[str, datetime]] = []
        for message in sorted(messages, key=lambda m: as_id(m["id"])):
            when = odoo_time(message.get("date") or message.get("create_date"))
            if when is None:
                continue
            author = many2one(message.get("author_id"))[0]
            if self._agent_mail(str(message.get("message_id") or "")):
                conversation.append(("agent", when))  # an agent's answer sent by the bridge (Slack, emailed)
            elif message.get("message_type") == "comment":
                subtype = many2one(message.get("subtype_id"))[0]
                if author in internal and subtype == self.changes.discussion_subtype():
                    conversation.append(("agent", when))
            elif message.get("message_type") == "email" and author not in internal:
                conversation.append(("customer", when))
        stage_id = many2one(row.get("stage_id"))[0]
        entered = odoo_time(row.get(profile.stage_date_field)) or odoo_time(row.get("write_date"))
        closed = self.desk.stage_closed(stage_id)
        created = odoo_time(row.get("create_date")) or entered
        closed_at = (odoo_time(row.get(profile.closed_date_field)) or entered) if closed else None
        paused_since = entered if stage_id in pause_ids and not closed else None
        if history is not None:
            pauses, began = self._tracked_pauses(created, history, pause_ids, closed_at)
            paused_since = (began or entered) if paused_since else None
        else:
            seen = tuple((odoo_time(a), odoo_time(b)) for a, b in sla.get("pauses") or [])
            pauses = tuple(p for p in seen if p[0] and p[1])  # type: ignore[misc]
        return TicketFacts(ticket_id=as_id(row["id"]), created=created, conversation=tuple(conversation),
                           pauses=pauses, paused_since=paused_since, closed_at=closed_at)

    def _agent_mail(self, message_id: str) -> bool:
        return message_id.startswith("<hd.agent.") and ticket_from_message_id(
            message_id, self.domain, self.secret) is not None
