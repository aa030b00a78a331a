"""SMTP adapter (aiosmtplib): sends composed messages over reused connections, translating failures into the tree."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosmtplib

from bridge.auth.tokens import TokenSource, sasl_base64
from bridge.config import SmtpConfig
from bridge.errors import (
    AccessDenied,
    RecipientDeferred,
    RejectedByService,
    ServiceDown,
    TransientError,
    Undeliverable,
)

log = logging.getLogger("bridge.smtp")

_QUIT_TIMEOUT = 5.0  # QUIT is a courtesy: never hold a sender long for it
T = TypeVar("T")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_ENHANCED_STATUS = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})(?!\S)")
_ADDRESS_IN_TEXT = re.compile(r"<?[^\s<>@]+@[^\s<>@]+>?")


@dataclass(eq=False)
class _Connection:
    """One open, authenticated client and what the pool needs to retire it."""

    client: aiosmtplib.SMTP
    sent: int = 0  # messages delivered on it; > 0 means it is being reused
    idle_since: float = 0.0


class _StaleConnection(Exception):
    """A reused connection was found dead before DATA: nothing was handed over, so a new one may try."""


@dataclass(frozen=True)
class _Envelope:
    """What one transaction sends: the bytes of the message and how the session must carry them."""

    data: bytes
    sender: str
    recipients: list[str]
    smtputf8: bool  # a non-ASCII address or header (RFC 6531/6532): only a server offering SMTPUTF8 takes it
    eight_bit: bool  # any byte over 127: declared BODY=8BITMIME where the server offers it

    @classmethod
    def of(cls, raw: str | bytes, sender: str, recipients: list[str]) -> _Envelope:
        data = raw.encode("utf-8") if isinstance(raw, str) else raw
        headers = _HEADER_END.split(data, 1)[0]
        smtputf8 = not (sender.isascii() and all(r.isascii() for r in recipients) and headers.isascii())
        return cls(data, sender, recipients, smtputf8, not data.isascii())


def _reply_code(exc: aiosmtplib.SMTPResponseException) -> str:
    """``550 5.1.1``: the reply code and its enhanced status code, none of the server's text,
    which names the recipient more often than not."""
    match = _ENHANCED_STATUS.match(exc.message or "")
    return f"{exc.code} {match.group(1)}" if match else str(exc.code)


def _scrubbed(text: str) -> str:
    """A server's reply text with any address in it replaced: errors reach /readyz and logs."""
    return _ADDRESS_IN_TEXT.sub("<address>", text)


async def _greet(client: aiosmtplib.SMTP) -> None:
    """EHLO now if connect() did not (plain, no AUTH): its extensions (SMTPUTF8) are needed before MAIL."""
    if client.is_ehlo_or_helo_needed:
        try:
            await client.ehlo()
        except aiosmtplib.SMTPHeloError:
            if not client.is_connected:
                raise
            await client.helo()  # a server without ESMTP: no SMTPUTF8, no 8BITMIME


