"""`bridge quarantine retry`: put a quarantined email back in the inbox for another run."""

from __future__ import annotations

from bridge.config import Config
from bridge.mail.inbox import ImapSession
from bridge.store import Store


def retry(cfg: Config, store: Store, key: str) -> int:
    """Move the email back and reopen its job; finished stages (e.g. its ticket) are kept."""
    session = ImapSession(cfg.imap)
    session.open()
    try:
        moved = session.restore_from_quarantine(key)
    finally:
        session.close()
    if moved:
        job = store.jobs.get(key)
        if job is not None:
            job.update(status="active", rejections=0, attempts=0, last_error="")
            store.jobs.put(key, job)
        if key in store.quarantine:
            del store.quarantine[key]
            store.quarantine.commit()
    return moved
