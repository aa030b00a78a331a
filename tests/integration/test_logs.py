"""Structured logs from a real bridge process: JSON lines with the email key and ticket as
fields, no configured secret and no customer address anywhere in the log."""

from __future__ import annotations

import json

import pytest

from tests.integration.harness import bridge_settings, email_bytes, start_process, wait_until, write_config
from tests.integration.test_flow import done

pytestmark = pytest.mark.integration


def test_json_lines_carry_the_work_and_hide_secrets_and_addresses(mailbox, odoo, sink, tmp_path):
    secret = "s3cr3t-Bridge-Signing-Key-9f8e7d6c"
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state")
    settings["bridge"].update(secret=secret, log_format="json", log_level="DEBUG")
    config = write_config(tmp_path / "config.yaml", settings)
    log_path = tmp_path / "bridge.log"
    raw, mid = email_bytes(sender="Dana Whitfield <dana.whitfield@customer.example>", subject="Printer jammed",
                           body=f"My colleague bob.tran@customer.example says the key is {secret}")
    uid = mailbox.append(raw)
    process = start_process(config, log_path)
    try:
        wait_until(lambda: done(mailbox, uid), timeout=30, what="email processed")
        sink.wait_for(1)
        wait_until(lambda: "sent to" in log_path.read_text(), what="the send logged")
    finally:
        process.terminate()
        process.wait(15)
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    created = [e for e in lines if "created ticket" in e["message"]]
    assert created and created[0]["email"] == mid  # the Message-ID (the email key) is not masked
    assert created[0]["mailbox"] == mailbox.folder
    ticket = int(created[0]["message"].split("created ticket ")[1].split()[0])
    # lines written in the Odoo worker threads carry the email's fields too
    calls = [e for e in lines if e["logger"] == "bridge.odoo.rpc" and "HTTP 200" in e["message"]]
    assert calls and any(e.get("email") == mid and e.get("ticket") == ticket for e in calls)
    sent = [e for e in lines if "sent to" in e["message"]]
    assert sent and sent[0]["effect"].startswith("ack:") and sent[0]["ticket"] == ticket
    assert secret not in text
    assert "dana.whitfield@" not in text and "bob.tran@" not in text and "d***@customer.example" in text
