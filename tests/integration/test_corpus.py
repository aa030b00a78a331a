"""Every real-world email of ../shared/corpus ends as a ticket or in quarantine with a reason."""

from __future__ import annotations

import collections
import hashlib

import imapclient
import pytest

from bridge.mail.parse import parse_email
from bridge.errors import UnparseableEmail
from bridge.store import Store
from tests.integration.harness import wait_until

pytestmark = pytest.mark.integration


def corpus_files(corpus_dir):
    """Every file of the corpus (emails, and the images, sounds and HTML fixtures beside them)."""
    return [p for p in sorted(corpus_dir.rglob("*")) if p.is_file() and p.name != "README.md"]


def _key(raw: bytes) -> str:
    try:
        return parse_email(raw).key
    except UnparseableEmail:
        return "sha256:" + hashlib.sha256(raw).hexdigest()


def test_every_corpus_email_is_ticketed_or_quarantined(bridge_factory, mailbox, odoo, sink, corpus_dir, tmp_path):
    uids, refused = {}, []
    for path in corpus_files(corpus_dir):
        try:
            uids[mailbox.append(path.read_bytes())] = path.relative_to(corpus_dir)
        except imapclient.exceptions.IMAPClientError:
            refused.append(path.name)  # e.g. NUL bytes: no IMAP server would hold it as an email
    # The key is computed from the bytes as stored by the server (it may normalise line ends).
    client = mailbox.client()
    client.select_folder(mailbox.folder, readonly=True)
    stored = client.fetch(list(uids), ["BODY.PEEK[]"])
    keys = {uids[uid]: _key(item[b"BODY[]"]) for uid, item in stored.items()}
    client.logout()
    assert len(keys) >= 100, f"corpus looks incomplete: {len(keys)} files accepted from {corpus_dir}"
    runner = bridge_factory()
    wait_until(lambda: _all_marked(mailbox), timeout=120, what="every corpus email finished")
    runner.stop()

    store = Store(tmp_path / "state")
    try:
        posted = {m.get("message_id") for m in odoo.records("mail.message")}
        quarantined = dict(store.quarantine.items())
    finally:
        store.close()
    outcomes = collections.Counter()
    for path, key in keys.items():
        if key in posted:
            outcomes["ticket or follow-up"] += 1
        elif key in quarantined:
            assert quarantined[key]["reason"], path
            outcomes["quarantine: " + quarantined[key]["reason"].split(":")[0][:40]] += 1
        else:
            raise AssertionError(f"{path} ({key}) is neither on a ticket nor quarantined")
    print(f"\ncorpus: {len(keys)} files appended ({len(refused)} refused by Dovecot), " + ", ".join(f"{n} {what}" for what, n in outcomes.most_common()))


def _all_marked(mailbox):
    return not mailbox.uids() or all(
        "$BridgeDone" in {f.decode() if isinstance(f, bytes) else f for f in mailbox.flags(uid)}
        for uid in mailbox.uids()
    )