def _session_gone(exc: BaseException) -> bool:
    """True when the server had dropped the session (disconnect) or is dropping it (421)."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == 421
    return isinstance(exc, (aiosmtplib.SMTPServerDisconnected, ConnectionError))


class SmtpSender:
    """Sends raw messages with TLS, STARTTLS or plain (loopback) and optional AUTH over a small pool.

    A burst of acknowledgements would otherwise pay a TCP+TLS handshake and a login per email. At
    most ``max_connections`` are open (connecting, sending, idle or quitting); further senders wait.
    Idle connections are QUIT after ``idle_seconds`` by a timer task that sleeps until the oldest
    one expires; a connection is also QUIT after ``max_messages_per_connection`` messages. After
    any error the connection is closed, never reused: errors are rare, reconnecting is cheap, and
    a session in an unknown state (half an envelope, a reply still in flight) is never trusted
    with the next email — so no RSET dance.

    The connections live on a small event loop of their own, in its own thread: an SMTP
    transaction is four round trips, and on the bridge's main loop each one waited behind every
    pipeline step ready at that moment, so under a backlog replies trickled out at a fraction of
    the rate tickets were made. ``send`` may be awaited from any loop, by many tasks at once.
    """

    def __init__(self, cfg: SmtpConfig, tokens: TokenSource | None = None) -> None:
        """``tokens``: where access tokens come from with ``auth: oauth2``."""
        self.cfg = cfg
        self.tokens = tokens
        self._idle: list[_Connection] = []  # oldest first; senders take the newest so spare ones age out
        self._open = 0
        self._changed = asyncio.Event()  # set (and replaced) whenever a connection or a slot frees up
        self._reaper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_lock = threading.Lock()

    def _own_loop(self) -> asyncio.AbstractEventLoop:
        """The SMTP thread's loop, started on first use."""
        with self._thread_lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="smtp", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    async def _on_own_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the SMTP thread; cancelling the caller cancels it there too."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._own_loop()))

    def _options(self) -> dict:
        cfg = self.cfg
        options: dict = {
            "hostname": cfg.host,
            "port": cfg.port,
            "timeout": cfg.timeout_seconds,
            "use_tls": cfg.security == "tls",
            "start_tls": cfg.security == "starttls",
        }
        if cfg.security != "plain":
            options["tls_context"] = ssl.create_default_context()
        if cfg.username and cfg.auth == "password":
            options["username"] = cfg.username
            options["password"] = cfg.password.get_secret_value()
        return options

    async def _authenticate_oauth(self, client: aiosmtplib.SMTP) -> None:
        """SASL XOAUTH2 or OAUTHBEARER with a fresh access token; a refused token is dropped so
        the next connection asks for a new one."""
        tokens = self.tokens
        if tokens is None:
            raise AccessDenied("smtp.auth is oauth2 but no token source was given", service="smtp")
        token = await asyncio.to_thread(tokens.token)
        try:
            if tokens.mechanism == "oauthbearer":
                response = await client.execute_command(
                    b"AUTH", b"OAUTHBEARER", sasl_base64("oauthbearer", tokens.user, token).encode())
                if response.code == 334:  # the error challenge (RFC 7628 §3.2.3): answer %x01 for the verdict
                    response = await client.execute_command(b"AQ==")
                if response.code != 235:
                    raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)
            else:
                await client.auth_xoauth2(tokens.user, token)
        except aiosmtplib.SMTPAuthenticationError:
            tokens.invalidate(token)
            raise

    @property
    def _authenticates(self) -> bool:
        return self.cfg.auth == "oauth2" or bool(self.cfg.username)

    async def send(self, raw: str | bytes, sender: str, recipients: list[str]) -> None:
        """Deliver ``raw`` (a str is sent as UTF-8) or raise a BridgeError:

        - Undeliverable: every recipient refused with 5xx, or a non-ASCII address (or header)
          and a server that does not offer SMTPUTF8 (then nothing was sent);
        - RecipientDeferred: a recipient deferred with 4xx; the server itself is up;
        - RejectedByService / TransientError: the server refused MAIL or DATA with 5xx / 4xx;
        - ServiceDown: the server cannot be reached; AccessDenied: the login was refused.

        Error texts never contain a recipient's address: they reach logs and ``/readyz``.
        """
        envelope = _Envelope.of(raw, sender, recipients)
        try:
            await self._on_own_loop(self._deliver(envelope))
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AccessDenied(f"login refused ({exc.code})", service="smtp") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = ", ".join(sorted({_reply_code(err) for err in exc.recipients}))
            if all(err.code >= 500 for err in exc.recipients):
                raise Undeliverable(f"recipient refused ({codes})", service="smtp") from exc
            raise RecipientDeferred(f"recipient deferred ({codes})", service="smtp") from exc
        except aiosmtplib.SMTPResponseException as exc:
            text = f"{exc.code} {_scrubbed(exc.message)}"
            if exc.code >= 500:
                raise RejectedByService(text, service="smtp") from exc
            raise TransientError(text, service="smtp") from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            raise ServiceDown(f"cannot reach {self.cfg.host}:{self.cfg.port}", service="smtp") from exc
        except (aiosmtplib.SMTPTimeoutError, asyncio.TimeoutError) as exc:
            raise TransientError("timed out", service="smtp") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}", service="smtp") from exc

    async def close(self) -> None:
        """QUIT every idle connection and stop the SMTP thread (at shutdown); a later send starts afresh."""
        with self._thread_lock:
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close_idle(), loop))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.get_running_loop().run_in_executor(None, thread.join, _QUIT_TIMEOUT)
            with self._thread_lock:
                self._loop = self._thread = None
            if not thread.is_alive():
                loop.close()
            self._changed = asyncio.Event()

    async def _close_idle(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.wait([self._reaper])
            self._reaper = None
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._retire(conn, "closing") for conn in idle))

    async def _deliver(self, envelope: _Envelope) -> None:
        """One transaction; once more on a new connection if a reused one was dead before DATA."""
        try:
            await self._transact(await self._take(reuse=True), envelope)
        except _StaleConnection as stale:
            log.debug("smtp: reused connection was gone (%s), retrying on a new one", stale.__cause__)
            await self._transact(await self._take(reuse=False), envelope)

    async def _transact(self, conn: _Connection, envelope: _Envelope) -> None:
        """MAIL, RCPT, DATA as explicit steps, so a failure is known to be before or after DATA began.

        On success the connection goes back to the pool (or is retired at its message limit); on
        any failure it is retired. Raises _StaleConnection only when retrying cannot double the
        email: the connection was reused and DATA had not been sent. Raises Undeliverable before
        MAIL, leaving the connection in the pool, when the message needs SMTPUTF8 and the server
        (its EHLO) does not offer it.
        """
        client = conn.client
        options: list[str] = []
        if envelope.smtputf8:
            if not client.supports_extension("smtputf8"):
                self._release(conn)  # nothing was said on it: as good as before
                raise Undeliverable(
                    "the mail server does not offer SMTPUTF8, which an internationalised address needs",
                    service="smtp",
                )
            options.append("SMTPUTF8")
        if envelope.eight_bit and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")  # RFC 6531 servers offer it; a UTF-8 header is 8-bit data
        encoding = "utf-8" if envelope.smtputf8 else "ascii"
        data_started = False
        try:
            await client.mail(envelope.sender, options=options, encoding=encoding)
            refused: list[aiosmtplib.SMTPRecipientRefused] = []
            for recipient in envelope.recipients:
                try:
                    await client.rcpt(recipient, encoding=encoding)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    if exc.code == 421:  # the server is closing the session: nothing to do with this recipient
                        raise
                    refused.append(exc)
            if len(refused) == len(envelope.recipients):  # like sendmail(): fine if anyone accepted
                raise aiosmtplib.SMTPRecipientsRefused(refused)
            data_started = True
            await client.data(envelope.data)
        except asyncio.CancelledError:
            self._forget(conn, "cancelled")
            raise
        except Exception as exc:
            await self._retire(conn, type(exc).__name__)
            if conn.sent and not data_started and _session_gone(exc):
                raise _StaleConnection from exc
            raise
        conn.sent += 1
        if conn.sent >= self.cfg.max_messages_per_connection:
            await self._retire(conn, "message limit")
        else:
            self._release(conn)

    async def _take(self, *, reuse: bool) -> _Connection:
        """An idle connection (if ``reuse``) or a new one, waiting while max_connections are open."""
        while True:
            while reuse and self._idle:
                conn = self._idle.pop()
                if conn.client.is_connected:
                    return conn
                self._forget(conn, "closed by the server")
            if self._open < self.cfg.max_connections:
                return await self._connect()
            if self._idle:  # a new connection is wanted and idle ones fill the pool: make room
                await self._retire(self._idle.pop(0), "making room")
            else:
                await self._changed.wait()

    async def _connect(self) -> _Connection:
        self._open += 1
        client = aiosmtplib.SMTP(**self._options())
        try:
            await client.connect()  # STARTTLS and password AUTH as configured (each with its EHLO)
            await _greet(client)
            if self.cfg.auth == "oauth2":
                await self._authenticate_oauth(client)
        except BaseException:
            client.close()
            self._open -= 1
            self._notify()
            raise
        log.debug("smtp: connected to %s:%s (%d open)", self.cfg.host, self.cfg.port, self._open)
        return _Connection(client)

    def _release(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._notify()
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap())

    async def _reap(self) -> None:
        """QUIT connections idle for idle_seconds; sleeps until the oldest expires, ends when none is idle."""
        while self._idle:
            oldest = self._idle[0]
            delay = oldest.idle_since + self.cfg.idle_seconds - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await self._retire(self._idle.pop(0), "idle")

    async def _retire(self, conn: _Connection, reason: str) -> None:
        """QUIT (best effort, briefly) and close; the slot is freed even if this is cancelled."""
        try:
            if conn.client.is_connected:
                await conn.client.quit(timeout=min(_QUIT_TIMEOUT, self.cfg.timeout_seconds))
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
            pass
        finally:
            self._forget(conn, reason)

    def _forget(self, conn: _Connection, reason: str) -> None:
        conn.client.close()
        self._open -= 1
        self._notify()
        log.debug("smtp: connection closed after %d message(s): %s (%d open)", conn.sent, reason, self._open)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def check(self) -> str:
        """EHLO (and AUTH when configured) without sending anything; for `bridge check`."""
        options = self._options()
        client = aiosmtplib.SMTP(
            hostname=options["hostname"],
            port=options["port"],
            timeout=options["timeout"],
            use_tls=options["use_tls"],
            start_tls=options["start_tls"],
            tls_context=options.get("tls_context"),
        )
        try:
            await client.connect()
            await _greet(client)
            if self.cfg.auth == "oauth2":
                await self._authenticate_oauth(client)
            elif self.cfg.username:
                await client.login(self.cfg.username, self.cfg.password.get_secret_value())
            utf8 = client.supports_extension("smtputf8")
            await client.quit()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AccessDenied(f"login refused ({exc.code})", service="smtp") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ServiceDown(f"cannot reach {self.cfg.host}:{self.cfg.port}: {exc}", service="smtp") from exc
        auth = f" {self.cfg.auth} auth ok" if self._authenticates else ""
        eai = "SMTPUTF8" if utf8 else "no SMTPUTF8: internationalised addresses get no reply"
        return f"SMTP {self.cfg.host}:{self.cfg.port} ({self.cfg.security}) EHLO ok{auth}; {eai}"
