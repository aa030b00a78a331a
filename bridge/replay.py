"""`bridge replay --uid N | --message-id ID`: run one email through the pipeline again.

The email's job is reset (its stages forgotten) and the email is put back among the unprocessed
mail; the bridge, running or started later, reads it as if new. Dedupe still applies: its
Message-ID is found on its ticket, the acknowledgement and notes are keyed effects already sent,
so a replay repairs what a stage missed (a lost note, a ticket deleted in Odoo: a new one is
made) without doubling anything. ``--new-ticket`` is the one exception, asked for by name: the
email opens a fresh ticket even though Odoo holds it on one (e.g. it was merged into the wrong
ticket), and its customer is acknowledged again with the new ticket's number. Like `quarantine retry` it is safe beside a running bridge: it
rewrites only a job that exists, durably, before the email becomes visible again.
"""

from __future__ import annotations

import hashlib
import logging
import time

import imapclient

from bridge.auth.vault import TokenVault
from bridge.config import Config

from bridge.errors import ConfigurationError, UnparseableEmail
from bridge.mail.inbox import ImapSession
from bridge.mail.parse import parse_email
from bridge.mailboxes import mailbox_tokens
from bridge.pipeline.job import Job
from bridge.store import Store

log = logging.getLogger("bridge.replay")


def replay(cfg: Config, store: Store, *, uid: int | None = None, message_id: str = "", mailbox: str = "",
           new_ticket: bool = False) -> str:
    """Reset the job and unmark (or move back) the email; returns a one-line account."""
    boxes = {box.name: box for box in cfg.mailbox_list}
    box = boxes.get(mailbox) if mailbox else cfg.mailbox_list[0]
    if box is None:
        raise ConfigurationError(f"no mailbox named {mailbox!r} (configured: {', '.join(boxes)})")
    imap = box.imap
    # Done mail stays in the folder with a keyword, or was moved to the done folder.
    where = imap.done.folder if imap.done.mode == "move" else imap.folder
    session = ImapSession(imap, mailbox_tokens(box, TokenVault(cfg.state.dir))[0])
    session.open()
    try:
        client = session.client
        assert client is not None
        client.select_folder(where)
        if uid is not None:
            uids = [uid] if client.search(["UID", str(uid)]) else []
        else:
            uids = client.search(["HEADER", "Message-ID", message_id])
        if not uids:
            raise ConfigurationError(f"replay: no such email in {where!r} of mailbox {box.name}")
        raw = client.fetch(uids[:1], ["BODY.PEEK[]"])[uids[0]][b"BODY[]"]
        key = _key(raw)
        job = store.jobs.get(key)
        previous = Job.from_dict(job).ticket_id if job is not None else None
        # The route stage reads this: no dedupe by Message-ID, a new ticket (bridge/pipeline/ingest.py).
        results = {"replay": {"new_ticket": True, "previous": previous, "at": time.time()}} if new_ticket else {}
        if job is not None:
            job.update(status="active", results=results, attempts=0, rejections=0, last_error="", updated_at=time.time())
            store.jobs.put(key, job)  # durable: on disk before the email is visible again
        elif new_ticket:
            store.jobs.put(key, Job(key=key, results=results).to_dict())
        if new_ticket:
            log.warning("replay: %s forced onto a new ticket (it was on %s)", key, previous or "no known ticket")
        if imap.done.mode == "keyword":
            client.remove_flags(uids[:1], [imap.done.keyword], silent=True)
        # A copy (a new UID, announced to IDLE) is seen by a running bridge at once; a flag
        # taken off an old UID would wait for its next full scan.
        client.copy(uids[:1], imap.folder)
        client.add_flags(uids[:1], [imapclient.DELETED], silent=True)
        client.uid_expunge(uids[:1])
    finally:
        if session.client is not None:
            session.client.select_folder(imap.folder)
        session.close()
    log.info("replay: %s put back in %s of mailbox %s (job %s)", key, imap.folder, box.name,
             "reset" if job is not None else "none kept: read as new")
    if new_ticket:
        return f"{key}: back in {imap.folder!r} of mailbox {box.name}; the bridge opens a new ticket for it" + (
            f" (it was on ticket {previous})" if previous else "")
    return f"{key}: back in {imap.folder!r} of mailbox {box.name}; its job was " + (
        "reset, the bridge runs it again" if job is not None else "already pruned, the bridge reads it as new")


def _key(raw: bytes) -> str:
    """The email's key as the intake computes it (its Message-ID, else the digest of its bytes)."""
    try:
        return parse_email(raw).key
    except UnparseableEmail:
        return "sha256:" + hashlib.sha256(raw).hexdigest()
