"""`bridge quarantine retry`: put a quarantined email back in the inbox for another run."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

from bridge.config import Config
from bridge.mail.inbox import ImapSession
from bridge.store import Store

SQLITE_BUSY_SECONDS = 30.0  # a running bridge holds SQLite's write lock only for one commit


def retry(cfg: Config, store: Store, key: str) -> int:
    """Reopen the job, then move the email back; returns how many messages were moved.

    Finished stages (e.g. its ticket) are kept. The order matters: once the email is back in
    the inbox a running bridge may fetch it at once, and it must then load the reopened job,
    not the quarantined one (which would send the email straight back to quarantine). So the
    job is reset first, durably, and only then is the email moved.

    Safe beside a running bridge (the CLI holds no lock then), because:

    - only a job whose status is ``quarantined`` is rewritten. While its email sits in the
      quarantine folder the bridge does not run that job; it writes the record only when it
      prunes it (old enough) or when a copy with the same key reaches the inbox and is
      quarantined again. Either way the outcome is one that the same two events give in
      sequence (pruned, then retried: the email runs afresh; retried, then the copy
      quarantined: the copy's verdict holds). The bridge reads job values from disk on every
      load, and this command never adds a job key, so its in-memory key index stays right.
    - the quarantine record is deleted only if it is still the one read here, in one SQL
      statement: once the email is back, the bridge may quarantine it again with a new record,
      which must stay listed.

    A job reopened while its email cannot be found (moved by hand, or the bridge has not yet
    moved it) is inert: the bridge runs a job only for an email in the inbox.
    """
    before = _raw_record(store, key)
    job = store.jobs.get(key)
    if job is not None and job.get("status") == "quarantined":
        job.update(status="active", rejections=0, attempts=0, last_error="", updated_at=time.time())
        store.jobs.put(key, job)  # durable: on disk before the email is visible again
    session = ImapSession(cfg.imap)
    session.open()
    try:
        moved = session.restore_from_quarantine(key)
    finally:
        session.close()
    if moved and before is not None:
        _delete_if_unchanged(store, key, before)
    return moved


def _connect(store: Store) -> sqlite3.Connection:
    conn = sqlite3.connect(store.dir / f"{store.quarantine.name}.sqlite", timeout=SQLITE_BUSY_SECONDS)
    conn.execute("PRAGMA synchronous=FULL")  # as every connection of bridge.store: durable at commit
    return conn


def _raw_record(store: Store, key: str) -> str | None:
    """The quarantine record of ``key`` exactly as stored (its JSON text), or None."""
    with closing(_connect(store)) as conn:
        row = conn.execute(f'SELECT value FROM "{store.quarantine.name}" WHERE key = ?', (key,)).fetchone()
    return None if row is None else row[0]


def _delete_if_unchanged(store: Store, key: str, stored: str) -> bool:
    """Delete the record of ``key`` if it is still ``stored`` (a compare-and-delete the
    key/value table has no method for); False when it changed or is gone."""
    with closing(_connect(store)) as conn, conn:  # the inner ``conn`` commits
        cursor = conn.execute(f'DELETE FROM "{store.quarantine.name}" WHERE key = ? AND value = ?', (key, stored))
    return cursor.rowcount == 1
