"""SmtpSender against the aiosmtpd sink: connections are reused, bounded, retired, no email is ever
doubled, internationalised addresses go out with SMTPUTF8, and a refused recipient is not an outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from bridge.config import SmtpConfig
from bridge.errors import (
    AccessDenied,
    BridgeError,
    RecipientDeferred,
    RejectedByService,
    ServiceDown,
    TransientError,
    Undeliverable,
)
from bridge.mail.compose import Composer, MessageKind
from bridge.mail.parse import parse_email
from bridge.mail.smtp import SmtpSender
from bridge.sandbox.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration

FROM = "support@bridge.test"
TO = ["customer@example.test"]


def raw(n: int) -> bytes:
    return (
        f"From: {FROM}\r\nTo: {TO[0]}\r\nSubject: Re: ticket {n}\r\n"
        f"Message-ID: <ack{n}@bridge.test>\r\n\r\nWe are on it.\r\n"
    ).encode()


def ids(*numbers: int) -> list[str]:
    return [f"<ack{n}@bridge.test>" for n in numbers]


def received(sink: SmtpSink) -> list[str]:
    """Message-IDs in arrival order: a doubled email shows up twice."""
    return [str(mail.message["Message-ID"]) for mail in sink.messages]


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def pooled(sink: SmtpSink, **settings: Any) -> AsyncIterator[SmtpSender]:
    """A sender for the sink; closed afterwards, and the sink seen with no session left."""
    cfg = SmtpConfig(
        host=sink.host, port=sink.port, security="plain", from_address=FROM, timeout_seconds=5, **settings
    )
    sender = SmtpSender(cfg)
    try:
        yield sender
    finally:
        await sender.close()
        await eventually(lambda: sink.open_sessions == 0)


async def send(sender: SmtpSender, n: int) -> None:
    await sender.send(raw(n), FROM, TO)


def test_sequential_sends_share_one_connection(sink: SmtpSink) -> None:
    async def scenario() -> None:
        async with pooled(sink) as sender:
            for n in range(10):
                await send(sender, n)
            assert sink.sessions == 1
            assert sink.open_sessions == 1  # kept for the next burst

    asyncio.run(scenario())
    assert received(sink) == ids(*range(10))


def test_concurrent_sends_never_exceed_max_connections(sink: SmtpSink) -> None:
    async def scenario() -> None:
        async with pooled(sink, max_connections=3) as sender:
            await asyncio.gather(*(send(sender, n) for n in range(20)))

    asyncio.run(scenario())
    assert sorted(received(sink)) == sorted(ids(*range(20)))
    assert sink.peak_sessions == 3
    assert sink.sessions == 3


def test_waiting_sender_cancelled_leaves_the_pool_usable(sink: SmtpSink) -> None:
    async def scenario() -> None:
        async with pooled(sink, max_connections=1) as sender:
            first = asyncio.create_task(send(sender, 1))
            waiting = asyncio.create_task(send(sender, 2))
            await asyncio.sleep(0)  # both started: the first connects, the second waits for the only slot
            waiting.cancel()
            await first
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await send(sender, 3)

    asyncio.run(scenario())
    assert received(sink) == ids(1, 3)
    assert sink.sessions == 1


@pytest.mark.parametrize("how", ["dropped, noticed while idle", "dropped, noticed on MAIL", "server restarted"])
def test_connection_closed_by_the_server_is_replaced(sink: SmtpSink, how: str) -> None:
    async def scenario() -> None:
        async with pooled(sink) as sender:
            await send(sender, 1)
            if how == "server restarted":
                sink.set_down(True)
                sink.set_down(False)
            else:
                sink.drop_sessions()
            if how == "dropped, noticed while idle":
                await asyncio.sleep(0.1)  # the client sees the EOF while the connection sits in the pool
            await send(sender, 2)  # else the client finds out when MAIL FROM fails, and retries once
            assert sink.sessions == 2

    asyncio.run(scenario())
    assert received(sink) == ids(1, 2)


def test_421_on_mail_from_on_a_reused_connection_is_retried_on_a_new_one(sink: SmtpSink) -> None:
    async def scenario() -> None:
        async with pooled(sink) as sender:
            await send(sender, 1)
            sink.fail_next_mail(421)
            await send(sender, 2)
            assert sink.sessions == 2

    asyncio.run(scenario())
    assert received(sink) == ids(1, 2)


def test_retry_happens_once_only(sink: SmtpSink) -> None:
    async def scenario() -> None:
        async with pooled(sink) as sender:
            await send(sender, 1)
            sink.fail_next_mail(421, count=2)
            with pytest.raises(TransientError, match="421"):
                await send(sender, 2)
            assert sink.sessions == 2  # the reused connection and one fresh one

    asyncio.run(scenario())
    assert received(sink) == ids(1)


@pytest.mark.parametrize(
    ("reused", "code", "error"), [(False, 421, TransientError), (True, 550, RejectedByService)]
)
def test_mail_from_refusals_that_must_not_be_retried(
    sink: SmtpSink, reused: bool, code: int, error: type[BridgeError]
) -> None:
    """421 on a brand-new connection is the server's answer, not a stale session; 5xx is final."""

    async def scenario() -> None:
        async with pooled(sink) as sender:
            if reused:
                await send(sender, 1)
            sink.fail_next_mail(code)
            with pytest.raises(error):
                await send(sender, 2)
            assert sink.sessions == 1
            await send(sender, 3)  # the refused connection was not put back: a new one is opened
            assert sink.sessions == 2

    asyncio.run(scenario())
    assert received(sink) == (ids(1, 3) if reused else ids(3))


