"""SLA end to end with an injected clock (no sleeping): warnings and breaches posted once, with
their true time, in the Slack thread, as an Odoo tag and a note; clocks from Odoo's facts across
restarts, pauses, priority changes, tickets created while the bridge was off, Slack down."""

from __future__ import annotations

import time

import pytest

from tests.integration.harness import BridgeThread, make_config, wait_until
from tests.integration.test_conversation import Agent, opened, reply_to
from tests.integration.test_follow_ups import Clock
from tests.integration.test_slack_flow import cards, slack_settings, strings, thread_replies

pytestmark = pytest.mark.integration

HOUR = 3600.0
OPS = "S0OPS"


def sla_settings(**extra) -> dict:
    settings = {
        "enabled": True, "check_seconds": 0.1, "warn_at": [0.5],
        "policies": [
            {"name": "Urgent", "priorities": ["3"], "first_response": "15m", "resolution": "2h",
             "around_the_clock": True},
            {"name": "Standard", "first_response": "1h", "next_response": "1h", "resolution": "8h",
             "around_the_clock": True},
        ],
    }
    settings.update(extra)
    return settings


def start(bridge_factory, slack, clock, **extra):
    return bridge_factory(app_options={"clock": clock}, sla=sla_settings(**extra),
                          slack=slack_settings(slack, mentions={"sla_breach": f"subteam:{OPS}"}))


def texts(slack, ticket_card) -> list[str]:
    return [" ".join(strings(m.get("blocks"))) for m in thread_replies(slack, ticket_card["ts"])]


def settle(bridge, sweeps: int = 2) -> None:
    """The positive signal of a quiet sweep: the monitor looked ``sweeps`` more times."""
    seen = bridge.app.sla.sweeps
    wait_until(lambda: bridge.app.sla.sweeps >= seen + sweeps, what="SLA sweeps")


def tags_of(odoo, ticket: int) -> list[str]:
    [row] = odoo.records("helpdesk.ticket", [("id", "=", ticket)])
    return [t["name"] for t in odoo.records("helpdesk.tag") if t["id"] in row["tag_ids"]]


def notes_with(odoo, ticket: int, text: str) -> list[str]:
    return [m["body"] for m in odoo.records("mail.message", [("res_id", "=", ticket)]) if text in (m["body"] or "")]


def created_at(odoo, ticket: int) -> float:
    [row] = odoo.records("helpdesk.ticket", [("id", "=", ticket)])
    return time.mktime(time.strptime(row["create_date"][:19] + " UTC", "%Y-%m-%d %H:%M:%S %Z"))


def test_a_warning_then_a_breach_each_once_with_its_true_time(bridge_factory, mailbox, odoo, sink, slack):
    clock = Clock()
    bridge = start(bridge_factory, slack, clock)
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    [card] = wait_until(lambda: cards(slack), what="the card")
    wait_until(lambda: "first response by" in " ".join(strings(cards(slack)[0]["blocks"])), what="deadline on card")
    assert "(on track)" in " ".join(strings(cards(slack)[0]["blocks"]))

    clock.offset = 0.6 * HOUR
    wait_until(lambda: any("SLA first response" in t and "60% of the time used" in t for t in texts(slack, card)),
               what="the warning (past 50 %: 60 % used when seen)")
    wait_until(lambda: "(at risk)" in " ".join(strings(cards(slack)[0]["blocks"])), what="card at risk")
    clock.offset = 1.1 * HOUR
    wait_until(lambda: any("first response breached" in t for t in texts(slack, card)), what="the breach")
    breach = next(m for m in thread_replies(slack, card["ts"]) if "first response breached" in m["text"])
    assert breach["text"].startswith(f"<!subteam^{OPS}>")  # the configured mention, never <!channel>
    wait_until(lambda: "SLA first response breached" in tags_of(odoo, ticket), what="the Odoo tag")
    [note] = wait_until(lambda: notes_with(odoo, ticket, "SLA first response breached"), what="the note")
    due = time.strftime("%Y-%m-%d %H:%M", time.gmtime(created_at(odoo, ticket) + HOUR))
    assert due in note  # the true breach time, not when the bridge noticed
    clock.offset = 1.5 * HOUR
    settle(bridge)
    assert sum("breached" in t for t in texts(slack, card)) == 1
    assert sum("of the time used" in t for t in texts(slack, card)) == 1


