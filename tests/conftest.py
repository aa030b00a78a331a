"""Shared fixtures for the integration tests: a real Dovecot, an SMTP sink, per-test folders and the corpus.

Missing prerequisites FAIL the tests instead of skipping them: a skipped suite looks green on CI.
Integration tests carry ``@pytest.mark.integration``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import imapclient
import pytest

from bridge.sandbox.dovecot import Dovecot
from bridge.sandbox.smtp_sink import SmtpSink

_folder_numbers = itertools.count(1)


class Mailbox:
    """A folder (and its quarantine) private to one test, with shortcuts to fill and inspect them.

    host/port/user/password are what a bridge config needs to reach the folder.
    """

    def __init__(self, server: Dovecot, folder: str) -> None:
        self.server = server
        self.host = server.host
        self.port = server.port
        self.user = "support"
        self.password = server.users[self.user]
        self.folder = folder
        self.quarantine = f"{folder}_quarantine"

    def append(self, raw: bytes, flags: tuple[str, ...] = ()) -> int:
        """APPEND to the test's folder and return the new UID."""
        return self.server.append(raw, folder=self.folder, user=self.user, flags=flags)

    def client(self) -> imapclient.IMAPClient:
        """A fresh logged-in client; the caller logs it out."""
        return self.server.client(self.user)

    def flags(self, uid: int, folder: str | None = None) -> set[str]:
        r"""Flags and keywords of one message as str, e.g. {"\Seen", "$BridgeDone"}; empty if it is gone."""
        with self.client() as imap:
            imap.select_folder(folder or self.folder, readonly=True)
            return {flag.decode() for flag in imap.get_flags([uid]).get(uid, ())}

    def uids(self, folder: str | None = None) -> list[int]:
        """UIDs present in the test's folder (or `folder`), ascending; none while the folder does not exist yet."""
        with self.client() as imap:
            if not imap.folder_exists(folder or self.folder):
                return []
            imap.select_folder(folder or self.folder, readonly=True)
            return sorted(imap.search("ALL"))


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One private Dovecot for the whole run, on a free loopback port."""
    if Dovecot.binary() is None:
        pytest.fail("Dovecot is missing: run scripts/install-dovecot.sh (make test does)", pytrace=False)
    with Dovecot() as server:
        yield server


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    """One SMTP sink for the whole run; tests should use `sink`, which resets it."""
    with SmtpSink() as server:
        yield server


@pytest.fixture
def sink(smtp_sink: SmtpSink) -> SmtpSink:
    """The session sink, emptied, listening, with no scripted failures or kills left by earlier tests."""
    smtp_sink.reset()
    return smtp_sink


@pytest.fixture
def mailbox(dovecot: Dovecot, request: pytest.FixtureRequest) -> Mailbox:
    """Fresh folders `t_<test>_<n>` and `t_<test>_<n>_quarantine`, so tests never see each other's mail."""
    name = re.sub(r"[^A-Za-z0-9]+", "_", request.node.name).strip("_")[:40]
    box = Mailbox(dovecot, f"t_{name}_{next(_folder_numbers)}")
    with box.client() as imap:
        imap.create_folder(box.folder)
        imap.create_folder(box.quarantine)
    return box


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared real-world email corpus, next to the repository (../shared/corpus)."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
    if not path.is_dir():
        pytest.fail(f"email corpus missing at {path}", pytrace=False)
    return path
