"""IMAP adapter (imapclient, blocking): the work session that searches, fetches and marks mail,
and the watcher session that IDLEs (or polls) and says when to look again.

Both are blocking and meant to run in their own threads; the async intake drives the session
through a single-thread executor so IMAP commands never interleave.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import date
from typing import Callable, Iterable

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError

from bridge.auth.tokens import TokenSource
from bridge.config import ImapConfig
from bridge.errors import AccessDenied, ConfigurationError, RateLimited, ServiceDown, TransientError
from bridge.mail.parse import message_id_key

log = logging.getLogger("bridge.imap")

_HEADER_KEY = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
IDLE_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Envelope:
    """What is known of a message before downloading it."""

    uid: int
    size: int
    message_id: str


# What providers answer when a mailbox is used too hard: Exchange Online ("Request is throttled.
# Suggested Backoff Time: 299961 milliseconds", "Server Unavailable. 15", and "User is
# authenticated but not connected" when too many sessions were opened lately), Gmail ("[ALERT]
# Too many simultaneous connections"), Dovecot ("[LIMIT] Maximum number of connections") and the
# RFC 5530 codes. Not a credentials problem: wait and try again, nothing is dropped.
_THROTTLED = re.compile(r"\[(?:LIMIT|UNAVAILABLE|INUSE|THROTTLED)\]|throttl|server unavailable|server busy|"
                        r"too many (?:simultaneous )?connections|maximum number of connections|"
                        r"authenticated but not connected", re.I)
_BACKOFF_MS = re.compile(r"backoff time:\s*(\d{1,9})\s*milliseconds", re.I)


def throttle_delay(text: str, default: float = 60.0) -> float | None:
    """Seconds to wait when ``text`` (a server's NO/BAD answer) says the mailbox is throttled or
    has too many connections (``default`` when it names no time); None when it says something else."""
    if not _THROTTLED.search(text):
        return None
    suggested = _BACKOFF_MS.search(text)
    return min(3600.0, int(suggested.group(1)) / 1000) if suggested else default


# Providers end an IDLE long before RFC 2177's 29 minutes: renew it before they do.
IDLE_RENEW_CAP = {"gmail": 9 * 60.0, "microsoft": 20 * 60.0}


def provider_of(cfg: ImapConfig, capabilities: Iterable[bytes | str]) -> str:
    """``gmail`` (X-GM-EXT-1), ``microsoft`` (Exchange's own capabilities or host), else
    ``generic``; a configured provider wins over what the server shows."""
    if cfg.provider != "auto":
        return cfg.provider
    names = {c.decode() if isinstance(c, bytes) else c for c in capabilities}
    names = {name.upper() for name in names}
    if "X-GM-EXT-1" in names:
        return "gmail"
    if names & {"CLIENTACCESSRULES", "CLIENTNETWORKPRESENCELOCATION", "BACKENDAUTHENTICATE"} or \
            cfg.host.lower().rstrip(".").endswith(("outlook.office365.com", ".outlook.com")):
        return "microsoft"
    return "generic"


def idle_renew_seconds(cfg: ImapConfig, provider: str) -> float:
    return min(cfg.idle_renew_seconds, IDLE_RENEW_CAP.get(provider, cfg.idle_renew_seconds))


def keyword_problem(cfg: ImapConfig, provider: str, permanent_flags: Iterable[bytes | str] | None) -> str:
    """Why the configured done-marking cannot work on this folder, or "".

    A keyword needs ``\\*`` (or the keyword itself) in PERMANENTFLAGS, or it is forgotten and
    every email is read again at the next scan (Dovecot's maildir stops offering ``\\*`` after 26
    keywords in a folder). On Gmail the folder ``[Gmail]/All Mail`` holds every message, and
    moving one out of it does not remove it from there."""
    if cfg.done.mode == "move":
        if provider == "gmail" and cfg.folder.lower().endswith("/all mail"):
            return "imap.folder: Gmail's All Mail holds every message and keeps moved ones; watch INBOX or a label"
        return ""
    if permanent_flags is None:
        return ""  # not announced: RFC 3501 says any flag may then be stored for the session only, trust it
    flags = {f.decode() if isinstance(f, bytes) else f for f in permanent_flags}
    if "\\*" in flags or cfg.done.keyword in flags:
        return ""
    hint = "; on Gmail move to a label (e.g. Processed)" if provider == "gmail" else ""
    return (f"imap.done: the server does not keep the keyword {cfg.done.keyword} in {cfg.folder!r} "
            f"(PERMANENTFLAGS has no \\*): set imap.done.mode: move{hint}")


def _translate(exc: Exception, cfg: ImapConfig) -> Exception:
    delay = throttle_delay(str(exc), cfg.throttle_seconds) if isinstance(exc, IMAPClientError) else None
    if delay is not None:
        return RateLimited(f"{cfg.host}: the server asks to slow down ({str(exc)[:200]}); waiting {delay:.0f}s",
                           service="imap", retry_after=delay)
    if isinstance(exc, LoginError):
        return AccessDenied(f"login refused for {cfg.username}", service="imap")
    if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError, OSError)):
        return ServiceDown(f"{cfg.host}:{cfg.port}: {exc}", service="imap")
    return TransientError(f"{type(exc).__name__}: {exc}", service="imap")


def connect(cfg: ImapConfig, tokens: TokenSource | None = None) -> imapclient.IMAPClient:
    """Open and authenticate one connection (TLS, STARTTLS or plain for loopback); ``tokens``
    with ``auth: oauth2``."""
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
        try:
            authenticate(client, cfg, tokens)
        except BaseException:
            _shutdown(client)
            raise
        return client
    except (IMAPClientError, OSError) as exc:
        raise _translate(exc, cfg) from exc


def _shutdown(client: imapclient.IMAPClient) -> None:
    """Drop a connection without a goodbye; it may already be broken."""
    try:
        client.shutdown()
    except Exception:  # already closed
        log.debug("imap: shutdown of a broken connection failed", exc_info=True)


def _logout(client: imapclient.IMAPClient) -> None:
    """Say goodbye (LOGOUT) when stopping; a broken link is just dropped."""
    try:
        client.logout()
    except Exception:  # the server may be gone already
        _shutdown(client)


def _create_folder(client: imapclient.IMAPClient, folder: str) -> None:
    """Create a folder; another session creating it at the same moment is fine."""
    try:
        client.create_folder(folder)
    except IMAPClientError as exc:
        if "ALREADYEXISTS" not in str(exc).upper() and not client.folder_exists(folder):
            raise


def authenticate(client: imapclient.IMAPClient, cfg: ImapConfig, tokens: TokenSource | None) -> None:
    """LOGIN with the password, or SASL XOAUTH2 / OAUTHBEARER with an access token; a refused
    token is dropped so the next connection brings a fresh one."""
    if cfg.auth != "oauth2":
        client.login(cfg.username, cfg.password.get_secret_value())
        return
    if tokens is None:
        raise ConfigurationError("imap.auth is oauth2 but no token source was given", service="imap")
    token = tokens.token()
    try:
        if tokens.mechanism == "oauthbearer":
            client.oauthbearer_login(tokens.user, token)
        else:
            client.oauth2_login(tokens.user, token)
    except LoginError:
        tokens.invalidate(token)
        raise


class ImapSession:
    """The work connection: one folder selected, UIDs only, blocking calls."""

    def __init__(self, cfg: ImapConfig, tokens: TokenSource | None = None) -> None:
        self.cfg = cfg
        self.tokens = tokens
        self.client: imapclient.IMAPClient | None = None
        self.uidvalidity = 0
        self.can_move = False
        self.provider = "generic"

    def open(self) -> None:
        self.close()
        client = connect(self.cfg, self.tokens)
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
            self.provider = provider_of(self.cfg, client.capabilities())
            problem = keyword_problem(self.cfg, self.provider, selected.get(b"PERMANENTFLAGS"))
            if problem:
                raise ConfigurationError(problem, service="imap")
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

    def marked_since(self, since: date) -> list[tuple[int, str]]:
        """(UID, email key) of the mail marked done that arrived on or after ``since``.

        After a state restore, mail the lost instance finished after the backup carries the
        done mark while the restored journal has never heard of it: this is how it is found."""
        assert self.client is not None
        client = self.client
        moved = self.cfg.done.mode == "move"
        if moved and not self._call(client.folder_exists, self.cfg.done.folder):
            return []
        if moved:
            self._call(client.select_folder, self.cfg.done.folder)
        try:
            criteria = ["SINCE", since] if moved else ["KEYWORD", self.cfg.done.keyword, "SINCE", since]
            uids = self._call(client.search, criteria)
            found: list[tuple[int, str]] = []
            for start in range(0, len(uids), 500):
                data = self._call(client.fetch, uids[start:start + 500], ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
                for uid, item in sorted(data.items()):
                    value = (item.get(_HEADER_KEY, b"") or b"").decode("ascii", "replace").partition(":")[2]
                    key = message_id_key(value)
                    if key is None:  # keyed by its bytes, as the intake does
                        raw = self._call(client.fetch, [uid], ["BODY.PEEK[]"]).get(uid, {}).get(b"BODY[]", b"")
                        key = "sha256:" + hashlib.sha256(raw or b"").hexdigest()
                    found.append((uid, key))
            return found
        finally:
            if moved and self.client is not None:
                self._call(client.select_folder, self.cfg.folder)

    def unmark(self, uids: list[int]) -> None:
        """Undo ``mark_done`` (UIDs from ``marked_since``): the mail is unprocessed again."""
        if not uids:
            return
        assert self.client is not None
        if self.cfg.done.mode == "keyword":
            self._call(self.client.remove_flags, uids, [self.cfg.done.keyword], silent=True)
            return
        self._call(self.client.select_folder, self.cfg.done.folder)
        try:
            self._move(uids, self.cfg.folder)
        finally:
            if self.client is not None:
                self._call(self.client.select_folder, self.cfg.folder)

    def quarantine(self, uids: list[int]) -> None:
        if uids:
            self._move(uids, self.cfg.quarantine_folder)

    def move_to(self, uids: list[int], folder: str) -> None:
        """Move finished mail to another folder (spam to the junk folder), creating it if missing."""
        assert self.client is not None
        if not self._call(self.client.folder_exists, folder):
            self._call(_create_folder, self.client, folder)
        self._move(uids, folder)

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

    def __init__(self, cfg: ImapConfig, notify: Callable[[], None], tokens: TokenSource | None = None,
                 name: str = "imap") -> None:
        self.cfg = cfg
        self.notify = notify
        self.tokens = tokens
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.mode = "starting"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-idle", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.signal_stop()
        self.join(timeout=5)

    def signal_stop(self) -> None:
        """Ask the thread to end (it LOGS OUT at its next check, within about a second)."""
        self._stop.set()

    def join(self, timeout: float) -> None:
        if self._thread:
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                client = connect(self.cfg, self.tokens)
            except Exception as exc:
                failures += 1
                self.mode = "reconnecting"
                delay = min(self.cfg.reconnect_max_seconds, 0.5 * 2 ** min(failures, 8)) * random.uniform(0.5, 1)
                delay = max(delay, getattr(exc, "retry_after", 0.0))  # a throttled mailbox says how long
                if failures == 1:
                    log.warning("imap watcher %s: cannot connect (%s); retrying with backoff", self.name, exc)
                self._stop.wait(delay)
                continue
            if failures:
                log.info("imap watcher %s: connected again after %d failed attempt(s)", self.name, failures)
            failures = 0
            try:
                client.select_folder(self.cfg.folder, readonly=True)
                if self.cfg.idle and client.has_capability("IDLE"):
                    self.mode = "idle"
                    self._idle(client, idle_renew_seconds(self.cfg, provider_of(self.cfg, client.capabilities())))
                else:
                    self.mode = "poll"
                    self._poll(client)
            except Exception as exc:
                if not self._stop.is_set():
                    self.mode = "reconnecting"
                    log.warning("imap watcher %s: connection lost (%s); reconnecting", self.name, exc)
                    # The work session may be on the same dead server: have it look now, so an
                    # outage shows at once (in /readyz) instead of at the next full scan.
                    self.notify()
                    failures = 1
                    self._stop.wait(0.5)
            finally:
                if self._stop.is_set():
                    _logout(client)
                else:
                    _shutdown(client)

    def _idle(self, client: imapclient.IMAPClient, renew_seconds: float) -> None:
        first = True
        while not self._stop.is_set():
            client.idle()
            if first:
                # Only now can no arrival slip between a scan and IDLE: ask for one scan.
                self.notify()
                first = False
            renew_at = time.monotonic() + renew_seconds
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
