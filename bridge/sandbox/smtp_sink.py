"""An SMTP server on loopback that records messages and sessions and can fail, hang up, go down or kill.

Logins: AUTH PLAIN/LOGIN with one password, and with ``oauth_introspect`` also AUTH XOAUTH2 and
OAUTHBEARER (RFC 7628) with bearer tokens, answered the way Gmail answers them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import email
import email.policy
import json
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session

_REPLIES = {451: "451 4.3.0 try later", 550: "550 5.1.1 no such user"}
_DROP = 0  # a scripted DATA "reply" that hangs up instead of answering
_OAUTH_MECHANISMS = ["XOAUTH2", "OAUTHBEARER"]
# What a refused token gets first, as a 334 challenge the client must answer before the 535
# (Google's XOAUTH2 and RFC 7628 3.2.2); the same JSON as Dovecot's.
_TOKEN_ERRORS = {"XOAUTH2": {"status": "401", "schemes": "bearer", "scope": "mail"},
                 "OAUTHBEARER": {"status": "invalid_token", "schemes": "bearer", "scope": "mail"}}
_TOKEN_REFUSED = "535 5.7.8 Username and Password not accepted"


@dataclass
class ReceivedMail:
    """One message accepted by the sink, with its envelope and the time it arrived."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    received_at: float
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM parameters, e.g. SMTPUTF8, BODY=8BITMIME


