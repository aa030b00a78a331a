"""SMTP adapter (aiosmtplib): sends composed messages over reused connections, translating failures into the tree."""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aiosmtplib

from bridge.config import SmtpConfig
from bridge.errors import AccessDenied, RejectedByService, ServiceDown, TransientError

log = logging.getLogger("bridge.smtp")

_QUIT_TIMEOUT = 5.0  # QUIT is a courtesy: never hold a sender long for it
T = TypeVar("T")


@dataclass(eq=False)
class _Connection:
    """One open, authenticated client and what the pool needs to retire it."""

    client: aiosmtplib.SMTP
    sent: int = 0  # messages delivered on it; > 0 means it is being reused
    idle_since: float = 0.0


class _StaleConnection(Exception):
    """A reused connection was found dead before DATA: nothing was handed over, so a new one may try."""


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

    def __init__(self, cfg: SmtpConfig) -> None:
        self.cfg = cfg
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
        if cfg.username:
            options["username"] = cfg.username
            options["password"] = cfg.password.get_secret_value()
        return options

    async def send(self, raw: str | bytes, sender: str, recipients: list[str]) -> None:
        """Deliver ``raw`` or raise TransientError / RejectedByService / AccessDenied."""
        try:
            await self._on_own_loop(self._deliver(raw, sender, recipients))
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AccessDenied(f"login refused ({exc.code})", service="smtp") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [err.code for err in exc.recipients]
            if all(code >= 500 for code in codes):
                raise RejectedByService(f"recipient refused: {exc.recipients[0].message}", service="smtp") from exc
            raise TransientError(f"recipient deferred: {exc.recipients[0].message}", service="smtp") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise RejectedByService(f"{exc.code} {exc.message}", service="smtp") from exc
            raise TransientError(f"{exc.code} {exc.message}", service="smtp") from exc
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

    async def _deliver(self, raw: str | bytes, sender: str, recipients: list[str]) -> None:
        """One transaction; once more on a new connection if a reused one was dead before DATA."""
        try:
            await self._transact(await self._take(reuse=True), raw, sender, recipients)
        except _StaleConnection as stale:
            log.debug("smtp: reused connection was gone (%s), retrying on a new one", stale.__cause__)
            await self._transact(await self._take(reuse=False), raw, sender, recipients)

    async def _transact(self, conn: _Connection, raw: str | bytes, sender: str, recipients: list[str]) -> None:
        """MAIL, RCPT, DATA as explicit steps, so a failure is known to be before or after DATA began.

        On success the connection goes back to the pool (or is retired at its message limit); on
        any failure it is retired. Raises _StaleConnection only when retrying cannot double the
        email: the connection was reused and DATA had not been sent.
        """
        client = conn.client
        data_started = False
        try:
            await client.mail(sender)
            refused: list[aiosmtplib.SMTPRecipientRefused] = []
            for recipient in recipients:
                try:
                    await client.rcpt(recipient)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    refused.append(exc)
            if len(refused) == len(recipients):  # like sendmail(): fine if anyone accepted
                raise aiosmtplib.SMTPRecipientsRefused(refused)
            data_started = True
            await client.data(raw)
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
            await client.connect()  # EHLO, STARTTLS and AUTH as configured
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
            if self.cfg.username:
                await client.login(self.cfg.username, self.cfg.password.get_secret_value())
            await client.quit()
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise AccessDenied(f"login refused ({exc.code})", service="smtp") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise ServiceDown(f"cannot reach {self.cfg.host}:{self.cfg.port}: {exc}", service="smtp") from exc
        auth = " auth ok" if self.cfg.username else ""
        return f"SMTP {self.cfg.host}:{self.cfg.port} ({self.cfg.security}) EHLO ok{auth}"
