"""The weekly digest end to end: at its slot (an injected clock), `bridge report` runs in a child
process against the Odoo stand-in and the state folder, the digest is posted in the Slack
stand-in's channel and emailed to the leads through the SMTP sink once per slot (also across a
restart), and its link serves the HTML report only with the token."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bridge.config import parse_config
from bridge.reports.digest import next_slot
from tests.integration.harness import BridgeThread, bridge_settings, email_bytes, free_port, wait_until, write_config
from tests.integration.test_follow_ups import Clock
from tests.integration.test_slack_flow import CHANNEL, slack_settings, strings

pytestmark = pytest.mark.integration

SCHEDULE = "0 9 * * *"
TOKEN = "digest-link-token-0123456789"


def digests(slack) -> list[dict]:
    return [m for m in slack.channel_messages(CHANNEL) if "Support digest" in " ".join(strings(m.get("blocks")))]


def mailed(sink) -> list:
    return [m for m in sink.messages if m.message["X-Bridge-Kind"] == "digest"]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_digest_is_posted_once_per_slot_with_a_link_to_the_full_report(mailbox, odoo, sink, slack, tmp_path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = bridge_settings(
        mailbox, odoo, sink, tmp_path / "state", slack=slack_settings(slack),
        http={"port": port, "webhook_token": "w" * 20},
        reports={"digest": {"enabled": True, "schedule": SCHEDULE, "period_days": 2, "base_url": base,
                            "link_token": TOKEN, "check_seconds": 0.05,
                            "email_to": ["lead@example.com", "head.of.support@example.com"]}})
    config = str(write_config(tmp_path / "config.yaml", settings))
    clock = Clock()

    def start() -> BridgeThread:
        return BridgeThread(parse_config(settings), clock=clock, config_path=config).start()

    bridge = start()
    try:
        for n in range(2):
            mailbox.append(email_bytes(subject=f"VPN drops every hour ({n})", sender=f"C{n} <c{n}@customer.example>")[0])
        wait_until(lambda: len(odoo.records("helpdesk.ticket")) == 2 and len(sink.messages) == 2, what="two tickets")
        checks = bridge.app.digest.checks
        wait_until(lambda: bridge.app.digest.checks >= checks + 3, what="the schedule looked at")
        assert not digests(slack)  # switched on: nothing is posted for a slot before it
        assert get(f"{base}/reports/latest?token={TOKEN}")[0] == 404  # no report yet

        now = datetime.fromtimestamp(clock(), UTC)
        slot = next_slot(SCHEDULE, ZoneInfo("UTC"), now + timedelta(days=1))  # its two days before include today
        clock.offset += (slot - now).total_seconds()
        [digest] = wait_until(lambda: digests(slack), timeout=60, what="the digest in the channel")
        text = " ".join(strings(digest.get("blocks")))
        assert "*Opened*\n2" in text and "VPN drops every hour" in text  # one recurring issue, two tickets
        assert f"<{base}/reports/latest?token={TOKEN}|The full report>" in text
        [mail] = wait_until(lambda: mailed(sink), what="the digest emailed to the leads")
        assert mail.rcpt_tos == ["lead@example.com", "head.of.support@example.com"]
        assert mail.message["Auto-Submitted"] == "auto-generated"
        assert "Opened: 2" in mail.message.get_body(("plain",)).get_content()
        status, page = get(f"{base}/reports/latest?token={TOKEN}")
        assert status == 200 and "<svg" in page and "VPN drops every hour" in page
        assert get(f"{base}/reports/latest")[0] == 401 and get(f"{base}/reports/latest?token=wrong-token")[0] == 401
    finally:
        bridge.stop()

    bridge = start()  # the same slot after a restart: looked at, not posted again
    try:
        checks = bridge.app.digest.checks
        wait_until(lambda: bridge.app.digest.checks >= checks + 5, what="the schedule looked at after the restart")
        assert len(digests(slack)) == 1 and len(mailed(sink)) == 1
        clock.offset += 86400  # the next slot
        wait_until(lambda: len(digests(slack)) == 2 and len(mailed(sink)) == 2, timeout=60,
                   what="the next slot's digest, posted and emailed")
        assert len({m.message["Message-ID"] for m in mailed(sink)}) == 2
    finally:
        bridge.stop()


def test_a_digest_whose_report_fails_during_an_odoo_outage_is_posted_once_odoo_is_back(
        mailbox, odoo, sink, slack, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.reports")
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state", slack=slack_settings(slack),
                               reports={"digest": {"enabled": True, "schedule": SCHEDULE, "check_seconds": 0.05}})
    config = str(write_config(tmp_path / "config.yaml", settings))
    clock = Clock()
    bridge = BridgeThread(parse_config(settings), clock=clock, config_path=config).start()
    try:
        checks = bridge.app.digest.checks
        wait_until(lambda: bridge.app.digest.checks >= checks + 2, what="the schedule looked at")
        odoo.set_down(True)
        now = datetime.fromtimestamp(clock(), UTC)
        clock.offset += (next_slot(SCHEDULE, ZoneInfo("UTC"), now) - now).total_seconds()
        wait_until(lambda: any("not made" in r.getMessage() for r in caplog.records), timeout=60,
                   what="the failed report logged")
        assert not digests(slack)
        odoo.set_down(False)
        wait_until(lambda: digests(slack), timeout=60, what="the digest once Odoo is back")
        checks = bridge.app.digest.checks
        wait_until(lambda: bridge.app.digest.checks >= checks + 3, what="the schedule looked at again")
        assert len(digests(slack)) == 1
    finally:
        odoo.set_down(False)
        bridge.stop()
