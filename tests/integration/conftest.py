"""Fixtures of the end-to-end tests: fresh Odoo, HR and LMS stand-ins and a state folder per test."""

from __future__ import annotations

import pytest

from bridge.sandbox.hr import HrSandbox
from bridge.sandbox.lms import LmsSandbox
from bridge.sandbox.odoo import OdooSandbox
from bridge.sandbox.slack import SlackSandbox
from tests.integration.harness import BridgeThread, make_config


@pytest.fixture
def odoo():
    with OdooSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def hr():
    with HrSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def lms():
    with LmsSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def bridge_factory(mailbox, odoo, sink, tmp_path):
    """Start a bridge (in a thread) against this test's folder; stopped at teardown."""
    started: list[BridgeThread] = []

    def start(*, app_options: dict | None = None, **overrides):
        cfg = make_config(mailbox, odoo, sink, tmp_path / "state", **overrides)
        runner = BridgeThread(cfg, **(app_options or {})).start()
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop()


@pytest.fixture(scope="session")
def slack_server():
    """One Slack stand-in for the session, with an approver and a stranger (no rights) in it."""
    with SlackSandbox() as sandbox:
        sandbox.add_user("U0APPROVER", "agent@example.com", "Agent Smith")
        sandbox.add_user("U0STRANGER", "stranger@example.com", "Some Stranger")
        yield sandbox


@pytest.fixture
def slack(slack_server: SlackSandbox) -> SlackSandbox:
    """The session's Slack stand-in with no messages, calls or faults left by earlier tests."""
    slack_server.reset()
    return slack_server
