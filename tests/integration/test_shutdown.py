"""SIGTERM during a backlog with a slow Odoo: the bridge exits 0 within its shutdown budget
(running jobs finish or are parked at their last journaled stage, IMAP is logged out of), and a
restart finishes everything exactly once. A second SIGTERM exits at once, also losing nothing."""

from __future__ import annotations

import signal
import time

import pytest

from tests.integration.harness import bridge_settings, email_bytes, start_process, wait_until, write_config
from tests.integration.test_crash import _assert_exactly_once

pytestmark = pytest.mark.integration

BUDGET = 4.0
EXIT_SLACK = 2.0  # interpreter start-up is not in the budget, teardown after the last log line is


def _backlog(mailbox, count: int, tag: str) -> list[tuple[str, str]]:
    sent = []
    for n in range(count):
        raw, mid = email_bytes(subject=f"{tag} {n}", sender=f"Person {n} <p{n}@customer.example>")
        mailbox.append(raw)
        sent.append((f"{tag} {n}", mid))
    return sent


def _tickets(odoo) -> int:
    return len(odoo.records("helpdesk.ticket"))


def _unmarked(mailbox) -> list[int]:
    with mailbox.client() as imap:
        imap.select_folder(mailbox.folder, readonly=True)
        return imap.search(["UNKEYWORD", "$BridgeDone"])


def _config(mailbox, odoo, sink, tmp_path):
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state",
                               bridge__shutdown_budget_seconds=BUDGET, bridge__log_level="INFO")
    return write_config(tmp_path / "config.yaml", settings)


def _finish(config, log_path, odoo, sink, mailbox, sent) -> None:
    """Restart and let every email become its ticket and acknowledgement, then stop cleanly."""
    process = start_process(config, log_path)
    try:
        wait_until(lambda: _tickets(odoo) == len(sent) and len(sink.messages) >= len(sent), timeout=120,
                   interval=0.2, what="the whole backlog after the restart")
        wait_until(lambda: not _unmarked(mailbox), timeout=20, what="every email marked done")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(BUDGET + EXIT_SLACK + 5) == 0
    _assert_exactly_once(odoo, sink, sent)


def test_sigterm_in_a_backlog_with_slow_odoo_exits_within_budget(mailbox, odoo, sink, tmp_path) -> None:
    odoo.latency = 0.02
    sent = _backlog(mailbox, 500, "Backlog")
    config, log_path = _config(mailbox, odoo, sink, tmp_path), tmp_path / "bridge.log"
    process = start_process(config, log_path)
    try:
        wait_until(lambda: _tickets(odoo) >= 40, timeout=60, interval=0.1, what="work under way")
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(BUDGET + EXIT_SLACK + 10)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    log = log_path.read_text()
    assert status == 0, log[-3000:]
    assert took <= BUDGET + EXIT_SLACK, f"exited {took:.1f}s after SIGTERM (budget {BUDGET}s)"
    assert "bridge stopped in" in log
    assert _tickets(odoo) < len(sent)  # stopped mid-backlog, so the restart has work left
    _finish(config, log_path, odoo, sink, mailbox, sent)


def test_a_second_sigterm_exits_at_once_and_loses_nothing(mailbox, odoo, sink, tmp_path) -> None:
    odoo.latency = 0.3  # every Odoo call is slow: jobs are caught in the middle of their stages
    sent = _backlog(mailbox, 60, "Twice")
    config, log_path = _config(mailbox, odoo, sink, tmp_path), tmp_path / "bridge.log"
    process = start_process(config, log_path)
    try:
        wait_until(lambda: _tickets(odoo) >= 3, timeout=60, interval=0.1, what="work under way")
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: "stopping on signal" in log_path.read_text(), timeout=5, what="the first signal seen")
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        status = process.wait(10)
        took = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
    assert status == 128 + signal.SIGTERM, log_path.read_text()[-3000:]
    assert took < 1.5, f"a second SIGTERM took {took:.1f}s to exit"
    assert "second signal: exiting at once" in log_path.read_text()
    odoo.latency = 0.0
    _finish(config, log_path, odoo, sink, mailbox, sent)
