"""The supervisor restarts a task that dies of an unexpected error and reports it meanwhile."""

from __future__ import annotations

import asyncio
import logging

from bridge.supervise import Supervisor


async def _wait_for(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def _stop(supervisor):
    for task in supervisor.tasks.values():
        task.cancel()
    await asyncio.gather(*supervisor.tasks.values(), return_exceptions=True)


def test_a_crashing_task_is_restarted_reported_and_settles(caplog):
    async def scenario():
        supervisor = Supervisor(backoff_base=0.01, backoff_max=0.02, settle_seconds=0.2)
        runs = []
        healthy = asyncio.Event()

        async def task():
            runs.append(1)
            if len(runs) <= 3:
                raise OSError("database or disk is full")
            healthy.set()
            await asyncio.Event().wait()

        supervisor.spawn("intake", task)
        await _wait_for(lambda: not supervisor.all_up)
        report = supervisor.report()["intake"]
        assert report["up"] is False and "disk is full" in report["reason"]
        await healthy.wait()
        assert not supervisor.all_up  # restarted, but not yet proven healthy
        await _wait_for(lambda: supervisor.all_up)
        assert supervisor.report()["intake"] == {"up": True, "restarts": 3}
        await _stop(supervisor)
        return runs

    with caplog.at_level(logging.INFO, logger="bridge.supervise"):
        runs = asyncio.run(scenario())
    assert len(runs) == 4
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1  # the same error three times: one traceback, then one line each
    assert sum("failed again" in r.getMessage() for r in caplog.records) == 2


def test_a_task_that_keeps_failing_stays_reported():
    async def scenario():
        supervisor = Supervisor(backoff_base=0.01, backoff_max=0.01, settle_seconds=0.1)
        attempts = []

        async def task():
            attempts.append(1)
            await asyncio.sleep(0.001)
            raise RuntimeError("bug")

        supervisor.spawn("outbox", task)
        await _wait_for(lambda: len(attempts) >= 15)
        up = supervisor.all_up
        await _stop(supervisor)
        return up

    assert asyncio.run(scenario()) is False


def test_a_task_that_returns_is_restarted_too():
    async def scenario():
        supervisor = Supervisor(backoff_base=0.01, backoff_max=0.01, settle_seconds=10)
        runs = []

        async def task():
            runs.append(1)
            if len(runs) > 1:
                await asyncio.Event().wait()

        supervisor.spawn("housekeeping", task)
        await _wait_for(lambda: len(runs) == 2)
        report = supervisor.report()["housekeeping"]
        await _stop(supervisor)
        return report

    report = asyncio.run(scenario())
    assert report["up"] is False and "returned" in report["reason"]
