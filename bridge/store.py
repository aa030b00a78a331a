"""Durable state in ``state/``: sqlitedict tables, JSON-encoded (never pickle), one file each.

Tables:
  jobs        email key → job journal (per-stage results, status)          bridge.pipeline.job
  messages    Message-ID → {"ticket", "dir": "in"|"out", "at"}              threading and loops
  outbox      effect key → outbox effect                                     bridge.pipeline.outbox
  quarantine  email key → {"reason", "at", "subject", "from", "folder"}     `bridge quarantine`
  tickets     ticket id → the bridge's record of that ticket                 bridge.ticket_record
  threads     "<channel>:<ts>" of each ticket's Slack card → {"ticket"}        bridge.slack.deliver
  limits      sliding windows: automatic replies per recipient, LMS actions per account
  meta        small singletons: IMAP checkpoint, the signing secret, outbox retry requests
              (``outbox_requeue:<effect key>``, one per effect)

Durable means on disk: sqlitedict opens its connections with ``PRAGMA synchronous=OFF``, where a
power loss or kernel crash can drop commits whose IMAP STORE already reached the server. Every
connection a table opens is switched to ``synchronous=FULL`` (the WAL is fsynced at each commit;
NORMAL would survive a process crash but not a power loss). The folder is private (0700) and the
files 0600: ``meta`` holds the Message-ID signing secret and the journal holds customer mail.

Each table lives in its own file so their writer threads never contend for one SQLite lock.
Tables to which only the running bridge adds keys (jobs, messages, outbox, limits) keep their
key set in memory: most lookups on the hot path are for keys that do not exist yet (a new
email's job, a first reply to an address, a new effect), and answering those without a round
trip to sqlitedict's writer thread is a large share of the per-email cost. Values are always
read from disk. ``bridge quarantine retry`` only rewrites jobs that exist (and only quarantined
ones); ``bridge outbox retry`` beside a running bridge writes only a request in meta, which the
bridge applies; meta and quarantine stay unindexed.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any, Iterator

from sqlitedict import SqliteDict

log = logging.getLogger(__name__)

# Tables to which only the running bridge adds keys: indexed (see the module docstring).
SOLE_WRITER_TABLES = frozenset({"jobs", "messages", "outbox", "tickets", "threads", "limits"})
SYNCHRONOUS = "FULL"
FOLDER_MODE = 0o700
FILE_MODE = 0o600


def _encode(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class _DurableDict(SqliteDict):
    """A SqliteDict whose every connection (the first, and any reopened one) commits to disk."""

    def _new_conn(self):  # type: ignore[no-untyped-def] - sqlitedict's own signature
        conn = super()._new_conn()
        conn.execute(f"PRAGMA synchronous={SYNCHRONOUS}")  # queued before any other statement
        return conn


def private_folder(directory: Path) -> None:
    """Create the state folder 0700 (or tighten an existing one we own)."""
    directory.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    _tighten(directory, FOLDER_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` 0600 if missing (SQLite gives its -wal and -shm files the same mode)."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE_MODE))
    _tighten(path, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    if stat.S_IMODE(path.stat().st_mode) & ~mode:
        try:
            path.chmod(mode)
        except PermissionError:  # e.g. a volume owned by another user: say so, keep running
            log.warning("state: cannot make %s private (mode %o): %s", path, mode, "permission denied")


class Table:
    """A JSON-encoded key/value table; writes are committed by the caller's ``commit()``.

    ``indexed``: the key set is held in memory so a missing key is answered at once; only
    sound when no other process adds keys while this one runs.
    """

    def __init__(self, path: Path, name: str, *, indexed: bool = False) -> None:
        self.name = name
        private_file(path)
        for companion in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if companion.exists():
                _tighten(companion, FILE_MODE)
        self._db = _DurableDict(
            str(path),
            tablename=name,
            autocommit=False,
            journal_mode="WAL",
            encode=_encode,
            decode=json.loads,
            outer_stack=False,
        )
        self._keys: set[str] | None = set(self._db.keys()) if indexed else None

    def get(self, key: str, default: Any = None) -> Any:
        if self._keys is not None and key not in self._keys:
            return default
        return self._db.get(key, default)

    def __getitem__(self, key: str) -> Any:
        if self._keys is not None and key not in self._keys:
            raise KeyError(key)
        return self._db[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._db[key] = value
        if self._keys is not None:
            self._keys.add(key)

    def __delitem__(self, key: str) -> None:
        del self._db[key]
        if self._keys is not None:
            self._keys.discard(key)

    def __contains__(self, key: str) -> bool:
        if self._keys is not None:
            return key in self._keys
        return key in self._db

    def __len__(self) -> int:
        if self._keys is not None:
            return len(self._keys)
        return len(self._db)

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The stored values of these keys (missing ones left out), in one query per 500 keys:
        a sweep over thousands of records would otherwise pay a round trip to the SQLite thread
        for each."""
        wanted = [k for k in keys if self._keys is None or k in self._keys]
        found: dict[str, Any] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for key, value in self._db.conn.select(f'SELECT key, value FROM "{self.name}" WHERE key IN ({marks})',
                                                   tuple(chunk)):
                found[key] = json.loads(value)
        return found

    def items(self) -> Iterator[tuple[str, Any]]:
        return iter(self._db.items())

    def keys(self) -> Iterator[str]:
        return iter(self._db.keys())

    def put(self, key: str, value: Any, *, durable: bool = True) -> None:
        """Write and commit. ``durable`` waits until it is on disk: for records that must
        survive a crash right after (before an outside effect); otherwise the commit is queued
        and the caller goes on (the writer thread keeps the order of every write)."""
        self[key] = value
        self._db.commit(blocking=durable)

    def delete_if_equal(self, key: str, expected: Any) -> bool:
        """Delete ``key`` only while its stored value is still ``expected``, in one statement, and
        commit: another process (the running bridge) may rewrite the key meanwhile, and its write
        must survive. Values are stored as ``_encode`` writes them, so equal values match."""
        conn = self._db.conn
        conn.execute(f'DELETE FROM "{self.name}" WHERE key = ? AND value = ?', (key, _encode(expected)))
        deleted = conn.select_one("SELECT changes()")[0] == 1
        self._db.commit(blocking=True)
        if deleted and self._keys is not None:
            self._keys.discard(key)
        return deleted

    def commit(self, *, durable: bool = True) -> None:
        self._db.commit(blocking=durable)

    def close(self) -> None:
        self._db.close()