class _Protocol(SMTP):
    """aiosmtpd's per-connection server, reporting when its session opens and closes to the sink."""

    def __init__(self, sink: SmtpSink, controller: _Controller, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sink = sink
        self._controller = controller

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        new = self._original_transport is None  # STARTTLS calls this again for the same session
        super().connection_made(transport)
        if new and not self._controller.probing:
            self._sink._session_opened(self)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self._sink._session_closed(self)


class _Controller(Controller):
    """aiosmtpd's Controller, taught to learn the real port when asked to bind port 0.

    `probing` is true while start() makes aiosmtpd's own test connection, which the sink does not count.
    """

    def __init__(self, sink: SmtpSink, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sink = sink
        self.probing = True

    def factory(self) -> SMTP:
        return _Protocol(self._sink, self, self.handler, **self.SMTP_kwargs)

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()
        self.probing = False


class _Handler:
    """aiosmtpd hooks; they run on the controller's event-loop thread and defer to the sink."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        # Enforced here rather than with aiosmtpd's auth_required, which warns on every plain-text session.
        if (self._sink.auth is not None or self._sink.oauth_introspect is not None) and not session.authenticated:
            return "530 5.7.0 Authentication required"
        code = self._sink._next_mail_failure()
        if code == 421:  # the server is closing the session (RFC 5321 4.2.2): hang up once the reply is out
            server.loop.call_soon(server.transport.close)
        if code is not None:
            return f"{code} {str(code)[0]}.0.0 refused by the sandbox"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        code = self._sink._next_rcpt_failure()
        if code == 421:
            server.loop.call_soon(server.transport.close)
        if code is not None:  # worded like Postfix, which names the address: errors must not pass it on
            return f"{code} {str(code)[0]}.1.1 <{address}>: Recipient address rejected by the sandbox"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str | None:
        raw = envelope.original_content or b""
        reply = self._sink._deliver(str(envelope.mail_from), list(envelope.rcpt_tos), raw,
                                    list(envelope.mail_options))
        if reply is None:  # hang up unanswered: connection_lost cancels this wait, so nothing is ever replied
            server.transport.close()
            await asyncio.Event().wait()
        return reply

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self._sink._session_quit()
        return "221 Bye"

    # aiosmtpd offers every handler method named auth_<MECHANISM>; the sink excludes these two without oauth_introspect.

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer_login(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer_login(server, args, "OAUTHBEARER")

    async def _bearer_login(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        """The client response comes with AUTH or after an empty 334; a refused token gets the error
        challenge first, and whatever the client answers to it (empty, or ^A) then gets the 535."""
        if len(args) == 1:
            response = await server.challenge_auth("")
            if response is MISSING:  # "*" or bad base64, already answered with 501
                return AuthResult(success=False, handled=True)
        else:
            try:
                response = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        credentials = _bearer_credentials(mechanism, response)
        if credentials is None:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Malformed " + mechanism)
        user, token = credentials
        if self._sink._token_accepted(user, token):
            return AuthResult(success=True)
        if await server.challenge_auth(json.dumps(_TOKEN_ERRORS[mechanism])) is MISSING:
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False, message=_TOKEN_REFUSED)


class SmtpSink:
    """Records every accepted message and counts sessions (connections); tests script failures with
    fail_next, fail_next_mail, fail_next_rcpt, drop_after_data, drop_sessions, set_down and
    kill_after_data. ``smtputf8=False`` makes it a server that does not offer SMTPUTF8 (RFC 6531)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        auth: tuple[str, str] | None = None,
        on_message: Callable[[ReceivedMail], None] | None = None,
        smtputf8: bool = True,
        oauth_introspect: Callable[[str], str | None] | None = None,
    ) -> None:
        """`on_message` is called on the server thread for each accepted message (the CLI prints from it).

        `oauth_introspect` maps an access token to the user it is active for, else None (e.g. an
        OAuthServer's ``active_user``); with it the sink offers XOAUTH2 and OAUTHBEARER and, like
        `auth`, refuses MAIL FROM before a login.
        """
        self.host = host
        self.port = port
        self.auth = auth
        self.oauth_introspect = oauth_introspect
        self.smtputf8 = smtputf8
        self._on_message = on_message
        self._cond = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._failures: deque[int] = deque()
        self._mail_failures: deque[int] = deque()
        self._rcpt_failures: deque[int] = deque()
        self._kills: deque[tuple[int, int]] = deque()
        self._controller: _Controller | None = None
        self._open: set[_Protocol] = set()
        self._sessions = 0
        self._peak = 0
        self._quits = 0

    def start(self) -> SmtpSink:
        """Listen on host:port (port 0 picks a free one, kept for later set_down(False))."""
        if self._controller is None:
            controller = _Controller(
                self,
                _Handler(self),
                hostname=self.host,
                port=self.port,
                authenticator=self._authenticate if self.auth else None,
                auth_require_tls=False,
                auth_exclude_mechanism=[] if self.oauth_introspect else _OAUTH_MECHANISMS,
                enable_SMTPUTF8=self.smtputf8,
                server_hostname="localhost",  # else every session does a getfqdn() DNS lookup
            )
            controller.start()
            self.port = controller.port
            self._controller = controller
        return self

    def stop(self) -> None:
        """Stop listening and drop open sessions; safe to call twice."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def messages(self) -> list[ReceivedMail]:
        """A snapshot: the server thread may append while the caller iterates."""
        with self._cond:
            return list(self._messages)

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    @property
    def sessions(self) -> int:
        """SMTP sessions (client connections) accepted since the last reset."""
        with self._cond:
            return self._sessions

    @property
    def open_sessions(self) -> int:
        """Sessions open right now."""
        with self._cond:
            return len(self._open)

    @property
    def peak_sessions(self) -> int:
        """The most sessions open at once since the last reset."""
        with self._cond:
            return self._peak

    @property
    def quits(self) -> int:
        """Sessions the client ended with QUIT since the last reset."""
        with self._cond:
            return self._quits

    def reset(self) -> None:
        """Back to a clean, listening sink: no messages, open sessions, scripted failures or kills; counters at 0."""
        self.set_down(False)
        self.drop_sessions()
        with self._cond:
            self._messages.clear()
            self._failures.clear()
            self._mail_failures.clear()
            self._rcpt_failures.clear()
            self._kills.clear()
            self._sessions = self._peak = self._quits = 0

    def wait_for(
        self, count: int = 1, timeout: float = 10.0, predicate: Callable[[ReceivedMail], bool] | None = None
    ) -> list[ReceivedMail]:
        """Block until at least `count` messages (matching `predicate`) arrived and return them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matching = [m for m in self._messages if predicate is None or predicate(m)]
                remaining = deadline - time.monotonic()
                if len(matching) >= count:
                    return matching
                if remaining <= 0:
                    seen = [(m.message.get("Message-ID"), m.rcpt_tos) for m in matching]
                    raise TimeoutError(
                        f"expected {count} message(s) within {timeout}s, got {len(matching)}: {seen}"
                    )
                self._cond.wait(remaining)

    def fail_next(self, code: int = 451, count: int = 1) -> None:
        """Answer the next `count` DATA commands with `code` (451 try later, 550 no such user, or any other)."""
        with self._cond:
            self._failures.extend([code] * count)

    def fail_next_mail(self, code: int = 421, count: int = 1) -> None:
        """Answer the next `count` MAIL FROM commands with `code`; after 421 the sink also hangs up."""
        with self._cond:
            self._mail_failures.extend([code] * count)

    def fail_next_rcpt(self, code: int = 550, count: int = 1) -> None:
        """Answer the next `count` RCPT TO commands with `code` (450 deferred, 550 no such user, or
        any other; after 421 the sink also hangs up); the reply text names the address, as real servers do."""
        with self._cond:
            self._rcpt_failures.extend([code] * count)

    def drop_after_data(self, count: int = 1) -> None:
        """For the next `count` messages: store it, then hang up without answering DATA (a lost reply)."""
        with self._cond:
            self._failures.extend([_DROP] * count)

    def drop_sessions(self, timeout: float = 5.0) -> None:
        """Close every open session from the server side, as a server does with idle clients."""
        controller = self._controller
        if controller is None:
            return
        with self._cond:
            sessions = list(self._open)
        for session in sessions:
            if session.transport is not None:
                controller.loop.call_soon_threadsafe(session.transport.close)
        with self._cond:
            if not self._cond.wait_for(lambda: self._open.isdisjoint(sessions), timeout):
                raise TimeoutError(f"sessions still open after {timeout}s")

    def set_down(self, down: bool) -> None:
        """Down: nothing listens (connection refused). Up again: same port, so clients can reconnect."""
        if down:
            self.stop()
        else:
            self.start()

    def kill_after_data(self, pid: int, sig: int = signal.SIGKILL, count: int = 1) -> None:
        """For the next `count` messages: store it, then kill `pid` before answering 250 (crash tests)."""
        with self._cond:
            self._kills.extend([(pid, sig)] * count)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self.auth is not None
        user, password = self.auth
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            user.encode(),
            password.encode(),
        )
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 235/535 reply

    def _token_accepted(self, user: str, token: str) -> bool:
        """The token is active and its user is the one logging in (OAUTHBEARER without a= means the token's user)."""
        assert self.oauth_introspect is not None
        owner = self.oauth_introspect(token)
        return owner is not None and user in ("", owner)

    def _session_opened(self, session: _Protocol) -> None:
        with self._cond:
            self._open.add(session)
            self._sessions += 1
            self._peak = max(self._peak, len(self._open))
            self._cond.notify_all()

    def _session_closed(self, session: _Protocol) -> None:
        with self._cond:
            self._open.discard(session)
            self._cond.notify_all()

    def _session_quit(self) -> None:
        with self._cond:
            self._quits += 1

    def _next_mail_failure(self) -> int | None:
        with self._cond:
            return self._mail_failures.popleft() if self._mail_failures else None

    def _next_rcpt_failure(self) -> int | None:
        with self._cond:
            return self._rcpt_failures.popleft() if self._rcpt_failures else None

    def _deliver(self, mail_from: str, rcpt_tos: list[str], raw: bytes, mail_options: list[str]) -> str | None:
        """Store (or refuse) one message and return the SMTP reply to DATA; None: hang up instead."""
        with self._cond:
            code = self._failures.popleft() if self._failures else None
        if code is not None and code != _DROP:
            return _REPLIES.get(code, f"{code} {str(code)[0]}.0.0 refused by the sandbox")
        if "SMTPUTF8" in mail_options:  # RFC 6532 headers are UTF-8: parsed as text, not as ASCII + surrogates
            message = email.message_from_string(raw.decode("utf-8", "surrogateescape"), policy=email.policy.default)
        else:
            message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mail = ReceivedMail(mail_from, rcpt_tos, raw, message, time.time(), mail_options)
        with self._cond:
            self._messages.append(mail)
            kill = self._kills.popleft() if self._kills else None
            self._cond.notify_all()
        if self._on_message is not None:
            self._on_message(mail)
        if kill is not None:
            with contextlib.suppress(ProcessLookupError):  # already gone is what the test wanted anyway
                os.kill(*kill)
        return None if code == _DROP else "250 OK"


