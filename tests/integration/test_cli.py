"""The `bridge` command as an operator uses it: check, quarantine list/retry, outbox, demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.harness import REPO, bridge_settings, email_bytes, wait_until, write_config

pytestmark = pytest.mark.integration


def bridge_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_check_reports_every_service(mailbox, odoo, sink, tmp_path):
    config = write_config(tmp_path / "c.yaml", bridge_settings(mailbox, odoo, sink, tmp_path / "state"))
    result = bridge_cli("check", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["ok", "imap"], ["ok", "smtp"], ["ok", "odoo"]]
    assert "IDLE" in lines[0] and "helpdesk.ticket" in lines[2]


def test_check_tries_hr_and_lms_when_automation_is_on(mailbox, odoo, sink, tmp_path):
    from bridge.sandbox.hr import HrSandbox
    from bridge.sandbox.lms import LmsSandbox

    with HrSandbox() as hr, LmsSandbox() as lms:
        settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state")
        settings["automation"] = {"enabled": True, "hr": {"url": hr.url, "auth_value": "Bearer hr-token"},
                                  "lms": {"url": lms.url, "auth_value": "Bearer wrong-token"}}
        result = bridge_cli("check", "--config", str(write_config(tmp_path / "c.yaml", settings)))
    assert result.returncode == 1
    names = [line.split()[:2] for line in result.stdout.splitlines()]
    assert names[3:] == [["ok", "hr"], ["FAIL", "lms"]], result.stdout
    assert "wrong-token" not in result.stdout


def test_check_fails_on_bad_credentials_without_showing_them(mailbox, odoo, sink, tmp_path):
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state")
    settings["odoo"]["password"] = "wrong-Secret-123"
    settings["imap"]["password"] = "wrong-imap-Secret-456"
    result = bridge_cli("check", "--config", str(write_config(tmp_path / "c.yaml", settings)))
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "FAIL imap" in out and "FAIL odoo" in out and "ok   smtp" in out
    assert "wrong-Secret-123" not in out and "wrong-imap-Secret-456" not in out


def test_check_names_a_mistyped_key(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("imap: {username: u, pasword: x}\nsmtp: {from_address: a@b.c}\n"
                      "odoo: {url: http://x, db: d, username: u, password: p}\n")
    result = bridge_cli("check", "--config", str(config))
    assert result.returncode == 2
    assert "imap.pasword: unknown key" in result.stderr


def test_quarantine_list_and_retry(bridge_factory, mailbox, odoo, sink, tmp_path):
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state")
    config = write_config(tmp_path / "c.yaml", settings)
    odoo.fail_next("helpdesk.ticket", "create", error="validation", count=3)
    raw, mid = email_bytes(subject="refused at first")
    bridge = bridge_factory()
    mailbox.append(raw)
    wait_until(lambda: mailbox.uids(mailbox.quarantine), timeout=20)
    listing = bridge_cli("quarantine", "list", "--config", str(config))
    assert mid in listing.stdout and "rejected 3 times" in listing.stdout

    retried = bridge_cli("quarantine", "retry", mid, "--config", str(config))
    assert retried.returncode == 0, retried.stdout + retried.stderr
    wait_until(lambda: [t for t in odoo.records("helpdesk.ticket") if t["name"] == "refused at first"],
               timeout=20, what="ticket after retry")
    assert mailbox.uids(mailbox.quarantine) == []
    bridge.stop()
    assert mid not in bridge_cli("quarantine", "list", "--config", str(config)).stdout


def test_demo_runs_the_whole_flow():
    result = bridge_cli("demo", timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Timeline" in out and "Summary" in out
    assert "01-new-request.eml" in out and "QUARANTINED" in out
    assert "matched ticket #1 by references" in out and "matched ticket #1 by subject tag" in out


def test_outbox_dead_letter_list_and_retry(bridge_factory, mailbox, odoo, sink, tmp_path):
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state")
    config = write_config(tmp_path / "c.yaml", settings)
    sink.fail_next(550, count=1)
    bridge_factory()
    raw, mid = email_bytes(subject="reply refused")
    mailbox.append(raw)
    key = f"ack:{mid}"
    wait_until(lambda: "\tdead\t" in bridge_cli("outbox", "list", "--config", str(config)).stdout, timeout=20,
               what="the refused reply dead-lettered")
    listing = bridge_cli("outbox", "list", "--config", str(config)).stdout
    assert key in listing and "550" in listing
    retried = bridge_cli("outbox", "retry", key, "--config", str(config))
    assert retried.returncode == 0, retried.stderr
    [mail] = sink.wait_for(1, timeout=20)
    assert mail.message["In-Reply-To"] == mid
    wait_until(lambda: f"{key}\tsmtp\tsent" in bridge_cli("outbox", "list", "--all", "--config", str(config)).stdout)
    assert bridge_cli("outbox", "retry", key, "--config", str(config)).returncode == 1  # already sent