def test_max_messages_per_connection_rotates_the_connection(sink: SmtpSink) -> None:
    async def scenario() -> None:
        async with pooled(sink, max_messages_per_connection=3) as sender:
            for n in range(7):
                await send(sender, n)
            assert sink.sessions == 3
            await eventually(lambda: sink.quits == 2 and sink.open_sessions == 1)

    asyncio.run(scenario())
    assert received(sink) == ids(*range(7))


def test_idle_connection_is_quit_after_idle_seconds(sink: SmtpSink) -> None:
    async def scenario() -> None:
        async with pooled(sink, idle_seconds=0.3) as sender:
            await send(sender, 1)
            assert sink.open_sessions == 1
            started = time.monotonic()
            await eventually(lambda: sink.open_sessions == 0)
            assert time.monotonic() - started >= 0.2
            assert sink.quits == 1
            await send(sender, 2)
            assert sink.sessions == 2

    asyncio.run(scenario())
    assert received(sink) == ids(1, 2)


@pytest.mark.parametrize(("code", "error"), [(451, TransientError), (550, RejectedByService)])
def test_data_refused_raises_and_is_not_resent(sink: SmtpSink, code: int, error: type[BridgeError]) -> None:
    async def scenario() -> None:
        async with pooled(sink) as sender:
            await send(sender, 1)
            sink.fail_next(code)  # only the next DATA: a resend would get through
            with pytest.raises(error, match=str(code)):
                await send(sender, 2)
            await send(sender, 3)
            assert sink.sessions == 2  # the connection that failed was not reused

    asyncio.run(scenario())
    assert received(sink) == ids(1, 3)


def test_connection_lost_during_data_raises_and_is_not_resent(sink: SmtpSink) -> None:
    """The server stored the email but its reply was lost: only the outbox may try again, later."""

    async def scenario() -> None:
        async with pooled(sink) as sender:
            await send(sender, 1)
            sink.drop_after_data()
            with pytest.raises(ServiceDown):
                await send(sender, 2)
            assert received(sink) == ids(1, 2)
            await send(sender, 3)
            assert sink.sessions == 2

    asyncio.run(scenario())
    assert received(sink) == ids(1, 2, 3)


def test_close_quits_idle_connections(sink: SmtpSink) -> None:
    async def scenario() -> None:
        sender = SmtpSender(
            SmtpConfig(host=sink.host, port=sink.port, security="plain", from_address=FROM, timeout_seconds=5)
        )
        await asyncio.gather(*(send(sender, n) for n in range(3)))
        assert sink.open_sessions == 3
        await sender.close()
        await eventually(lambda: sink.open_sessions == 0)
        assert sink.quits == 3
        await send(sender, 3)  # still usable: a new connection
        await sender.close()
        await eventually(lambda: sink.quits == 4)

    asyncio.run(scenario())
    assert sorted(received(sink)) == ids(0, 1, 2, 3)
    assert sink.sessions == 4


def test_server_down_is_service_down(sink: SmtpSink) -> None:
    async def scenario() -> None:
        async with pooled(sink) as sender:
            sink.set_down(True)
            with pytest.raises(ServiceDown):
                await send(sender, 1)
            sink.set_down(False)
            await send(sender, 2)

    asyncio.run(scenario())
    assert received(sink) == ids(2)


def test_login_happens_once_per_connection_and_wrong_password_is_access_denied() -> None:
    async def scenario(sink: SmtpSink) -> None:
        async with pooled(sink, username="bridge", password="s3cret") as sender:
            for n in range(3):
                await send(sender, n)
            assert sink.sessions == 1
        async with pooled(sink, username="bridge", password="wrong") as sender:
            with pytest.raises(AccessDenied):
                await send(sender, 3)

    with SmtpSink(auth=("bridge", "s3cret")) as sink:
        asyncio.run(scenario(sink))
        assert received(sink) == ids(0, 1, 2)


EAI = "jdöe@mächine.example"


