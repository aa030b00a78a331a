"""IMAP adapter (imapclient, blocking): the work session that searches, fetches and marks mail,
and the watcher session that IDLEs (or polls) and says when to look again.

Both are blocking and meant to run in their own threads; the async intake drives the session
through a single-thread executor so IMAP commands never interleave.
"""

from __future__ import annotations

import hashlib
import logging
import random
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from bridge.config import ImapConfig
from bridge.errors import AccessDenied, ConfigurationError, ServiceDown, TransientError

log = logging.getLogger("bridge.imap")

_HEADER_KEY = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
IDLE_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Envelope:
    """What is known of a message before downloading it."""

    uid: int
    size: int
    message_id: str


def _translate(exc: Exception, cfg: ImapConfig) -> Exception:
    if isinstance(exc, LoginError):
        return AccessDenied(f"login refused for {cfg.username}", service="imap")
    if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError, OSError)):
        return ServiceDown(f"{cfg.host}:{cfg.port}: {exc}", service="imap")
    return TransientError(f"{type(exc).__name__}: {exc}", service="imap")


def connect(cfg: ImapConfig) -> imapclient.IMAPClient:
    """Open and authenticate one connection (TLS, STARTTLS or plain for loopback)."""
    try:
        context = ssl.create_default_context() if cfg.security != "plain" else None
        client = imapclient.IMAPClient(
            cfg.host,
            port=cfg.port,
            ssl=cfg.security == "tls",
            ssl_context=context,
            timeout=cfg.timeout_seconds,
        )
        if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
            # imapclient turns imaplib's debug level to 5 to route its trace to a logger, and
            # imaplib then formats a repr of every literal before the logger drops the line:
            # for a 20 MB email that held the GIL for ~0.25 s (bench/loop_stall).
            client._imap.debug = 0
        if cfg.security == "starttls":
            client.starttls(context)
        authenticate(client, cfg)
        return client
    except (IMAPClientError, OSError) as exc:
        raise _translate(exc, cfg) from exc


def _shutdown(client: imapclient.IMAPClient) -> None:
    """Drop a connection without a goodbye; it may already be broken."""
    try:
        client.shutdown()
    except Exception:  # already closed
        log.debug("imap: shutdown of a broken connection failed", exc_info=True)


def _create_folder(client: imapclient.IMAPClient, folder: str) -> None:
    """Create a folder; another session creating it at the same moment is fine."""
    try:
        client.create_folder(folder)
    except IMAPClientError as exc:
        if "ALREADYEXISTS" not in str(exc).upper() and not client.folder_exists(folder):
            raise


def authenticate(client: imapclient.IMAPClient, cfg: ImapConfig) -> None:
    """The authentication seam: password LOGIN today, XOAUTH2 with the OAuth2 issue."""
    client.login(cfg.username, cfg.password.get_secret_value())


