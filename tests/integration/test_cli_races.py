"""The CLI's state writes beside a running bridge: quarantine retry and outbox retry never race it.

A "running bridge" here is the state lock held by the test (as ``bridge run`` holds it) plus,
for the outbox, an ``Outbox`` over the same state, like the one inside a running bridge; the
CLI runs as a separate process, as an operator runs it.
"""

from __future__ import annotations

import asyncio
import fcntl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import bridge.pipeline.outbox as outbox_module
from bridge.mail.inbox import ImapSession
from bridge.pipeline.job import Job
from bridge.pipeline.outbox import Outbox
from bridge.quarantine import retry
from bridge.store import Store
from tests.integration.harness import REPO, email_bytes, make_config

pytestmark = pytest.mark.integration


def bridge_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def config(tmp_path: Path, state: Path) -> Path:
    """Enough config for `bridge outbox retry` (it reaches no server)."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "imap": {"username": "u", "password": "x"}, "smtp": {"from_address": "support@example.com"},
        "odoo": {"url": "http://127.0.0.1:9", "db": "d", "username": "u", "password": "p"},
        "state": {"dir": str(state)},
    }))
    return path


@pytest.fixture
def bridge_lock(state: Path) -> Iterator[None]:
    """The state lock as a running bridge holds it (an flock on state/bridge.lock)."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "bridge.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


# --------------------------------------------------------------------------- quarantine retry


def _quarantined(mailbox, state: Path, subject: str) -> str:
    """An email in the quarantine folder with its quarantined job (ticket stage done) and record."""
    raw, mid = email_bytes(subject=subject)
    mailbox.server.append(raw, folder=mailbox.quarantine, user=mailbox.user)
    store = Store(state)
    job = Job(key=mid, status="quarantined", results={"ticket": {"ticket": 7}}, rejections=3,
              last_error="rejected 3 times: validation")
    store.jobs.put(mid, job.to_dict())
    store.quarantine.put(mid, {"reason": job.last_error, "at": time.time() - 60, "subject": subject,
                               "from": "alice@customer.example", "folder": mailbox.quarantine})
    store.close()
    return mid