def test_a_restart_after_the_deadline_posts_the_breach_once(mailbox, odoo, sink, slack, tmp_path):
    clock = Clock()
    cfg = make_config(mailbox, odoo, sink, tmp_path / "state", sla=sla_settings(warn_at=[0.9]),
                      slack=slack_settings(slack))
    with BridgeThread(cfg, clock=clock) as bridge:
        ticket, _ = opened(bridge, mailbox, odoo, sink)
        wait_until(lambda: cards(slack), what="the card")
        settle(bridge)
    clock.offset = 3 * HOUR  # the bridge was down across the first response deadline
    for _ in range(2):
        with BridgeThread(cfg, clock=clock) as bridge:
            settle(bridge, 3)
    [card] = cards(slack)
    assert sum("first response breached" in t for t in texts(slack, card)) == 1
    assert not any("% of the time used" in t for t in texts(slack, card))  # stale warnings are not posted
    assert len(notes_with(odoo, ticket, "SLA first response breached")) == 1


def test_an_answer_in_time_meets_it_and_the_customer_reply_starts_the_next_response_clock(
        bridge_factory, mailbox, odoo, sink, slack):
    clock = Clock()
    bridge = start(bridge_factory, slack, clock, warn_at=[0.9])
    ticket, ack = opened(bridge, mailbox, odoo, sink)
    [card] = wait_until(lambda: cards(slack), what="the card")
    Agent(odoo).comment(ticket, "<p>Looking at it</p>")
    reply_to(mailbox, ack)  # the customer writes again after the answer
    wait_until(lambda: "next response by" in " ".join(strings(cards(slack)[0]["blocks"])), what="next response")
    clock.offset = 1.5 * HOUR
    wait_until(lambda: any("next response breached" in t for t in texts(slack, card)), what="next response breach")
    assert not any("first response breached" in t for t in texts(slack, card))


def test_waiting_on_the_customer_pauses_resolution(bridge_factory, mailbox, odoo, sink, slack):
    clock = Clock()
    agent = Agent(odoo)
    agent.call("helpdesk.stage", "create", [{"name": "Waiting on Customer", "sequence": 3}])
    bridge = start(bridge_factory, slack, clock, pause_stages=["Waiting on Customer"], policies=[
        {"name": "Resolve", "resolution": "1h", "around_the_clock": True}])
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    [card] = wait_until(lambda: cards(slack), what="the card")
    agent.stage(ticket, "Waiting on Customer")
    wait_until(lambda: "Next SLA" in " ".join(strings(cards(slack)[0]["blocks"])) and
               "paused" in " ".join(strings(cards(slack)[0]["blocks"])), what="card shows paused")
    clock.offset = 5 * HOUR  # Odoo's stamps stay in the present: the wait is still going on
    settle(bridge)
    assert not any("breached" in t for t in texts(slack, card))
    assert bridge.app.ctx.tickets.get(ticket).sla["held_since"]  # the wait's start, from Odoo's stage date


def test_raising_the_priority_in_odoo_tightens_the_clock(bridge_factory, mailbox, odoo, sink, slack):
    clock = Clock()
    bridge = start(bridge_factory, slack, clock, warn_at=[0.9])
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    [card] = wait_until(lambda: cards(slack), what="the card")
    clock.offset = 0.4 * HOUR  # inside Standard's 1 h, past Urgent's 15 min
    settle(bridge)
    assert not any("breached" in t for t in texts(slack, card))
    Agent(odoo).call("helpdesk.ticket", "write", [[ticket], {"priority": "3"}])
    wait_until(lambda: any("first response breached" in t and "Urgent" in t for t in texts(slack, card)),
               what="the urgent policy's breach")


def test_a_ticket_created_in_odoo_while_the_bridge_was_off_breaches_once(bridge_factory, mailbox, odoo, sink, slack):
    agent = Agent(odoo)
    ticket = agent.call("helpdesk.ticket", "create", [{"name": "Phoned in", "priority": "3"}])
    clock = Clock()
    clock.offset = 1 * HOUR
    bridge = start(bridge_factory, slack, clock)
    [card] = wait_until(lambda: cards(slack), what="a card for the breach")
    wait_until(lambda: any("first response breached" in t for t in texts(slack, card)), what="the breach")
    settle(bridge)
    assert sum("first response breached" in t for t in texts(slack, card)) == 1
    assert bridge.app.ctx.tickets.get(ticket).origin == "odoo"


