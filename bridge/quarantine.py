"""`bridge quarantine retry`: put a quarantined email back in the inbox for another run."""

from __future__ import annotations

import time

from bridge.config import Config
from bridge.auth.vault import TokenVault
from bridge.mail.inbox import ImapSession
from bridge.mailboxes import mailbox_tokens
from bridge.store import Store


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
    before = store.quarantine.get(key)
    job = store.jobs.get(key)
    if job is not None and job.get("status") == "quarantined":
        job.update(status="active", rejections=0, attempts=0, last_error="", updated_at=time.time())
        store.jobs.put(key, job)  # durable: on disk before the email is visible again
    moved = 0
    named = (before or {}).get("mailbox")
    boxes = sorted(cfg.mailbox_list, key=lambda box: box.name != named)  # its own mailbox first, then the rest
    vault = TokenVault(cfg.state.dir)
    for box in boxes:
        session = ImapSession(box.imap, mailbox_tokens(box, vault)[0])
        session.open()
        try:
            moved = session.restore_from_quarantine(key)
        finally:
            session.close()
        if moved:
            break
    if moved and before is not None:
        store.quarantine.delete_if_equal(key, before)
    return moved
