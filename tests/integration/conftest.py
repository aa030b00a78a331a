"""Fixtures of the end-to-end tests: fresh Odoo, HR and LMS stand-ins and a state folder per test."""

from __future__ import annotations

import pytest

from bridge.sandbox.hr import HrSandbox
from bridge.sandbox.lms import LmsSandbox
from bridge.sandbox.odoo import OdooSandbox
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

    def start(**overrides):
        cfg = make_config(mailbox, odoo, sink, tmp_path / "state", **overrides)
        runner = BridgeThread(cfg).start()
        started.append(runner)
        return runner

    yield start
    for runner in started:
        runner.stop()
