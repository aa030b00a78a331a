"""`bridge report` on a seeded Odoo stand-in with known answers: counts, medians, groups, people,
automation and SLA, in every format, through the CLI; the seeding moves the stand-in's clock so
tickets open, get answered, close and reopen on the days the expectations name."""

from __future__ import annotations

import csv
import io
import xmlrpc.client
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bridge.cli import main
from bridge.config import Config, parse_config
from bridge.reports.build import read_report, render
from bridge.reports.period import period_of
from bridge.sandbox import odoo as sandbox_odoo
from bridge.sandbox import odoo_orm
from bridge.store import Store
from bridge.ticket_record import TicketBook
from tests.integration.harness import write_config
from tests.integration.test_conversation import Agent

pytestmark = pytest.mark.integration

MODEL = "helpdesk.ticket"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)  # the report is made after the period


class OdooClock:
    """The stand-in's "now" (create, write, message_post stamps), set by the seeding."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.at = NOW
        monkeypatch.setattr(odoo_orm, "now_precise", lambda: self.at.strftime("%Y-%m-%d %H:%M:%S.%f"))
        monkeypatch.setattr(odoo_orm, "now_utc", lambda: self.at.strftime("%Y-%m-%d %H:%M:%S"))
        monkeypatch.setattr(sandbox_odoo, "now_utc", lambda: self.at.strftime("%Y-%m-%d %H:%M:%S"))  # message_post

    def set(self, stamp: str) -> None:
        self.at = datetime.fromisoformat(stamp).replace(tzinfo=UTC)


@dataclass
class Seeded:
    cfg: Config
    settings: dict
    tickets: dict[str, int]  # name → ticket id


def settings_for(odoo, state: Path) -> dict:
    return {
        "bridge": {"secret": "test-secret", "log_level": "WARNING"},
        "imap": {"host": "127.0.0.1", "port": 1, "security": "plain", "username": "support", "password": "x"},
        "smtp": {"host": "127.0.0.1", "port": 1, "security": "plain", "from_address": "support@example.com"},
        "odoo": {"url": odoo.url, "db": odoo.db, "username": odoo.login, "password": odoo.password,
                 "transport": "jsonrpc", "profile": "helpdesk", "team": "Customer Care"},
        "state": {"dir": str(state)},
        "sla": {"policies": [{"name": "Standard", "first_response": "4h", "around_the_clock": True}]},
    }


# name: (created, subject, customer, category, team, agent, [(when, event)]); events: answer by the
# ticket's agent, solve, reopen. Monday 2 November to Sunday 8 November 2026 is the period.
TICKETS = {
    "old_open": ("2026-10-30 10:00", "Old question", "old@c.example", None, "Customer Care", None, []),
    "old_closed_in": ("2026-10-28 10:00", "Old migration", "old@c.example", None, "Customer Care", None,
                      [("2026-11-04 12:00", "solve")]),
    "old_closed_before": ("2026-10-29 10:00", "Older still", "old@c.example", None, "Customer Care", None,
                          [("2026-10-31 10:00", "solve")]),
    "login1": ("2026-11-02 09:00", "Cannot log in to the portal", "a@c.example", "Login", "Customer Care", "A",
               [("2026-11-02 10:00", "answer"), ("2026-11-02 11:00", "solve")]),
    "login2": ("2026-11-02 14:00", "Can't login to portal #4411", "b@c.example", "Login", "Customer Care", "A",
               [("2026-11-02 16:00", "answer"), ("2026-11-03 14:00", "solve")]),
    "login3": ("2026-11-03 10:00", "RE: cannot log in to portal", "a@c.example", "Login", "Customer Care", "A",
               [("2026-11-03 13:00", "answer")]),
    "vpn1": ("2026-11-03 11:00", "VPN disconnects every hour", "c@c.example", "VPN", "Customer Care", "B",
             [("2026-11-03 11:30", "answer"), ("2026-11-04 11:00", "solve")]),
    "vpn2": ("2026-11-04 09:00", "VPN keeps disconnecting every hour", "d@c.example", "VPN", "Customer Care", "B",
             []),
    "printer": ("2026-11-05 15:00", "Printer out of toner", "e@c.example", None, "Customer Care", "A",
                [("2026-11-05 16:00", "answer"), ("2026-11-05 17:00", "solve"), ("2026-11-06 09:00", "reopen"),
                 ("2026-11-06 10:00", "solve")]),
    "invoice": ("2026-11-07 12:00", "Invoice <script>alert(1)</script> | =SUM(A1)", "f@c.example", None, "Billing",
                None, []),
}
JOURNAL = {  # the login playbook's result of each ticket's first job (bridge/automation/playbook.py)
    "login1": {"login": True, "outcome": "reactivated", "dry_run": False},
    "login2": {"login": True, "outcome": "reset", "dry_run": False},
    "login3": {"login": True, "outcome": "escalated", "dry_run": False},
    "vpn2": {"login": False, "skipped": "not a new ticket from a person"},
    "vpn1": {"login": False, "classified": "not a login problem"},
}


def seed(odoo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Seeded:
    clock = OdooClock(monkeypatch)
    agents = {"A": Agent(odoo, login="anna@example.com", name="Anna Agent"),
              "B": Agent(odoo, login="bao@example.com", name="Bao Agent")}
    bot = xmlrpc.client.ServerProxy(odoo.url + "/xmlrpc/2/object", allow_none=True)

    def call(model: str, method: str, args: list, kwargs: dict | None = None):
        return bot.execute_kw(odoo.db, odoo.uid, odoo.password, model, method, args, kwargs or {})

    stage = {name: call("helpdesk.stage", "search", [[("name", "=", name)]])[0] for name in ("In Progress", "Solved")}
    teams = {"Customer Care": call("helpdesk.team", "search", [[("name", "=", "Customer Care")]])[0],
             "Billing": call("helpdesk.team", "create", [{"name": "Billing"}])}
    tags = {name: call("helpdesk.tag", "create", [{"name": f"Category: {name}"}]) for name in ("Login", "VPN")}
    other_tag = call("helpdesk.tag", "create", [{"name": "VIP"}])
    events: list[tuple[str, str, int, str | None]] = []
    ids: dict[str, int] = {}
    for name, (created, subject, email, category, team, agent, later) in TICKETS.items():
        clock.set(created)
        partner = call("res.partner", "create", [{"name": email.split("@")[0], "email": email}])
        vals = {"name": subject, "partner_id": partner, "partner_email": email, "team_id": teams[team],
                "description": f"<p>{subject}</p>",
                "tag_ids": [(6, 0, [other_tag] + ([tags[category]] if category else []))]}
        if agent:
            vals["user_id"] = agents[agent].uid
        ids[name] = call(MODEL, "create", [vals])
        events += [(when, what, ids[name], agent) for when, what in later]
    for when, what, ticket, agent in sorted(events):
        clock.set(when)
        if what == "answer":
            agents[agent].comment(ticket, "<p>Please try again now.</p>")
        else:
            call(MODEL, "write", [[ticket], {"stage_id": stage["Solved" if what == "solve" else "In Progress"]}])
    clock.at = NOW
    settings = settings_for(odoo, tmp_path / "state")
    store = Store(settings["state"]["dir"])
    book = TicketBook(store.tickets)
    for name, ticket in ids.items():
        if name != "invoice":  # created in Odoo directly: the bridge has no record of it
            book.seen(ticket, model=MODEL, customer_email=TICKETS[name][2], customer_name="", origin="email",
                      mailbox="INBOX", subject=TICKETS[name][1])
    for name, login in JOURNAL.items():
        store.jobs.put(f"<{name}@c.example>", {"key": f"<{name}@c.example>", "status": "done", "results": {
            "ticket": {"ticket": ids[name], "new": True}, "login": login}})
    store.jobs.put("<reply@c.example>", {"key": "<reply@c.example>", "status": "done", "results": {
        "ticket": {"ticket": ids["login1"], "new": False}, "login": {"login": False, "skipped": "a reply"}}})
    store.close()
    return Seeded(parse_config(settings), settings, ids)


@pytest.fixture
def seeded(odoo, tmp_path, monkeypatch) -> Seeded:
    return seed(odoo, tmp_path, monkeypatch)


def week(cfg: Config):
    return period_of(None, "2026-11-02", "2026-11-08", ZoneInfo(cfg.calendar.timezone), NOW)


def rows(report, key: str) -> list[tuple]:
    table = report.table(key)
    assert table is not None, key
    return [tuple(r) for r in table.rows]


def test_counts_medians_groups_people_automation_and_sla_are_the_known_answers(seeded, odoo):
    calls = odoo.call_count()
    report = read_report(seeded.cfg, week(seeded.cfg), NOW)
    assert odoo.call_count() - calls <= 14  # one page: a few calls each, plus one-time look-ups
    assert rows(report, "daily") == [
        ("2026-11-02", "Mon", 2, 1, 3), ("2026-11-03", "Tue", 2, 1, 4), ("2026-11-04", "Wed", 1, 2, 3),
        ("2026-11-05", "Thu", 1, 0, 4), ("2026-11-06", "Fri", 0, 1, 3), ("2026-11-07", "Sat", 1, 0, 4),
        ("2026-11-08", "Sun", 0, 0, 4)]
    [overview] = rows(report, "overview")
    assert overview == (7, 5, 4, 1.0, 21.5, 2 / 7, 0.25)
    assert rows(report, "categories") == [("Login", 3, 3 / 7, 2.0, 13.0), ("VPN", 2, 2 / 7, 0.5, 24.0),
                                          ("uncategorised", 2, 2 / 7, 1.0, 19.0)]
    week_rows = {r[0]: r for r in rows(report, "hour_of_week")}
    assert week_rows["Mon"][1 + 9] == 1 and week_rows["Mon"][1 + 14] == 1 and week_rows["Mon"][-1] == 2
    assert sum(r[-1] for r in week_rows.values()) == 7
    ids = seeded.tickets
    assert rows(report, "recurring") == [
        (1, "Login", "Cannot log in to the portal", 3, 2, "2026-11-02", "2026-11-03",
         f"{ids['login1']}, {ids['login2']}, {ids['login3']}"),
        (2, "VPN", "VPN disconnects every hour", 2, 2, "2026-11-03", "2026-11-04", f"{ids['vpn1']}, {ids['vpn2']}")]
    assert rows(report, "agents") == [("Anna Agent", 4, 3, 1.5, 0.25), ("Bao Agent", 2, 1, 0.5, 0.0),
                                      ("unassigned", 1, 0, None, 0.0)]
    assert rows(report, "teams") == [("Customer Care", 6, 4, 1.0, 1 / 6), ("Billing", 1, 0, None, 0.0)]
    assert rows(report, "automation") == [(7, 2, 2 / 7, 1, 1 / 7, 1, 13.0, 21.5, 0.25)]
    assert rows(report, "sla") == [("Standard", "0", "first response", 5, 0, 2, 0, 5 / 7)]


def test_team_and_mailbox_narrow_the_report(seeded):
    cfg = seeded.cfg
    billing = read_report(cfg, week(cfg), NOW, team="Billing")
    assert rows(billing, "overview")[0][:3] == (1, 0, 1)
    assert [r[2:5] for r in rows(billing, "daily")][-1] == (0, 0, 1)
    inbox = read_report(cfg, week(cfg), NOW, mailbox="INBOX")  # the ticket made in Odoo has no mailbox
    assert rows(inbox, "overview")[0][:3] == (6, 5, 3)
    with pytest.raises(ValueError, match="--mailbox 'sales'"):
        read_report(cfg, week(cfg), NOW, mailbox="sales")


def test_every_format_carries_the_same_figures_and_escapes_the_subjects(seeded):
    report = read_report(seeded.cfg, week(seeded.cfg), NOW)
    text = render(report, "text")
    assert "2026-11-04  Wed           1       2                   3" in text
    assert "median first response  1.0 h" in text and "estimated time saved   15 min" in text
    assert "Bao Agent                 2       1                 30 min          0 %" in text
    markdown = render(report, "markdown")
    assert "| 2026-11-04 | Wed | 1 | 2 | 3 |" in markdown
    assert "| 1 | Login | Cannot log in to the portal | 3 | 2 | 2026-11-02 | 2026-11-03 |" in markdown
    assert "| estimated time saved | 15 min |" in markdown
    blocks = {}
    for block in render(report, "csv").strip().split("\n\n"):
        lines = list(csv.reader(io.StringIO(block)))
        blocks[lines[0][0].removeprefix("# ")] = lines[1:]
    assert blocks["daily"][0] == ["day", "weekday", "opened", "closed", "backlog at day end"]
    assert blocks["daily"][3] == ["2026-11-04", "Wed", "1", "2", "3"]
    assert blocks["overview"][1] == ["7", "5", "4", "1", "21.5", "0.2857", "0.25"]
    assert blocks["categories"][1] == ["Login", "3", "0.4286", "2", "13"]
    html = render(report, "html")
    assert html.count("<svg") == 4 and "<script" not in html
    assert '<td class="issue">Cannot log in to the portal</td>' in html


def test_the_cli_writes_each_format_to_a_file(seeded, tmp_path, capsys):
    config = write_config(tmp_path / "config.yaml", seeded.settings)
    for fmt in ("text", "markdown", "csv", "html"):
        out = tmp_path / f"report.{fmt}"
        assert main(["report", "--config", str(config), "--from", "2026-11-02", "--to", "2026-11-08",
                     "--format", fmt, "--output", str(out)]) == 0
        assert out.stat().st_size > 500
    assert "Cannot log in to the portal" in (tmp_path / "report.text").read_text()
    assert main(["report", "--config", str(config), "--since", "7d", "--from", "2026-11-02"]) == 2
    assert "not both" in capsys.readouterr().err