def test_slack_down_when_the_breach_happens_delivers_it_later_once(bridge_factory, mailbox, odoo, sink, slack):
    clock = Clock()
    bridge = start(bridge_factory, slack, clock, warn_at=[0.9])
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    [card] = wait_until(lambda: cards(slack), what="the card")
    slack.down()
    clock.offset = 1.1 * HOUR
    wait_until(lambda: "SLA first response breached" in tags_of(odoo, ticket), what="the tag while Slack is down")
    slack.up()
    wait_until(lambda: any("first response breached" in t for t in texts(slack, card)), timeout=20,
               what="the breach after Slack came back")
    settle(bridge)
    assert sum("first response breached" in t for t in texts(slack, card)) == 1


def test_closing_posts_the_summary_and_priority_rules_set_new_tickets(bridge_factory, mailbox, odoo, sink, slack):
    clock = Clock()
    bridge = start(bridge_factory, slack, clock, warn_at=[0.9],
                   priority_rules=[{"priority": "3", "customer_domains": ["customer.example"]}])
    ticket, _ = opened(bridge, mailbox, odoo, sink)
    assert odoo.records("helpdesk.ticket", [("id", "=", ticket)])[0]["priority"] == "3"
    [card] = wait_until(lambda: cards(slack), what="the card")
    agent = Agent(odoo)
    agent.comment(ticket, "<p>Done</p>")
    agent.stage(ticket, "Solved")
    wait_until(lambda: any("SLA summary" in t for t in texts(slack, card)), what="the summary")
    summary = next(t for t in texts(slack, card) if "SLA summary" in t)
    assert "policy Urgent" in summary and "first response: met" in summary and "resolution: met" in summary
    settle(bridge)
    assert sum("SLA summary" in t for t in texts(slack, card)) == 1


def test_sla_show_and_report_print_the_clocks_beside_a_running_bridge(bridge_factory, mailbox, odoo, sink, slack,
                                                                      tmp_path):
    from tests.integration.harness import bridge_settings, write_config
    from tests.integration.test_cli import bridge_cli

    clock = Clock()
    bridge = start(bridge_factory, slack, clock)
    answered, _ = opened(bridge, mailbox, odoo, sink, subject="answered")
    waiting, _ = opened(bridge, mailbox, odoo, sink, subject="waiting")
    agent = Agent(odoo)
    agent.comment(answered, "<p>On it</p>")
    # Enterprise computes its own SLAs too: shown beside the bridge's, never enforced
    sla = agent.call("helpdesk.sla", "create", [{"name": "Odoo 4h reply"}])
    agent.call("helpdesk.sla.status", "create", [{"ticket_id": answered, "sla_id": sla, "status": "reached",
                                                  "deadline": "2026-01-05 13:00:00",
                                                  "reached_datetime": "2026-01-05 10:00:00"}])
    agent.call("helpdesk.sla.status", "create", [{"ticket_id": waiting, "sla_id": sla, "status": "failed",
                                                  "deadline": "2026-01-05 14:00:00"}])
    config = write_config(tmp_path / "c.yaml", bridge_settings(mailbox, odoo, sink, tmp_path / "state",
                                                               sla=sla_settings()))
    shown = bridge_cli("sla", "show", str(answered), "--config", str(config))
    assert shown.returncode == 0, shown.stderr
    assert f"ticket {answered}: policy Standard" in shown.stdout and "24/7" in shown.stdout
    assert any(line.split()[:3] == ["first", "response", "met"] for line in shown.stdout.splitlines())
    assert "Odoo's own SLAs (shown, not enforced: the bridge enforces policy Standard)" in shown.stdout
    [own] = [line for line in shown.stdout.splitlines() if "Odoo 4h reply" in line]
    assert own.split()[3:6] == ["reached", "deadline", "2026-01-05"] and "reached 2026-01-05 10:00:00" in own
    report = bridge_cli("sla", "report", "--since", "1d", "--config", str(config))
    assert report.returncode == 0, report.stderr
    [row] = [line for line in report.stdout.splitlines() if "first response" in line]
    assert row.split()[:2] == ["Standard", "0"] and row.split()[4:7] == ["1", "0", "0"]  # met, missed, breached
    [own] = [line for line in report.stdout.splitlines() if line.startswith("Odoo 4h reply")]
    assert own.split()[3:] == ["1", "1", "0"]  # reached, failed, ongoing
    assert waiting != answered


