"""The outbox: idempotent enqueue, retries with backoff, dead letters, follow-ups, restarts."""

import asyncio

import pytest

from bridge.errors import RecipientDeferred, RejectedByService, ServiceDown, TransientError
from bridge.pipeline.health import ServiceHealth
from bridge.pipeline.outbox import Effect, Outbox, backoff
from bridge.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    yield s
    s.close()


async def _run_until(outbox: Outbox, condition, timeout=5.0):
    task = asyncio.create_task(outbox.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_enqueue_is_idempotent(store):
    outbox = Outbox(store.outbox, {}, {})
    assert outbox.enqueue(Effect("ack:1", "smtp", {"n": 1}))
    assert not outbox.enqueue(Effect("ack:1", "smtp", {"n": 2}))
    assert store.outbox.get("ack:1")["payload"] == {"n": 1}


def test_transient_failures_retry_then_succeed_and_enqueue_follow_ups(store):
    calls = []

    async def flaky(payload, attempt):
        calls.append(attempt)
        if attempt < 2:
            raise TransientError("smtp down")
        return [Effect("note:1", "note", {"x": 1})]

    async def note(payload, attempt):
        calls.append("note")

    health = ServiceHealth("smtp")
    outbox = Outbox(store.outbox, {"smtp": flaky, "note": note}, {"smtp": health},
                    retry_base=0.01, retry_max=0.02)
    outbox.enqueue(Effect("ack:1", "smtp", {}))
    asyncio.run(_run_until(outbox, lambda: store.outbox.get("note:1", {}).get("status") == "sent"))
    assert calls == [0, 1, 2, "note"]
    assert store.outbox.get("ack:1")["status"] == "sent"
    assert not health.is_down


def test_permanent_failure_is_dead_lettered_at_once(store):
    async def refuse(payload, attempt):
        raise RejectedByService("550 no such user")

    outbox = Outbox(store.outbox, {"smtp": refuse}, {})
    outbox.enqueue(Effect("ack:1", "smtp", {}))
    asyncio.run(_run_until(outbox, lambda: store.outbox.get("ack:1")["status"] == "dead"))
    record = store.outbox.get("ack:1")
    assert record["attempts"] == 1 and "550" in record["last_error"]
    assert outbox.dead() and not outbox.pending()


def test_attempts_are_capped(store):
    async def down(payload, attempt):
        raise TransientError("down")

    outbox = Outbox(store.outbox, {"smtp": down}, {}, max_attempts=3, retry_base=0.001, retry_max=0.002)
    outbox.enqueue(Effect("ack:1", "smtp", {}))
    asyncio.run(_run_until(outbox, lambda: store.outbox.get("ack:1")["status"] == "dead"))
    assert store.outbox.get("ack:1")["attempts"] == 3


def test_pending_effects_survive_a_restart(tmp_path):
    first = Store(tmp_path)
    Outbox(first.outbox, {}, {}).enqueue(Effect("ack:1", "smtp", {"to": "a@b"}))
    first.close()
    seen = []

    async def send(payload, attempt):
        seen.append(payload["to"])

    second = Store(tmp_path)
    outbox = Outbox(second.outbox, {"smtp": send}, {})
    asyncio.run(_run_until(outbox, lambda: seen))
    assert seen == ["a@b"]
    second.close()


def test_backoff_grows_and_is_capped():
    assert all(0.1 <= backoff(1, 1, 100) <= 1 for _ in range(50))
    assert all(0.8 <= backoff(4, 1, 100) <= 8 for _ in range(50))
    assert all(backoff(30, 1, 5) <= 5 for _ in range(50))


def test_effects_pending_at_start_are_flagged_as_possibly_done(tmp_path):
    first = Store(tmp_path)
    Outbox(first.outbox, {}, {}).enqueue(Effect("note:1", "note", {}))
    first.close()
    attempts = []

    async def note(payload, attempt):
        attempts.append(attempt)

    second = Store(tmp_path)
    outbox = Outbox(second.outbox, {"note": note}, {})
    outbox.enqueue(Effect("note:2", "note", {}))
    asyncio.run(_run_until(outbox, lambda: len(attempts) == 2))
    assert sorted(attempts) == [0, 1], "the recovered effect may have been performed before the crash"
    second.close()


def test_each_kind_has_its_own_lane_and_runs_oldest_first(store):
    """Notes stuck on a slow Odoo fill their lane; replies still go out, in the order queued."""
    release = asyncio.Event()
    sent: list[str] = []

    async def slow_note(payload, attempt):
        await release.wait()

    async def smtp(payload, attempt):
        sent.append(payload["n"])

    async def scenario():
        outbox = Outbox(store.outbox, {"odoo_note": slow_note, "smtp": smtp}, {}, concurrency=2)
        for n in range(4):
            outbox.enqueue(Effect(f"note:{n}", "odoo_note", {}))
        for n in ("z", "a", "m"):  # keys deliberately not in queue order
            outbox.enqueue(Effect(f"ack:{n}", "smtp", {"n": n}))
        await _run_until(outbox, lambda: len(sent) == 3)
        assert sent == ["z", "a", "m"]
        assert sum(1 for key in outbox.pending() if key.startswith("note:")) == 4
        release.set()

    asyncio.run(scenario())


def test_a_deferred_recipient_is_retried_without_an_outage(store):
    """4xx on RCPT: the server is up, so /readyz must not flip (nor show the error text)."""
    seen = []

    async def deferring(payload, attempt):
        seen.append((attempt, health.is_down, health.failures, health.reason))
        if attempt < 2:
            raise RecipientDeferred("recipient deferred (450 4.2.0)", service="smtp")

    health = ServiceHealth("smtp")
    outbox = Outbox(store.outbox, {"smtp": deferring}, {"smtp": health}, retry_base=0.01, retry_max=0.02)
    outbox.enqueue(Effect("ack:1", "smtp", {}))
    asyncio.run(_run_until(outbox, lambda: store.outbox.get("ack:1")["status"] == "sent"))
    assert seen == [(0, False, 0, ""), (1, False, 0, ""), (2, False, 0, "")]
    assert health.report() == {"up": True}


def test_a_deferred_recipient_proves_the_server_is_back(store):
    """Any other transient error is an outage; an answer to RCPT ends it (the server is up)."""
    seen = []

    async def handler(payload, attempt):
        seen.append(health.is_down)
        if attempt == 0:
            raise ServiceDown("smtp: cannot connect", service="smtp")
        raise RecipientDeferred("recipient deferred (451 4.3.0)", service="smtp")

    health = ServiceHealth("smtp")
    outbox = Outbox(store.outbox, {"smtp": handler}, {"smtp": health}, max_attempts=3,
                    retry_base=0.01, retry_max=0.02)
    outbox.enqueue(Effect("ack:1", "smtp", {}))
    asyncio.run(_run_until(outbox, lambda: store.outbox.get("ack:1")["status"] == "dead"))
    assert seen == [False, True, False]
    assert not health.is_down and store.outbox.get("ack:1")["attempts"] == 3
