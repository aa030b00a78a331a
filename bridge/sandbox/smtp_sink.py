"""An SMTP server on loopback that records what it receives and can fail, go down or kill on demand."""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

_REPLIES = {451: "451 4.3.0 try later", 550: "550 5.1.1 no such user"}


@dataclass
class ReceivedMail:
    """One message accepted by the sink, with its envelope and the time it arrived."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage
    received_at: float


class _Controller(Controller):
    """aiosmtpd's Controller, taught to learn the real port when asked to bind port 0."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    """aiosmtpd hooks; they run on the controller's event-loop thread and defer to the sink."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        # Enforced here rather than with aiosmtpd's auth_required, which warns on every plain-text session.
        if self._sink.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        return self._sink._deliver(str(envelope.mail_from), list(envelope.rcpt_tos), raw)


class SmtpSink:
    """Records every accepted message; tests script failures with fail_next, set_down and kill_after_data."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        auth: tuple[str, str] | None = None,
        on_message: Callable[[ReceivedMail], None] | None = None,
    ) -> None:
        """`on_message` is called on the server thread for each accepted message (the CLI prints from it)."""
        self.host = host
        self.port = port
        self.auth = auth
        self._on_message = on_message
        self._cond = threading.Condition()
        self._messages: list[ReceivedMail] = []
        self._failures: deque[int] = deque()
        self._kills: deque[tuple[int, int]] = deque()
        self._controller: _Controller | None = None

    def start(self) -> SmtpSink:
        """Listen on host:port (port 0 picks a free one, kept for later set_down(False))."""
        if self._controller is None:
            controller = _Controller(
                _Handler(self),
                hostname=self.host,
                port=self.port,
                authenticator=self._authenticate if self.auth else None,
                auth_require_tls=False,
                enable_SMTPUTF8=True,
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

    def reset(self) -> None:
        """Back to a clean, listening sink: no messages, no scripted failures or kills."""
        with self._cond:
            self._messages.clear()
            self._failures.clear()
            self._kills.clear()
        self.set_down(False)

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

    def _deliver(self, mail_from: str, rcpt_tos: list[str], raw: bytes) -> str:
        """Store (or refuse) one message and return the SMTP reply to DATA."""
        with self._cond:
            code = self._failures.popleft() if self._failures else None
        if code is not None:
            return _REPLIES.get(code, f"{code} {str(code)[0]}.0.0 refused by the sandbox")
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        mail = ReceivedMail(mail_from, rcpt_tos, raw, message, time.time())
        with self._cond:
            self._messages.append(mail)
            kill = self._kills.popleft() if self._kills else None
            self._cond.notify_all()
        if self._on_message is not None:
            self._on_message(mail)
        if kill is not None:
            with contextlib.suppress(ProcessLookupError):  # already gone is what the test wanted anyway
                os.kill(*kill)
        return "250 OK"


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, printing one line per message so benches can time deliveries."""
    parser = argparse.ArgumentParser(description="Run an SMTP sink on loopback that prints what it receives.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require AUTH PLAIN/LOGIN with these credentials")
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
    with SmtpSink(args.host, args.port, auth=auth, on_message=report) as sink:
        print(f"ready smtp://{sink.host}:{sink.port}", flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
