"""Follow-ups with an injected clock: one reminder after N working days waiting on the customer,
closed for no response M working days later; a customer's email starts a new wait."""

from __future__ import annotations

import time

import pytest

from tests.integration.harness import wait_until
from tests.integration.test_conversation import Agent, opened, reply_to, stage_of

pytestmark = pytest.mark.integration

EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAY = 86400.0


class Clock:
    """Real time moved forward by ``offset`` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def kinds(sink, kind: str) -> list:
    return [m.message for m in sink.messages if m.message["X-Bridge-Kind"] == kind]


def settle(bridge, checks: int = 2) -> None:
    """Wait until the follow-ups looked ``checks`` more times (the positive signal of a quiet check)."""
    seen = bridge.app.follow_ups.checks
    wait_until(lambda: bridge.app.follow_ups.checks >= seen + checks, what="follow-up checks")


def test_a_waiting_ticket_is_reminded_once_then_closed_for_no_response(bridge_factory, mailbox, odoo, sink):
    clock = Clock()
    bridge = bridge_factory(
        app_options={"clock": clock}, calendar={"workdays": EVERY_DAY},
        follow_ups={"waiting_stages": ["Waiting on Customer"], "remind_after_days": 2, "close_after_days": 3,
                    "close_stage": "Solved", "check_seconds": 0.1})
    agent = Agent(odoo)
    agent.call("helpdesk.stage", "create", [{"name": "Waiting on Customer", "sequence": 3}])
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    agent.stage(ticket, "Waiting on Customer")
    entered = time.time()

    clock.offset = 1.9 * DAY
    settle(bridge)
    assert not kinds(sink, "reminder")
    clock.offset = 2 * DAY + 60
    [reminder] = wait_until(lambda: kinds(sink, "reminder"), what="the reminder")
    assert reminder["Auto-Submitted"] == "auto-replied" and f"[#HD-{ticket}]" in reminder["Subject"]
    assert "within 3 working days" in reminder.get_body(("plain",)).get_content()
    clock.offset = 4.5 * DAY  # 3 working days after the reminder have not passed
    settle(bridge)
    assert len(kinds(sink, "reminder")) == 1 and stage_of(odoo, ticket) == "Waiting on Customer"
    clock.offset = (entered - time.time()) + 5 * DAY + 120
    [closing] = wait_until(lambda: kinds(sink, "closing_notice"), what="closed for no response")
    assert closing["X-Bridge-Template"] == "closed_no_response"
    assert stage_of(odoo, ticket) == "Solved"
    settle(bridge)
    assert len(kinds(sink, "reminder")) == 1 and len(kinds(sink, "closing_notice")) == 1


def test_a_customer_email_starts_a_new_wait(bridge_factory, mailbox, odoo, sink):
    clock = Clock()
    bridge = bridge_factory(
        app_options={"clock": clock}, calendar={"workdays": EVERY_DAY},
        follow_ups={"waiting_stages": ["Waiting on Customer"], "remind_after_days": 2, "check_seconds": 0.1})
    agent = Agent(odoo)
    agent.call("helpdesk.stage", "create", [{"name": "Waiting on Customer", "sequence": 3}])
    ticket, ack = opened(bridge, mailbox, odoo, sink)
    agent.stage(ticket, "Waiting on Customer")
    clock.offset = 2 * DAY + 60
    [reminder] = wait_until(lambda: kinds(sink, "reminder"), what="the first reminder")
    clock.offset = 0.0  # back to the present, then the customer answers
    reply_to(mailbox, reminder)
    wrote = time.time()
    clock.offset = 1 * DAY
    settle(bridge)
    assert len(kinds(sink, "reminder")) == 1  # the new wait has just begun
    clock.offset = (wrote - time.time()) + 2 * DAY + 60
    wait_until(lambda: len(kinds(sink, "reminder")) == 2, what="the reminder of the new wait")
    assert stage_of(odoo, ticket) == "Waiting on Customer"  # no close_after_days: never closed
