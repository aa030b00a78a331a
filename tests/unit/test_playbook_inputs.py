"""The login playbook against hostile sizes: the address scan is linear and capped, classification
runs off the event loop, and a setup that can trust forged headers says so at start."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from bridge.automation.classify import MAX_TEXT_CHARS, Classification
from bridge.automation.directory import HrConfig, LmsConfig
from bridge.automation.playbook import Automation, LoginStage, other_accounts
from bridge.automation.verify import SenderPolicy
from bridge.config import AutomationConfig
from bridge.models import InboundEmail
from bridge.pipeline.context import Context
from bridge.pipeline.job import Job

DOMAINS = ("customer.example", "*.staff.example")


def email(text: str, from_addr: str = "alice@customer.example") -> InboundEmail:
    return InboundEmail(
        key="<m1@customer.example>", message_id="<m1@customer.example>", from_name="Alice",
        from_addr=from_addr, reply_to=None, to=("support@example.com",), cc=(), subject="I can't log in",
        text=text, html="", attachments=(), in_reply_to=None, references=(), date=None,
        headers={"from": (f"Alice <{from_addr}>",)}, size=len(text),
    )


# --- other_accounts ------------------------------------------------------------------------------


def test_other_accounts_finds_organisation_addresses_but_the_senders() -> None:
    text = ("Please unlock Bob@Customer.Example and (carol@customer.example), also <dave.x+1@customer.example>;"
            " mailto:erin@customer.example. Mine is alice@customer.example, my private one a@gmail.com,"
            " and frank@customer.example.evil.example is not ours.")
    assert other_accounts(email(text), DOMAINS) == [
        "bob@customer.example", "carol@customer.example", "dave.x+1@customer.example", "erin@customer.example"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "a" * 100_000,  # took 41 s: every start position ran to the end of the word and back
        "a." * 50_000 + "@",
        "a@" * 50_000,
        "x@" + "a-" * 50_000,
        ("a" * 64 + ".") * 1500 + "@customer",
    ],
)
def test_other_accounts_is_linear_on_long_words(text: str) -> None:
    started = time.perf_counter()
    assert other_accounts(email(text), DOMAINS) == []
    assert time.perf_counter() - started < 2  # quadratic input of this size took 10 s to 41 s


def test_other_accounts_scans_only_what_the_classifier_reads() -> None:
    near = "x " * ((MAX_TEXT_CHARS - 100) // 2) + "bob@customer.example "
    far = "x " * (MAX_TEXT_CHARS // 2) + "carol@customer.example " + "y " * 2_500_000
    assert other_accounts(email(near), DOMAINS) == ["bob@customer.example"]
    assert other_accounts(email(far), DOMAINS) == []


# --- classification off the event loop ------------------------------------------------------------


class RecordingClassifier:
    """Answers "not a login problem" and remembers on which thread it was asked."""

    def __init__(self) -> None:
        self.threads: list[int] = []

    def classify(self, subject: str, text: str) -> Classification:
        self.threads.append(threading.get_ident())
        return Classification(is_login=False, matched=())


def test_classification_runs_in_the_worker_pool_not_on_the_event_loop() -> None:
    classifier = RecordingClassifier()
    with ThreadPoolExecutor(1) as pool:
        ctx = SimpleNamespace(automation=SimpleNamespace(classifier=classifier), executor=pool)
        ctx.blocking = functools.partial(Context.blocking, ctx)
        job = Job(key="<m1@customer.example>", email=email("I can't log in"),
                  results={"ticket": {"new": True, "ticket": 7}, "guard": {"action": "process"}})

        async def run() -> tuple[dict, int]:
            return await LoginStage().run(job, ctx), threading.get_ident()  # type: ignore[arg-type]

        result, loop_thread = asyncio.run(run())
    assert result == {"login": False, "classified": "not a login problem"}
    assert len(classifier.threads) == 1 and classifier.threads[0] != loop_thread


# --- the start-up warning --------------------------------------------------------------------------


def _config(**sender: object) -> AutomationConfig:
    return AutomationConfig(
        enabled=True,
        sender=SenderPolicy(organisation_domains=("customer.example",), **sender),
        hr=HrConfig(url="http://127.0.0.1:9"),
        lms=LmsConfig(url="http://127.0.0.1:9"),
    )


def test_start_warns_when_authentication_results_are_trusted_anywhere(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bridge.automation"):
        assert Automation.from_config(_config(trusted_authserv_ids=("mx.example.com",))) is not None
    assert any("trusted_received_by is empty" in r.getMessage() and "forged" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bridge.automation"):
        Automation.from_config(_config(trusted_authserv_ids=("mx.example.com",),
                                       trusted_received_by=("mx.example.com",)))
    assert not [r for r in caplog.records if "trusted_received_by" in r.getMessage()]


def test_email_built_without_header_order_has_none() -> None:
    """odoo_tickets.as_request builds an InboundEmail without header_fields: the default is empty."""
    assert email("x").header_fields == ()
    assert {field.name: field for field in dataclasses.fields(InboundEmail)}["header_fields"].default == ()
