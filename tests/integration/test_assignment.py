"""Auto-assignment of new tickets against the Odoo stand-in: loads counted in Odoo (open tickets
only), turns taken in order, and an assignee already there is never replaced."""

from __future__ import annotations

import asyncio

import pytest

from bridge.mail.parse import parse_email
from bridge.pipeline.assign import AssignStage
from bridge.pipeline.job import Job
from tests.integration.harness import email_bytes, wait_until
from tests.integration.test_conversation import Agent, opened

pytestmark = pytest.mark.integration

OPERATORS = ("op.one@example.com", "op.two@example.com")


def assignee(odoo, ticket: int) -> int:
    return odoo.records("helpdesk.ticket", [("id", "=", ticket)])[0]["user_id"]


def preload(odoo, agent: Agent, open_count: int, closed_count: int) -> None:
    """Tickets already assigned to ``agent``'s user: some open, some solved (which do not count)."""
    for n in range(open_count + closed_count):
        ticket = agent.call("helpdesk.ticket", "create", [{"name": f"older {n}", "user_id": agent.uid}])
        if n >= open_count:
            agent.stage(ticket, "Solved")


def test_least_loaded_counts_open_tickets_in_odoo_and_spreads_ties(bridge_factory, mailbox, odoo, sink):
    one = Agent(odoo, login=OPERATORS[0], name="Op One")
    two = Agent(odoo, login=OPERATORS[1], name="Op Two")
    preload(odoo, one, open_count=2, closed_count=0)
    preload(odoo, two, open_count=0, closed_count=3)
    bridge = bridge_factory(assignment={"mode": "least_loaded", "operators": list(OPERATORS)})
    got = [assignee(odoo, opened(bridge, mailbox, odoo, sink, subject=f"issue {n}")[0]) for n in range(4)]
    assert got == [two.uid, two.uid, one.uid, two.uid]  # loads 2:0, 2:1, then 2:2 (tie, in turn), 3:2


def test_round_robin_takes_turns_and_the_card_shows_the_assignee(bridge_factory, mailbox, odoo, sink, slack):
    from tests.integration.test_slack_flow import cards, slack_settings, strings, thread_replies

    one = Agent(odoo, login=OPERATORS[0], name="Op One")
    two = Agent(odoo, login=OPERATORS[1], name="Op Two")
    bridge = bridge_factory(assignment={"mode": "round_robin", "operators": ["nobody@example.com", *OPERATORS]},
                            slack=slack_settings(slack))
    got = [assignee(odoo, opened(bridge, mailbox, odoo, sink, subject=f"issue {n}")[0]) for n in range(3)]
    assert got == [one.uid, two.uid, one.uid]  # the operator Odoo does not know is left out
    wait_until(lambda: len(cards(slack)) == 3, what="three cards")
    assert "Op One" in " ".join(strings(cards(slack)[0]["blocks"]))
    [told] = wait_until(lambda: thread_replies(slack, cards(slack)[1]["ts"]), what="the assignment in the thread")
    assert "Assigned to *Op Two (auto-assigned)*" in " ".join(strings(told["blocks"]))


def test_an_assignee_already_there_is_kept(bridge_factory, mailbox, odoo, sink):
    """Odoo's team rules or a quick agent may assign a ticket before the bridge's turn comes."""
    other = Agent(odoo, login="quick.agent@example.com", name="Quick Agent")
    Agent(odoo, login=OPERATORS[0], name="Op One")
    bridge = bridge_factory(assignment={"mode": "round_robin", "operators": [OPERATORS[0]]})
    ticket = other.call("helpdesk.ticket", "create", [{"name": "taken", "user_id": other.uid}])
    job = Job(key="test:kept", results={"ticket": {"ticket": ticket, "new": True}})
    job.email = parse_email(email_bytes()[0])
    result = asyncio.run_coroutine_threadsafe(AssignStage().run(job, bridge.app.ctx), bridge.loop).result(10)
    assert result == {"kept": other.uid} and assignee(odoo, ticket) == other.uid