class Store:
    """All tables of one bridge instance, opened from (and created in) the state folder."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)
        private_folder(self.dir)
        self.jobs = self._open("jobs")
        self.messages = self._open("messages")
        self.outbox = self._open("outbox")
        self.tickets = self._open("tickets")
        self.threads = self._open("threads")
        self.quarantine = self._open("quarantine")
        self.limits = self._open("limits")
        self.meta = self._open("meta")

    def _open(self, name: str) -> Table:
        return Table(self.dir / f"{name}.sqlite", name, indexed=name in SOLE_WRITER_TABLES)

    def tables(self) -> tuple[Table, ...]:
        return (self.jobs, self.messages, self.outbox, self.tickets, self.threads, self.quarantine, self.limits,
                self.meta)

    def remember_message(self, message_id: str, ticket_id: int, direction: str) -> None:
        """Record that a Message-ID belongs to a ticket (inbound or sent by us).

        Not waited for: if a crash loses it, threading falls back to the signed Message-ID
        and to Odoo's own mail.message lookup.
        """
        self.messages.put(message_id, {"ticket": ticket_id, "dir": direction, "at": time.time()}, durable=False)

    def prune(self, retention_seconds: float, now: float | None = None) -> dict[str, int]:
        """Drop finished jobs, sent effects, old Message-IDs and stale limit windows older than the retention.

        Message-IDs are kept for the same time so a reply to an old acknowledgement still
        threads locally; after that, threading falls back to Odoo's own mail.message lookup.
        """
        cutoff = (now or time.time()) - retention_seconds
        removed = {"jobs": 0, "outbox": 0, "messages": 0, "limits": 0}
        for key, job in list(self.jobs.items()):
            if job.get("status") in ("done", "quarantined") and job.get("updated_at", 0) < cutoff:
                del self.jobs[key]
                removed["jobs"] += 1
        for key, effect in list(self.outbox.items()):
            if effect.get("status") in ("sent", "dead") and effect.get("updated_at", 0) < cutoff:
                del self.outbox[key]
                removed["outbox"] += 1
        for key, record in list(self.messages.items()):
            if record.get("at", 0) < cutoff:
                del self.messages[key]
                removed["messages"] += 1
        for key, window in list(self.limits.items()):
            if max(window, default=0) < cutoff:
                del self.limits[key]
                removed["limits"] += 1
        for table in (self.jobs, self.outbox, self.messages, self.limits):
            table.commit()
        return removed

    def close(self) -> None:
        for table in self.tables():
            try:
                table.close()
            except Exception:  # closing is best effort at shutdown
                log.debug("state: closing %s failed", table.name, exc_info=True)