def eai_reply() -> tuple[str, str, str]:
    """The reported case: a composed acknowledgement to an internationalised address."""
    inbound = parse_email(
        f"From: Jörg Döe <{EAI}>\r\nTo: {FROM}\r\nSubject: Drucker kaputt\r\n"
        "Message-ID: <eai1@mächine.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHilfe\r\n".encode()
    )
    composer = Composer(None, from_address=FROM, from_name="Support", domain="bridge.test", secret=b"k" * 32,
                        tag_prefix="HD-")
    mail = composer.reply(inbound, 77, template="ack", kind=MessageKind.ACKNOWLEDGEMENT)
    assert mail.needs_smtputf8
    return mail.raw, mail.sender, mail.recipient


def test_internationalised_address_is_sent_with_smtputf8(sink: SmtpSink) -> None:
    raw_mail, sender_address, recipient = eai_reply()

    async def scenario() -> None:
        async with pooled(sink) as sender:
            await sender.send(raw_mail, sender_address, [recipient])
            await send(sender, 1)  # an ASCII one after it, on the same connection
            assert sink.sessions == 1

    asyncio.run(scenario())
    first, second = sink.messages
    assert first.rcpt_tos == [EAI]
    assert "SMTPUTF8" in first.mail_options and "BODY=8BITMIME" in first.mail_options
    assert f"\nTo: {EAI}\n".encode() in first.raw.replace(b"\r\n", b"\n")  # RFC 6532: UTF-8, no encoded word
    assert "[#HD-77]" in str(first.message["Subject"])
    assert first.message["To"].addresses[0].addr_spec == EAI
    assert "SMTPUTF8" not in second.mail_options and second.rcpt_tos == TO


def test_internationalised_address_without_smtputf8_is_undeliverable_and_nothing_is_sent() -> None:
    raw_mail, sender_address, recipient = eai_reply()

    async def scenario(sink: SmtpSink) -> None:
        async with pooled(sink) as sender:
            with pytest.raises(Undeliverable, match="SMTPUTF8") as caught:
                await sender.send(raw_mail, sender_address, [recipient])
            assert EAI not in str(caught.value) and "jdöe" not in str(caught.value)
            await send(sender, 1)  # the connection that said nothing was kept
            assert sink.sessions == 1

    with SmtpSink(smtputf8=False) as sink:
        asyncio.run(scenario(sink))
        assert received(sink) == ids(1)


@pytest.mark.parametrize(("code", "error", "named"), [
    (450, RecipientDeferred, "450 4.1.1"),
    (452, RecipientDeferred, "452 4.1.1"),
    (550, Undeliverable, "550 5.1.1"),
    (553, Undeliverable, "553 5.1.1"),
])
def test_recipient_refusal_is_about_the_recipient_not_the_server(
    sink: SmtpSink, code: int, error: type[BridgeError], named: str
) -> None:
    """4xx on RCPT: RecipientDeferred (not ServiceDown: the server is up); 5xx: Undeliverable.
    The sink's reply names the address, like Postfix's; the error must not."""

    async def scenario() -> None:
        async with pooled(sink) as sender:
            sink.fail_next_rcpt(code)
            with pytest.raises(error) as caught:
                await send(sender, 1)
            assert not isinstance(caught.value, ServiceDown)
            assert named in str(caught.value)
            assert TO[0] not in str(caught.value) and "customer" not in str(caught.value)
            await send(sender, 2)

    asyncio.run(scenario())
    assert received(sink) == ids(2)


def test_one_recipient_deferred_and_one_refused_is_deferred(sink: SmtpSink) -> None:
    async def scenario() -> None:
        async with pooled(sink) as sender:
            sink.fail_next_rcpt(550)
            sink.fail_next_rcpt(451)
            with pytest.raises(RecipientDeferred, match=r"451 4\.1\.1, 550 5\.1\.1"):
                await sender.send(raw(1), FROM, ["a@example.test", "b@example.test"])

    asyncio.run(scenario())
    assert received(sink) == []


def test_421_on_rcpt_is_the_server_closing_not_a_deferred_recipient(sink: SmtpSink) -> None:
    async def scenario() -> None:
        async with pooled(sink) as sender:
            await send(sender, 1)
            sink.fail_next_rcpt(421)
            await send(sender, 2)  # a reused session that is closing: retried once on a new one
            assert sink.sessions == 2
            sink.fail_next_rcpt(421)
            sink.fail_next_rcpt(421)
            sink.drop_sessions()
            with pytest.raises(TransientError) as caught:
                await send(sender, 3)
            assert not isinstance(caught.value, RecipientDeferred)
            assert TO[0] not in str(caught.value)

    asyncio.run(scenario())
    assert received(sink) == ids(1, 2)


@pytest.mark.parametrize("offered", [True, False])
def test_check_says_whether_smtputf8_is_offered(offered: bool) -> None:
    with SmtpSink(smtputf8=offered) as sink:
        sender = SmtpSender(SmtpConfig(host=sink.host, port=sink.port, security="plain", from_address=FROM))
        report = asyncio.run(sender.check())
    assert "EHLO ok" in report
    assert report.endswith("; SMTPUTF8") if offered else "no SMTPUTF8" in report