class ImapSession:
    """The work connection: one folder selected, UIDs only, blocking calls."""

    def __init__(self, cfg: ImapConfig) -> None:
        self.cfg = cfg
        self.client: imapclient.IMAPClient | None = None
        self.uidvalidity = 0
        self.can_move = False

    def open(self) -> None:
        self.close()
        client = connect(self.cfg)
        try:
            self.can_move = client.has_capability("MOVE")
            folders = [self.cfg.quarantine_folder]
            if self.cfg.done.mode == "move":
                folders.append(self.cfg.done.folder)
            for folder in folders:
                if not client.folder_exists(folder):
                    _create_folder(client, folder)
            if not client.folder_exists(self.cfg.folder):
                raise ConfigurationError(f"imap.folder: {self.cfg.folder!r} does not exist", service="imap")
            selected = client.select_folder(self.cfg.folder)
            self.uidvalidity = int(selected.get(b"UIDVALIDITY", 0))
        except (IMAPClientError, OSError) as exc:
            _shutdown(client)
            raise _translate(exc, self.cfg) from exc
        except ConfigurationError:
            _shutdown(client)
            raise
        self.client = client

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.logout()
            except Exception:  # the connection may already be gone
                log.debug("imap: logout failed", exc_info=True)
            self.client = None

    def _call(self, fn: Callable, *args, **kwargs):
        if self.client is None:
            raise ServiceDown("not connected", service="imap")
        try:
            return fn(*args, **kwargs)
        except (IMAPClientError, OSError) as exc:
            _shutdown(self.client)
            self.client = None
            raise _translate(exc, self.cfg) from exc

    def search_unprocessed(self, after_uid: int = 0) -> list[int]:
        """UIDs in the folder not marked done yet (all of them in move mode), ascending."""
        assert self.client is not None
        criteria: list = []
        if self.cfg.done.mode == "keyword":
            criteria += ["UNKEYWORD", self.cfg.done.keyword]
        if after_uid:
            criteria += ["UID", f"{after_uid + 1}:*"]
        # Dovecot evaluates a SEARCH on the view as it was before the command synced new
        # arrivals; a NOOP first makes the search see everything IDLE just told us about.
        self._call(self.client.noop)
        uids = self._call(self.client.search, criteria or ["ALL"])
        return sorted(uid for uid in uids if uid > after_uid)

    def envelopes(self, uids: Iterable[int]) -> list[Envelope]:
        """Size and Message-ID of each message, without downloading bodies."""
        assert self.client is not None
        data = self._call(self.client.fetch, list(uids), ["RFC822.SIZE", "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        result = []
        for uid, item in sorted(data.items()):
            header = item.get(_HEADER_KEY, b"") or b""
            value = header.decode("ascii", "replace").partition(":")[2].strip()
            result.append(Envelope(uid, int(item.get(b"RFC822.SIZE", 0)), value))
        return result

    def fetch(self, uids: Iterable[int]) -> dict[int, bytes]:
        """Raw bytes of each message (BODY.PEEK so nothing is marked \\Seen)."""
        assert self.client is not None
        data = self._call(self.client.fetch, list(uids), ["BODY.PEEK[]"])
        return {uid: item.get(b"BODY[]", b"") or b"" for uid, item in data.items()}

    def header_digest(self, uid: int) -> str:
        """SHA-256 of a message's header block: the key of a too-large mail without Message-ID."""
        assert self.client is not None
        data = self._call(self.client.fetch, [uid], ["BODY.PEEK[HEADER]"])
        return "sha256:" + hashlib.sha256(data.get(uid, {}).get(b"BODY[HEADER]", b"")).hexdigest()

    def mark_done(self, uids: list[int]) -> None:
        """Mark finished messages: a private keyword, or a MOVE to the processed folder."""
        if not uids:
            return
        if self.cfg.done.mode == "keyword":
            assert self.client is not None
            self._call(self.client.add_flags, uids, [self.cfg.done.keyword], silent=True)
        else:
            self._move(uids, self.cfg.done.folder)

    def quarantine(self, uids: list[int]) -> None:
        if uids:
            self._move(uids, self.cfg.quarantine_folder)

    def _move(self, uids: list[int], folder: str) -> None:
        assert self.client is not None
        if self.can_move:
            self._call(self.client.move, uids, folder)
        else:
            self._call(self.client.copy, uids, folder)
            self._call(self.client.add_flags, uids, [imapclient.DELETED], silent=True)
            self._call(self.client.uid_expunge, uids)

    def restore_from_quarantine(self, key: str) -> int:
        """Move the quarantined message(s) with this key back to the inbox folder; returns how many."""
        assert self.client is not None
        client = self.client
        self._call(client.select_folder, self.cfg.quarantine_folder)
        try:
            if key.startswith("sha256:"):
                raw = self._call(client.fetch, self._call(client.search, ["ALL"]), ["BODY.PEEK[]", "BODY.PEEK[HEADER]"])
                uids = [
                    uid
                    for uid, item in raw.items()
                    if key in (
                        "sha256:" + hashlib.sha256(item.get(b"BODY[]", b"")).hexdigest(),
                        "sha256:" + hashlib.sha256(item.get(b"BODY[HEADER]", b"")).hexdigest(),
                    )
                ]
            else:
                uids = self._call(client.search, ["HEADER", "Message-ID", key])
            if uids:
                if self.cfg.done.mode == "keyword":
                    self._call(client.remove_flags, uids, [self.cfg.done.keyword], silent=True)
                self._move(list(uids), self.cfg.folder)
            return len(uids)
        finally:
            if self.client is not None:
                self._call(client.select_folder, self.cfg.folder)


class IdleWatcher:
    """Its own connection in its own thread: IDLE when offered, else a poll timer; calls
    ``notify`` whenever the folder may hold something new (and after every reconnect)."""

    def __init__(self, cfg: ImapConfig, notify: Callable[[], None]) -> None:
        self.cfg = cfg
        self.notify = notify
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.mode = "starting"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="imap-idle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                client = connect(self.cfg)
            except Exception as exc:
                failures += 1
                delay = min(self.cfg.reconnect_max_seconds, 0.5 * 2 ** min(failures, 8)) * random.uniform(0.5, 1)
                if failures == 1:
                    log.warning("imap watcher: cannot connect (%s); retrying with backoff", exc)
                self._stop.wait(delay)
                continue
            if failures:
                log.info("imap watcher: connected again after %d failed attempt(s)", failures)
            failures = 0
            try:
                client.select_folder(self.cfg.folder, readonly=True)
                if self.cfg.idle and client.has_capability("IDLE"):
                    self.mode = "idle"
                    self._idle(client)
                else:
                    self.mode = "poll"
                    self._poll(client)
            except Exception as exc:
                if not self._stop.is_set():
                    log.warning("imap watcher: connection lost (%s); reconnecting", exc)
                    failures = 1
                    self._stop.wait(0.5)
            finally:
                _shutdown(client)

    def _idle(self, client: imapclient.IMAPClient) -> None:
        first = True
        while not self._stop.is_set():
            client.idle()
            if first:
                # Only now can no arrival slip between a scan and IDLE: ask for one scan.
                self.notify()
                first = False
            renew_at = time.monotonic() + self.cfg.idle_renew_seconds
            try:
                while not self._stop.is_set() and time.monotonic() < renew_at:
                    started = time.monotonic()
                    responses = client.idle_check(timeout=IDLE_CHECK_SECONDS)
                    if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                        self.notify()
                    elif not responses and time.monotonic() - started < IDLE_CHECK_SECONDS / 2:
                        # imapclient swallows EOF: "readable" with nothing to read is a dead link.
                        raise ConnectionError("server closed the IDLE connection")
            finally:
                try:
                    client.idle_done()
                except (IMAPClientError, OSError):  # the link is already gone
                    log.debug("imap watcher: DONE on a dead connection", exc_info=True)

    def _poll(self, client: imapclient.IMAPClient) -> None:
        self.notify()
        while not self._stop.wait(self.cfg.poll_interval_seconds):
            client.noop()
            self.notify()
