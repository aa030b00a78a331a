"""Crash safety: SIGKILL the bridge process at chosen and at random points, restart it, and
check that every email ends as exactly one ticket, posted once, and is marked done."""

from __future__ import annotations

import collections
import random
import signal
import time

import pytest

from tests.integration.test_flow import notes as ticket_notes
from tests.integration.harness import bridge_settings, email_bytes, start_process, wait_until, write_config

pytestmark = pytest.mark.integration

DONE = "$BridgeDone"


def _flags_done(mailbox, uids):
    return all(DONE in {f.decode() if isinstance(f, bytes) else f for f in mailbox.flags(uid)} for uid in uids)


def _assert_exactly_once(odoo, sink, sent):
    tickets = odoo.records("helpdesk.ticket")
    by_name = collections.Counter(t["name"] for t in tickets)
    assert all(count == 1 for count in by_name.values()), by_name
    assert sorted(by_name) == sorted(subject for subject, _ in sent)
    posted = collections.Counter(m.get("message_id") for m in odoo.records("mail.message"))
    for _, mid in sent:
        assert posted[mid] == 1, f"{mid} posted {posted[mid]} times"
    acks = collections.defaultdict(set)
    for mail in sink.messages:
        acks[mail.message["In-Reply-To"]].add(mail.message["Message-ID"])
    for _, mid in sent:
        assert len(acks[mid]) == 1, f"{mid} acknowledged with {acks[mid]}"


def notes(odoo):
    return [n for t in odoo.records("helpdesk.ticket") for n in ticket_notes(odoo, t["id"])]


class Process:
    """The bridge as a child process, restartable."""

    def __init__(self, config_path, log_path):
        self.config_path, self.log_path = config_path, log_path
        self.proc = None

    def start(self):
        self.proc = start_process(self.config_path, self.log_path)
        return self.proc.pid

    def wait_killed(self, timeout=20):
        self.proc.wait(timeout)
        assert self.proc.returncode == -signal.SIGKILL, self.log_path.read_text()[-2000:]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


@pytest.fixture
def bridge_process(mailbox, odoo, sink, tmp_path):
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state")
    process = Process(write_config(tmp_path / "config.yaml", settings), tmp_path / "bridge.log")
    yield process
    process.stop()


@pytest.mark.parametrize(
    "model,method",
    [
        ("helpdesk.ticket", "create"),  # Odoo created the ticket, the bridge never heard back
        ("helpdesk.ticket", "message_post"),  # the email is on the chatter, not yet journaled
        ("res.partner", "create"),  # the customer partner exists, the ticket does not
    ],
)
def test_kill_right_after_an_odoo_write(bridge_process, mailbox, odoo, sink, model, method):
    sent = []
    uids = []
    for n in range(3):
        raw, mid = email_bytes(sender=f"user{n}@customer.example", subject=f"Crash {method} {n}")
        sent.append((f"Crash {method} {n}", mid))
        uids.append(mailbox.append(raw))
    odoo.kill_after(model, method, pid=bridge_process.start(), sig=signal.SIGKILL)
    bridge_process.wait_killed()
    bridge_process.start()
    wait_until(lambda: _flags_done(mailbox, uids), timeout=30, what="all emails done after restart")
    sink.wait_for(3, timeout=15)
    time.sleep(0.3)
    _assert_exactly_once(odoo, sink, sent)


def test_kill_after_the_acknowledgement_was_accepted(bridge_process, mailbox, odoo, sink):
    raw, mid = email_bytes(subject="Crash smtp")
    uid = mailbox.append(raw)
    sink.kill_after_data(pid=bridge_process.start(), sig=signal.SIGKILL)
    bridge_process.wait_killed()
    bridge_process.start()
    wait_until(lambda: _flags_done(mailbox, [uid]), timeout=30)
    wait_until(lambda: notes(odoo), timeout=15, what="the acknowledgement note")
    _assert_exactly_once(odoo, sink, [("Crash smtp", mid)])
    time.sleep(0.3)
    assert len(notes(odoo)) == 1, "the acknowledgement is logged once"


def test_kill_at_random_moments_under_load(bridge_process, mailbox, odoo, sink):
    odoo.latency = 0.02
    rng = random.Random(20261123)
    sent, uids = [], []
    for n in range(40):
        raw, mid = email_bytes(sender=f"user{n % 10}@customer.example", subject=f"Load {n}")
        sent.append((f"Load {n}", mid))
        uids.append(mailbox.append(raw))
    for _ in range(5):
        bridge_process.start()
        time.sleep(rng.uniform(0.3, 1.2))
        bridge_process.proc.send_signal(signal.SIGKILL)
        bridge_process.proc.wait(10)
    bridge_process.start()
    wait_until(lambda: _flags_done(mailbox, uids), timeout=60, what="every email done")
    odoo.latency = 0.0
    wait_until(lambda: len({m.message["In-Reply-To"] for m in sink.messages}) >= 40, timeout=30,
               what="an acknowledgement for every email")
    _assert_exactly_once(odoo, sink, sent)
