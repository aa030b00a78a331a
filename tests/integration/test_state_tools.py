"""`bridge state backup|restore|stats` and `bridge replay`, through the real CLI and servers: a
backup taken while a backlog is processed, restored into a new state folder after the bridge
died, finishes the backlog exactly once; a replayed email runs again without doubling anything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.integration.harness import (
    REPO,
    BridgeThread,
    bridge_settings,
    email_bytes,
    free_port,
    make_config,
    start_process,
    wait_until,
    write_config,
)
from bridge.config import parse_config
from tests.integration.test_crash import _assert_exactly_once

pytestmark = pytest.mark.integration


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=60, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_backup_while_processing_then_restore_into_a_new_folder(mailbox, odoo, sink, tmp_path) -> None:
    odoo.latency = 0.02
    sent = []
    for n in range(120):
        raw, mid = email_bytes(subject=f"Backed up {n}", sender=f"P{n} <p{n}@customer.example>")
        mailbox.append(raw)
        sent.append((f"Backed up {n}", mid))
    config = write_config(tmp_path / "config.yaml", bridge_settings(mailbox, odoo, sink, tmp_path / "state"))
    process = start_process(config, tmp_path / "bridge.log")
    try:
        wait_until(lambda: len(odoo.records("helpdesk.ticket")) >= 20, timeout=60, what="work under way")
        backup = cli("state", "backup", str(tmp_path / "state.tar.gz"), "--config", str(config))
        assert backup.returncode == 0, backup.stderr
        assert "jobs" in backup.stdout and "outbox" in backup.stdout
        assert oct(os.stat(tmp_path / "state.tar.gz").st_mode & 0o777) == "0o600"
        wait_until(lambda: len(odoo.records("helpdesk.ticket")) >= 40, timeout=60, what="more work after the backup")
    finally:
        process.send_signal(signal.SIGKILL)  # the machine dies; its state folder is lost
        process.wait(10)
    odoo.latency = 0.0
    restored = write_config(tmp_path / "restored.yaml", bridge_settings(mailbox, odoo, sink, tmp_path / "new-state"))
    result = cli("state", "restore", str(tmp_path / "state.tar.gz"), "--config", str(restored))
    assert result.returncode == 0, result.stderr
    again = cli("state", "restore", str(tmp_path / "state.tar.gz"), "--config", str(restored))
    assert again.returncode == 1 and "already holds" in again.stderr  # never over a live folder
    stats = cli("state", "stats", "--config", str(restored))
    assert stats.returncode == 0 and "jobs" in stats.stdout and "pending effects" in stats.stdout
    wanted = {mid for _, mid in sent}
    # every email answered, not merely as many messages as emails: an acknowledgement sent after the
    # backup goes out again from the restored outbox (the same Message-ID, so the count runs ahead)
    with BridgeThread(make_config(mailbox, odoo, sink, tmp_path / "new-state")):
        wait_until(lambda: len(odoo.records("helpdesk.ticket")) >= len(sent)
                   and wanted <= {m.message["In-Reply-To"] for m in sink.messages},
                   timeout=90, interval=0.2, what="the backlog finished from the restored state")
    _assert_exactly_once(odoo, sink, sent)


@pytest.mark.parametrize("done", ["keyword", "move"])
def test_restore_answers_mail_the_lost_instance_finished_after_the_backup(mailbox, odoo, sink, tmp_path, done) -> None:
    """The lost instance finished emails after the backup (ticket made, marked done in IMAP) while
    SMTP was down, so their acknowledgements died with its outbox: the restored instance finds
    them by their done mark, unknown to its journal, and answers each once."""
    overrides = {"imap__done": {"mode": done, "folder": f"{mailbox.folder}_done"}}
    smtp_down = bridge_settings(mailbox, odoo, sink, tmp_path / "state", **overrides)
    smtp_down["smtp"]["port"] = free_port()
    smtp_down["pipeline"]["outbox_max_attempts"] = 1000  # pending, not dead-lettered, while it lasts
    done_folder = mailbox.folder if done == "keyword" else f"{mailbox.folder}_done"

    def finished(count: int) -> bool:
        if done == "move":
            return len(mailbox.uids(done_folder)) >= count
        return sum("$BridgeDone" in mailbox.flags(uid) for uid in mailbox.uids()) >= count

    raws, sent = [], []
    for n in range(6):
        raw, mid = email_bytes(subject=f"Finished late {n}", sender=f"L{n} <l{n}@customer.example>")
        raws.append(raw)
        sent.append((f"Finished late {n}", mid))
    config = write_config(tmp_path / "config.yaml", smtp_down)
    with BridgeThread(parse_config(smtp_down)):
        for raw in raws[:3]:
            mailbox.append(raw)
        wait_until(lambda: finished(3), timeout=30, what="the first three marked done")
        backup = cli("state", "backup", str(tmp_path / "state.tar.gz"), "--config", str(config))
        assert backup.returncode == 0, backup.stderr
        for raw in raws[3:]:
            mailbox.append(raw)
        wait_until(lambda: finished(6), timeout=30, what="all six marked done after the backup")
    assert not sink.messages  # nothing could be answered: SMTP was down the whole time
    restored = write_config(tmp_path / "restored.yaml", bridge_settings(mailbox, odoo, sink, tmp_path / "new-state",
                                                                        **overrides))
    result = cli("state", "restore", str(tmp_path / "state.tar.gz"), "--config", str(restored))
    assert result.returncode == 0, result.stderr
    wanted = {mid for _, mid in sent}
    with BridgeThread(make_config(mailbox, odoo, sink, tmp_path / "new-state", **overrides)):
        wait_until(lambda: wanted <= {m.message["In-Reply-To"] for m in sink.messages} and finished(6),
                   timeout=60, what="every email answered and marked done again")
    _assert_exactly_once(odoo, sink, sent)


def test_replay_runs_an_email_again_without_doubling(mailbox, odoo, sink, tmp_path) -> None:
    raw, mid = email_bytes(subject="Replay me")
    mailbox.append(raw)
    settings = bridge_settings(mailbox, odoo, sink, tmp_path / "state")
    config = write_config(tmp_path / "config.yaml", settings)
    with BridgeThread(make_config(mailbox, odoo, sink, tmp_path / "state")) as runner:
        wait_until(lambda: sink.messages, what="the acknowledgement")
        wait_until(lambda: runner.app.store.jobs.get(mid, {}).get("status") == "done", what="the job done")
        result = cli("replay", "--message-id", mid, "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert "its job was reset" in result.stdout
        wait_until(lambda: runner.app.store.jobs.get(mid, {}).get("status") == "done"
                   and runner.app.store.jobs.get(mid, {}).get("attempts") == 0
                   and "route" in runner.app.store.jobs.get(mid, {}).get("results", {})
                   and runner.app.store.jobs.get(mid, {})["results"]["route"].get("via") == "already in Odoo",
                   what="the replayed run (dedupe: found in Odoo)")
        wait_until(lambda: not [u for u in mailbox.uids() if "$BridgeDone" not in mailbox.flags(u)],
                   what="marked done again")
    assert len(mailbox.uids()) == 1  # the copy replaced the original
    _assert_exactly_once(odoo, sink, [("Replay me", mid)])
    missing = cli("replay", "--uid", "99999", "--config", str(config))
    assert missing.returncode == 1 and "no such email" in missing.stderr


def test_replay_with_new_ticket_opens_a_fresh_ticket_and_acknowledges_it(mailbox, odoo, sink, tmp_path) -> None:
    raw, mid = email_bytes(subject="Merged by mistake")
    mailbox.append(raw)
    config = write_config(tmp_path / "config.yaml", bridge_settings(mailbox, odoo, sink, tmp_path / "state"))
    with BridgeThread(make_config(mailbox, odoo, sink, tmp_path / "state")) as runner:
        wait_until(lambda: len(sink.messages) == 1, what="the acknowledgement")
        wait_until(lambda: runner.app.store.jobs.get(mid, {}).get("status") == "done", what="the job done")
        first = odoo.records("helpdesk.ticket")[0]["id"]
        result = cli("replay", "--message-id", mid, "--new-ticket", "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert f"opens a new ticket for it (it was on ticket {first})" in result.stdout
        assert "forced onto a new ticket" in result.stderr  # logged
        wait_until(lambda: len(odoo.records("helpdesk.ticket")) == 2 and len(sink.messages) == 2,
                   what="a second ticket and its acknowledgement")
        wait_until(lambda: runner.app.store.jobs.get(mid, {}).get("status") == "done", what="the job done again")
    second = next(t["id"] for t in odoo.records("helpdesk.ticket") if t["id"] != first)
    posted = [m["res_id"] for m in odoo.records("mail.message") if m.get("message_id") == mid]
    assert sorted(posted) == sorted([first, second])  # the email is on both tickets, once each
    acks = [m.message for m in sink.messages]
    assert [a["In-Reply-To"] for a in acks] == [mid, mid]
    assert len({a["Message-ID"] for a in acks}) == 2
    assert f"[#HD-{first}]" in acks[0]["Subject"] and f"[#HD-{second}]" in acks[1]["Subject"]