def _bearer_credentials(mechanism: str, response: bytes) -> tuple[str, str] | None:
    """(user, token) from ``user=USER^Aauth=Bearer TOKEN^A^A`` (XOAUTH2) or RFC 7628's
    ``n,a=USER,^Aauth=Bearer TOKEN^A^A`` (OAUTHBEARER, user "" without a=), or None if malformed."""
    try:
        text = response.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.endswith("\x01\x01"):
        return None
    pairs = text[:-2].split("\x01")
    gs2 = pairs.pop(0).split(",") if mechanism == "OAUTHBEARER" else []  # "n,a=USER," → ["n", "a=USER", ""]
    fields = {key: value for key, _, value in (pair.partition("=") for pair in pairs)}
    if mechanism == "XOAUTH2":
        user = fields.get("user", "")
    elif len(gs2) == 3 and gs2[0] in ("n", "y") and gs2[1][:2] in ("", "a="):  # "p=": channel binding, never offered
        user = gs2[1][2:].replace("=2C", ",").replace("=3D", "=")
    else:
        return None
    scheme, _, token = fields.get("auth", "").partition(" ")
    if scheme.lower() != "bearer" or not token or (mechanism == "XOAUTH2" and not user):
        return None
    return user, token


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, printing one line per message so benches can time deliveries."""
    parser = argparse.ArgumentParser(description="Run an SMTP sink on loopback that prints what it receives.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require AUTH PLAIN/LOGIN with these credentials")
    parser.add_argument("--no-smtputf8", action="store_true", help="do not offer SMTPUTF8 (internationalised addresses)")
    args = parser.parse_args(argv)
    auth: tuple[str, str] | None = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        auth = (user, password)

    def report(mail: ReceivedMail) -> None:
        message_id = str(mail.message.get("Message-ID", "<none>")).strip()
        print(f"received {message_id} to={','.join(mail.rcpt_tos)} t={mail.received_at:.6f}", flush=True)

    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with SmtpSink(args.host, args.port, auth=auth, on_message=report, smtputf8=not args.no_smtputf8) as sink:
        print(f"ready smtp://{sink.host}:{sink.port}", flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