def test_the_customers_answer_moves_a_waiting_ticket_on_and_ends_the_pause(bridge_factory, mailbox, odoo, sink, slack):
    from tests.integration.test_conversation import stage_of

    clock = Clock()
    agent = Agent(odoo)
    agent.call("helpdesk.stage", "create", [{"name": "Waiting on Customer", "sequence": 3}])
    bridge = start(bridge_factory, slack, clock, pause_stages=["Waiting on Customer"], resume_stage="In Progress")
    ticket, ack = opened(bridge, mailbox, odoo, sink)
    agent.stage(ticket, "Waiting on Customer")
    wait_until(lambda: bridge.app.ctx.tickets.get(ticket).sla.get("held_since"), what="the pause seen")
    reply_to(mailbox, ack)
    assert stage_of(odoo, ticket) == "In Progress"
    [pause] = wait_until(lambda: bridge.app.ctx.tickets.get(ticket).sla.get("pauses"), what="the pause recorded")
    assert pause[0] <= pause[1]


def test_a_vip_partner_tag_makes_a_new_ticket_urgent(bridge_factory, mailbox, odoo, sink, slack):
    agent = Agent(odoo)
    vip = agent.call("res.partner.category", "create", [{"name": "VIP"}])
    agent.call("res.partner", "create", [{"name": "Carol", "email": "carol@customer.example",
                                         "category_id": [(6, 0, [vip])]}])
    bridge = start(bridge_factory, slack, Clock(), priority_rules=[{"priority": "3", "partner_tags": ["vip"]}])
    carol, _ = opened(bridge, mailbox, odoo, sink, sender="Carol <carol@customer.example>", subject="from a VIP")
    other, _ = opened(bridge, mailbox, odoo, sink, subject="from someone else")
    priority = {t["id"]: t["priority"] for t in odoo.records("helpdesk.ticket")}
    assert priority[carol] == "3" and priority[other] != "3"


@pytest.mark.parametrize("version,flavour,profile", [(16, "enterprise", "helpdesk"), (17, "oca", "helpdesk_mgmt"),
                                                     (19, "enterprise", "project_task")])
def test_stage_history_is_read_from_odoos_tracking_on_every_version(version, flavour, profile):
    from bridge.config import OdooConfig
    from bridge.odoo.rpc import OdooRPC
    from bridge.odoo.sla_reads import SlaReader
    from bridge.odoo.tickets import TicketDesk
    from bridge.sandbox.odoo import OdooSandbox

    with OdooSandbox(version=version, ticket_flavour=flavour) as odoo:
        cfg = OdooConfig(url=odoo.url, db=odoo.db, username=odoo.login, password=odoo.password, profile=profile,
                         project="Support" if profile == "project_task" else "")
        rpc = OdooRPC(cfg)
        desk = TicketDesk(rpc, cfg)
        ticket = desk.create_ticket(subject="tracked", description_html="<p>x</p>", partner_id=None, email="", name="")
        desk.set_stage(ticket, "In Progress")
        desk.set_stage(ticket, "New")
        history = SlaReader(rpc, desk).stage_history([ticket])[ticket]
        progress, new = desk.stage_id("In Progress"), desk.stage_id("New")
        assert [(old, to) for _, old, to in history][-2:] == [(new, progress), (progress, new)]
        assert all(len(stamp) == 19 for stamp, _, _ in history)
        rpc.close()


def test_switching_the_sla_on_over_an_old_backlog_tells_nobody_about_old_breaches(
        bridge_factory, mailbox, odoo, sink, slack):
    agent = Agent(odoo)
    old = agent.call("helpdesk.ticket", "create", [{"name": "Long forgotten"}])
    clock = Clock()
    clock.offset = 3 * 24 * HOUR  # the SLA is switched on three days after the ticket came in
    bridge = start(bridge_factory, slack, clock, backfill_hours=24)
    wait_until(lambda: bridge.app.ctx.tickets.get(old) and bridge.app.ctx.tickets.get(old).sla.get("posted"),
               what="the old breach recorded")
    settle(bridge)
    assert cards(slack) == [] and not notes_with(odoo, old, "breached")
    assert any(":first_response:" in key and key.endswith(":breach:deadline")
               for key in bridge.app.ctx.tickets.get(old).sla["posted"])