def _spy_on_the_move(monkeypatch, state: Path, after: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """What a bridge loading the job would see at the moment the email goes back to the inbox."""
    seen: list[dict[str, Any]] = []
    move = ImapSession.restore_from_quarantine

    def spying(session: ImapSession, key: str) -> int:
        bridge_side = Store(state)  # its own connections, like the bridge's process
        try:
            seen.append(bridge_side.jobs.get(key))
        finally:
            bridge_side.close()
        moved = move(session, key)
        if after is not None:
            after(key)
        return moved

    monkeypatch.setattr(ImapSession, "restore_from_quarantine", spying)
    return seen


def test_quarantine_retry_reopens_the_job_before_the_email_is_back(mailbox, odoo, sink, state, monkeypatch):
    """Else a bridge fetching the email at once loads the quarantined job and quarantines it again."""
    cfg = make_config(mailbox, odoo, sink, state)
    mid = _quarantined(mailbox, state, "reopen first")
    seen = _spy_on_the_move(monkeypatch, state)
    store = Store(state)
    try:
        assert retry(cfg, store, mid) == 1
    finally:
        store.close()
    [job] = seen
    assert job["status"] == "active" and job["rejections"] == 0 and job["results"] == {"ticket": {"ticket": 7}}
    assert mailbox.uids(mailbox.quarantine) == [] and len(mailbox.uids()) == 1
    store = Store(state)
    assert mid not in store.quarantine
    store.close()


def test_quarantine_retry_keeps_a_record_the_bridge_writes_after_the_move(mailbox, odoo, sink, state,
                                                                         monkeypatch):
    """Once the email is back the bridge may quarantine it again at once: that record must stay listed."""
    cfg = make_config(mailbox, odoo, sink, state)
    mid = _quarantined(mailbox, state, "refused again")

    def bridge_quarantines_again(key: str) -> None:
        bridge_side = Store(state)
        bridge_side.quarantine.put(key, {"reason": "rejected 3 times: still invalid", "at": time.time(),
                                         "subject": "refused again", "from": "alice@customer.example",
                                         "folder": mailbox.quarantine})
        bridge_side.close()

    _spy_on_the_move(monkeypatch, state, after=bridge_quarantines_again)
    store = Store(state)
    try:
        assert retry(cfg, store, mid) == 1
    finally:
        store.close()
    store = Store(state)
    record = store.quarantine.get(mid)
    store.close()
    assert record is not None, "the bridge's new quarantine record was deleted by the retry"
    assert record["reason"] == "rejected 3 times: still invalid"


def test_quarantine_retry_without_a_bridge_reopens_the_job_and_frees_the_lock(mailbox, odoo, sink, state, tmp_path):
    from tests.integration.harness import bridge_settings, write_config

    config = write_config(tmp_path / "q.yaml", bridge_settings(mailbox, odoo, sink, state))
    mid = _quarantined(mailbox, state, "no bridge running")
    result = bridge_cli("quarantine", "retry", mid, "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "moved 1 message(s)" in result.stdout
    store = Store(state)
    assert store.jobs.get(mid)["status"] == "active" and mid not in store.quarantine
    store.close()
    with open(state / "bridge.lock", "w") as handle:  # free again: a bridge can start
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    missing = bridge_cli("quarantine", "retry", "<nobody@customer.example>", "--config", str(config))
    assert missing.returncode == 1 and "not found" in missing.stderr


# --------------------------------------------------------------------------- outbox retry


def _dead(state: Path, *keys: str) -> None:
    store = Store(state)
    now = time.time()
    for key in keys:
        store.outbox.put(key, {"kind": "smtp", "payload": {"n": key}, "status": "dead", "attempts": 10,
                               "next_at": now, "last_error": "550 refused", "created_at": now, "updated_at": now})
    store.close()


class _ReadHook:
    """A state table that runs ``hook`` once, right after the first time it is read."""

    def __init__(self, table: Any, hook: Callable[[], None]) -> None:
        self._table, self._hook = table, hook

    def _fire(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook()

    def get(self, *args: Any, **kwargs: Any) -> Any:
        value = self._table.get(*args, **kwargs)
        self._fire()
        return value

    def keys(self) -> Iterator[str]:
        keys = list(self._table.keys())
        self._fire()
        return iter(keys)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def __contains__(self, key: str) -> bool:
        return key in self._table

    def __getitem__(self, key: str) -> Any:
        return self._table[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._table[key] = value

    def __delitem__(self, key: str) -> None:
        del self._table[key]


async def _run_outbox(outbox: Outbox, done: Callable[[], bool], timeout: float) -> None:
    task = asyncio.create_task(outbox.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not done():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_outbox_retry_beside_a_running_bridge_only_asks_it(config, state, bridge_lock):
    """The outbox table is the running bridge's: the CLI writes a request, the bridge resets the effect."""
    _dead(state, "ack:<a@x>")
    store = Store(state)  # the running bridge's state, opened before the CLI runs
    sent: list[str] = []

    async def send(payload, attempt):
        sent.append(payload["n"])

    outbox = Outbox(store.outbox, {"smtp": send}, {}, requeue=store.meta)
    try:
        result = bridge_cli("outbox", "retry", "ack:<a@x>", "--config", str(config))
        assert result.returncode == 0, result.stderr
        assert "running bridge" in result.stdout
        assert store.outbox.get("ack:<a@x>")["status"] == "dead"  # untouched by the CLI
        asyncio.run(_run_outbox(outbox, lambda: sent, timeout=15))
        assert sent == ["ack:<a@x>"]
        record = store.outbox.get("ack:<a@x>")
        assert record["status"] == "sent" and record["attempts"] == 0
        assert not [key for key in store.meta.keys() if key.startswith("outbox_requeue")]  # applied: gone
    finally:
        store.close()
    assert bridge_cli("outbox", "retry", "ack:<a@x>", "--config", str(config)).returncode == 1  # already sent


def test_a_retry_requested_while_the_bridge_reads_the_requests_is_not_lost(config, state, bridge_lock,
                                                                          monkeypatch):
    monkeypatch.setattr(outbox_module, "REQUEUE_POLL_SECONDS", 0.05)
    _dead(state, "ack:<a@x>", "ack:<b@x>")
    store = Store(state)
    sent: list[str] = []

    async def send(payload, attempt):
        sent.append(payload["n"])

    def second_operator() -> None:  # lands between the bridge's read of the requests and what it does next
        result = bridge_cli("outbox", "retry", "ack:<b@x>", "--config", str(config))
        assert result.returncode == 0, result.stderr

    try:
        assert bridge_cli("outbox", "retry", "ack:<a@x>", "--config", str(config)).returncode == 0
        outbox = Outbox(store.outbox, {"smtp": send}, {}, requeue=_ReadHook(store.meta, second_operator))
        asyncio.run(_run_outbox(outbox, lambda: len(sent) == 2, timeout=10))
        assert sorted(sent) == ["ack:<a@x>", "ack:<b@x>"]
    finally:
        store.close()


def test_outbox_retry_without_a_bridge_resets_the_effect_itself(config, state):
    _dead(state, "ack:<a@x>")
    result = bridge_cli("outbox", "retry", "ack:<a@x>", "--config", str(config))
    assert result.returncode == 0, result.stderr
    store = Store(state)  # a bridge started afterwards
    sent: list[str] = []

    async def send(payload, attempt):
        sent.append(payload["n"])

    try:
        assert store.outbox.get("ack:<a@x>")["status"] == "pending"
        asyncio.run(_run_outbox(Outbox(store.outbox, {"smtp": send}, {}, requeue=store.meta), lambda: sent,
                                timeout=10))
        assert sent == ["ack:<a@x>"]
    finally:
        store.close()
