"""The intake parses every fetched email in a worker thread: parsing is CPU work, and a 0.97 MB
email (below the old 1 MB threshold) took 7.5 s on the event loop."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest

import bridge.pipeline.intake as intake_module
from bridge.config import parse_config
from bridge.mail.inbox import Envelope
from bridge.models import InboundEmail
from bridge.pipeline.intake import Intake
from bridge.pipeline.runner import Outcome

SETTINGS = {
    "imap": {"username": "support", "password": "pw"},
    "smtp": {"from_address": "support@example.com"},
    "odoo": {"url": "https://odoo.example.com", "db": "db", "username": "bot", "password": "pw"},
}


def raw(n: int, body: bytes = b"Hello") -> bytes:
    return (f"From: a{n}@customer.example\r\nTo: support@example.com\r\nSubject: Issue {n}\r\n"
            f"Message-ID: <m{n}@customer.example>\r\n\r\n").encode() + body + b"\r\n"


class Runner:
    def __init__(self) -> None:
        self.processed: list[str] = []

    async def process(self, email: InboundEmail) -> Outcome:
        self.processed.append(email.key)
        return Outcome("done")


def test_every_email_is_parsed_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    parse = intake_module.parse_email

    def recording_parse(data: bytes) -> InboundEmail:
        threads.append(threading.get_ident())
        return parse(data)

    monkeypatch.setattr(intake_module, "parse_email", recording_parse)
    mails = {1: raw(1), 2: raw(2, b"x" * 900_000), 3: raw(3, b"y" * 1_100_000)}
    runner = Runner()

    async def scenario() -> int:
        intake = Intake(parse_config(SETTINGS), runner, store=None, health=None)  # type: ignore[arg-type]
        intake.bind(asyncio.get_running_loop())
        intake.session = SimpleNamespace(fetch=lambda uids: {u: mails[u] for u in uids}, uidvalidity=7)
        try:
            await intake._fetch_and_start([Envelope(uid, len(data), f"<m{uid}@customer.example>")
                                           for uid, data in mails.items()])
            await asyncio.wait_for(asyncio.gather(*intake.inflight.values()), timeout=10)
        finally:
            intake._imap_pool.shutdown(wait=False)
        return threading.get_ident()

    loop_thread = asyncio.run(scenario())
    assert runner.processed == ["<m1@customer.example>", "<m2@customer.example>", "<m3@customer.example>"]
    assert len(threads) == 3 and loop_thread not in threads


BIG = raw(9, b"z" * (intake_module.PROCESS_PARSE_BYTES + 1000))


def _intake() -> Intake:
    return Intake(parse_config(SETTINGS), Runner(), store=None, health=None)  # type: ignore[arg-type]


def test_a_large_email_is_parsed_in_the_parser_process_and_its_errors_come_back() -> None:
    async def scenario():
        intake = _intake()
        try:
            email = await intake._parse(BIG)
            pool = intake._parse_process
            broken = b"From: a@b.example\r\nSubject: \x00\r\n\r\n" + b"x" * intake_module.PROCESS_PARSE_BYTES
            with pytest.raises(intake_module.UnparseableEmail, match="NUL bytes"):
                await intake._parse(broken)
            return email, pool
        finally:
            if intake._parse_process is not None:
                intake._parse_process.shutdown()

    email, pool = asyncio.run(scenario())
    assert email.key == "<m9@customer.example>" and len(email.text) > intake_module.PROCESS_PARSE_BYTES
    assert pool is not None


def test_a_dead_parser_process_is_replaced_and_the_email_still_parsed() -> None:
    async def scenario():
        intake = _intake()
        try:
            await intake._parse(BIG)
            first = intake._parse_process
            for process in list(first._processes.values()):  # the OOM killer, say
                process.kill()
                process.join()
            email = await intake._parse(BIG)
            assert intake._parse_process is None  # dropped: the next large email starts a new one
            again = await intake._parse(BIG)
            assert intake._parse_process is not None and intake._parse_process is not first
            return email, again
        finally:
            if intake._parse_process is not None:
                intake._parse_process.shutdown()

    email, again = asyncio.run(scenario())
    assert email.key == again.key == "<m9@customer.example>"
