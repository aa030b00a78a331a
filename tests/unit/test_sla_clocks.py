"""SLA clocks from facts, pure: business hours, pauses and their resumption, reopening, next
response cycles in conversation order, breaches at their true time, one warning at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.sla.calendar import BusinessCalendar
from bridge.sla.clocks import TicketFacts, compute_clocks, due_events, next_deadline
from bridge.sla.policy import Targets, match_policy, priority_for
from bridge.config import PriorityRule, SlaPolicy

H = 3600.0
OFFICE = BusinessCalendar("UTC", hours=((9 * 60, 12 * 60), (13 * 60, 17 * 60)))  # Mon–Fri, lunch 12–13
ALWAYS = BusinessCalendar.around_the_clock()


def at(day: int, hour: float) -> datetime:
    """December 2026: the 4th is a Friday."""
    return datetime(2026, 12, day, tzinfo=UTC) + timedelta(hours=hour)


def targets(first: float = 0, nxt: float = 0, resolution: float = 0) -> Targets:
    return Targets("P", first * H, nxt * H, resolution * H, False)


def by_metric(clocks):
    return {(c.metric, c.cycle): c for c in clocks}


def test_a_friday_afternoon_ticket_is_due_on_monday_in_working_hours() -> None:
    facts = TicketFacts(1, created=at(4, 16))  # Fri 16:00, 1 h left on Friday
    [clock] = compute_clocks(facts, targets(first=4), OFFICE, now=at(4, 16.5))
    assert clock.deadline == at(7, 12) and clock.state == "running"  # then Mon 09:00–12:00
    [late] = compute_clocks(facts, targets(first=4), OFFICE, now=at(7, 13.5))
    assert late.state == "breached" and late.deadline == at(7, 12)


def test_the_lunch_break_does_not_count() -> None:
    facts = TicketFacts(1, created=at(7, 11))
    [clock] = compute_clocks(facts, targets(first=2), OFFICE, now=at(7, 11))
    assert clock.deadline == at(7, 14)


def test_an_answer_in_time_is_met_and_one_after_the_deadline_missed() -> None:
    made = at(7, 9)
    met = compute_clocks(TicketFacts(1, made, conversation=(("agent", at(7, 10)),)), targets(first=2), OFFICE, at(8, 0))
    missed = compute_clocks(TicketFacts(1, made, conversation=(("agent", at(7, 12.5)),)), targets(first=2), OFFICE,
                            at(8, 0))
    assert met[0].state == "met" and met[0].used == H
    assert missed[0].state == "missed" and missed[0].deadline == at(7, 11)
    assert [e.kind for e in due_events(missed, OFFICE, at(8, 0), warn_at=(0.5,), warn_before=())] == ["breach"]


def test_a_wait_on_the_customer_pauses_resolution_and_resuming_counts_on() -> None:
    made = at(7, 9)
    waiting = TicketFacts(1, made, paused_since=at(7, 10))
    [clock] = compute_clocks(waiting, targets(resolution=2), OFFICE, now=at(9, 9))
    assert clock.state == "paused" and clock.deadline is None and clock.used == H
    resumed = TicketFacts(1, made, pauses=((at(7, 10), at(8, 9)),))
    [clock] = compute_clocks(resumed, targets(resolution=2), OFFICE, now=at(8, 9.5))
    assert clock.deadline == at(8, 10) and clock.state == "running"  # 1 h before the wait, 1 h after


def test_a_closed_then_reopened_ticket_does_not_count_the_closed_time() -> None:
    made = at(7, 9)
    reopened = TicketFacts(1, made, pauses=((at(7, 10), at(9, 9)),))  # closed Mon 10:00, reopened Wed 09:00
    [clock] = compute_clocks(reopened, targets(resolution=3), OFFICE, now=at(9, 9))
    assert clock.deadline == at(9, 11)
    closed = TicketFacts(1, made, pauses=((at(7, 10), at(9, 9)),), closed_at=at(9, 10))
    [final] = compute_clocks(closed, targets(resolution=3), OFFICE, now=at(10, 0))
    assert final.state == "met" and final.used == 2 * H


def test_next_response_clocks_follow_the_conversation_order_even_within_one_second() -> None:
    same = at(7, 10)
    conversation = (("agent", at(7, 9.5)), ("customer", same), ("agent", same), ("customer", at(7, 11)),
                    ("customer", at(7, 11.5)))
    clocks = compute_clocks(TicketFacts(1, at(7, 9), conversation=conversation), targets(nxt=1), ALWAYS, at(7, 12.5))
    assert [(c.start, c.state) for c in clocks] == [(same, "met"), (at(7, 11), "breached")]


def test_no_answer_before_closing_cancels_the_response_clock() -> None:
    facts = TicketFacts(1, at(7, 9), closed_at=at(7, 9.5))
    [clock] = compute_clocks(facts, targets(first=1), OFFICE, at(9, 9))
    assert clock.state == "cancelled" and not due_events([clock], OFFICE, at(9, 9), warn_at=(0.5,), warn_before=())


def test_only_the_most_advanced_warning_is_due_and_lead_times_count_in_working_time() -> None:
    clocks = compute_clocks(TicketFacts(1, at(7, 9)), targets(first=6), OFFICE, at(7, 14.5))  # due 16:00
    [event] = due_events(clocks, OFFICE, at(7, 14.5), warn_at=(0.25, 0.5, 0.75), warn_before=(3600.0,))
    assert event.kind == "warning" and event.at == "75%" and event.moment == at(7, 14.5)
    [event] = due_events(clocks, OFFICE, at(7, 15.2), warn_at=(0.25, 0.5, 0.75), warn_before=(3600.0,))
    assert event.at == "60m-before" and event.moment == at(7, 15)
    assert next_deadline(clocks).deadline == at(7, 16)


def test_policies_match_in_order_and_priority_rules_need_subject_urgency_for_words() -> None:
    policies = [SlaPolicy(name="VIP", customer_domains=("vip.example",), first_response="30m"),
                SlaPolicy(name="Urgent", priorities=("3",), first_response="1h"),
                SlaPolicy(name="Rest", first_response="8h", around_the_clock=True)]
    assert match_policy(policies, priority="3", tags=[], team="", customer_email="a@VIP.example").policy == "VIP"
    assert match_policy(policies, priority="3", tags=[], team="", customer_email="a@x.example").first_response == H
    assert match_policy(policies, priority="0", tags=[], team="", customer_email="a@x.example").around_the_clock
    rules = [PriorityRule(priority="3", subject_words=("urgent",)), PriorityRule(priority="2", categories=("login",))]
    assert priority_for(rules, customer_email="a@x", mailbox="INBOX", category="other", subject="URGENT: vpn",
                        subject_urgency=False) is None
    assert priority_for(rules, customer_email="a@x", mailbox="INBOX", category="other", subject="URGENT: vpn",
                        subject_urgency=True) == "3"
    assert priority_for(rules, customer_email="a@x", mailbox="INBOX", category="login", subject="hi",
                        subject_urgency=False) == "2"


class _Profile:
    closed_field = "stage_id.fold"
    stage_date_field = "date_last_stage_update"
    closed_date_field = "close_date"


class _Stages:
    """Just what SlaClocks asks a desk: which stages are closed (3 = Solved)."""

    profile = _Profile()

    @staticmethod
    def stage_closed(stage_id):
        return stage_id == 3


def test_pauses_come_from_odoos_stage_history_waits_and_reopenings_alike() -> None:
    from bridge.config import parse_config
    from bridge.sla.facts import SlaClocks

    cfg = parse_config({"imap": {"username": "u"}, "smtp": {"from_address": "s@example.com"},
                        "odoo": {"url": "https://odoo.example.com", "db": "d", "username": "u", "password": "p"}})
    engine = SlaClocks(cfg, _Stages(), None, "example.com", b"k", lambda ticket: {})
    history = [("2026-12-07 10:00:00", 1, 5), ("2026-12-07 12:00:00", 5, 2), ("2026-12-07 14:00:00", 2, 3),
               ("2026-12-07 15:00:00", 3, 2), ("2026-12-07 15:30:00", 2, 5)]
    pauses, began = engine._tracked_pauses(at(7, 9), history, {5}, None)
    assert pauses == ((at(7, 10), at(7, 12)), (at(7, 14), at(7, 15))) and began == at(7, 15.5)
    closed_after_waiting = [("2026-12-07 10:00:00", 1, 5), ("2026-12-07 11:00:00", 5, 3)]
    assert engine._tracked_pauses(at(7, 9), closed_after_waiting, {5}, at(7, 11)) == (((at(7, 10), at(7, 11)),), None)


def test_an_answer_after_closing_time_on_the_deadline_day_is_in_time() -> None:
    facts = TicketFacts(1, at(7, 9), conversation=(("agent", at(7, 19)),))  # due 17:00, answered 19:00
    [clock] = compute_clocks(facts, targets(first=7), OFFICE, at(8, 0))
    assert clock.deadline == at(7, 17) and clock.state == "met"
    [waiting] = compute_clocks(TicketFacts(1, at(7, 9)), targets(first=7), OFFICE, at(7, 20))
    assert waiting.state == "running"  # no working time left over, none used beyond it
    [late] = compute_clocks(TicketFacts(1, at(7, 9)), targets(first=7), OFFICE, at(8, 9.1))
    assert late.state == "breached" and late.deadline == at(7, 17)
