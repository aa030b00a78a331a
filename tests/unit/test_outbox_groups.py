"""Outbox groups (one at a time, in enqueue order, across restarts), NotYet and Retry-After."""

import asyncio
import time

import pytest

from bridge.errors import RateLimited, TransientError
from bridge.pipeline.health import ServiceHealth
from bridge.pipeline.outbox import Effect, NotYet, Outbox
from bridge.slack.pacing import ChannelPacer
from bridge.store import Store
from tests.unit.test_outbox import _run_until


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path)
    yield s
    s.close()


def _sent(store, *keys):
    return all(store.outbox.get(k, {}).get("status") == "sent" for k in keys)


def test_a_group_runs_one_at_a_time_in_order_while_other_groups_go_on(store):
    order, running = [], set()

    async def post(payload, attempt):
        group = payload["group"]
        assert group not in running, "two effects of one group ran at once"
        running.add(group)
        await asyncio.sleep(0.02 if payload["n"] == 0 else 0)
        if payload["n"] == 1 and attempt == 0 and group == "a":
            running.discard(group)
            raise TransientError("slack 503")  # the group waits for its retry, nothing overtakes it
        order.append((group, payload["n"]))
        running.discard(group)

    outbox = Outbox(store.outbox, {"slack": post}, {}, retry_base=0.01, retry_max=0.02)
    keys = []
    for n in range(4):
        for group in ("a", "b"):
            keys.append(f"{group}{n}")
            outbox.enqueue(Effect(keys[-1], "slack", {"group": group, "n": n}, group=f"slack:{group}"))
    asyncio.run(_run_until(outbox, lambda: _sent(store, *keys)))
    assert [n for g, n in order if g == "a"] == [0, 1, 2, 3]
    assert [n for g, n in order if g == "b"] == [0, 1, 2, 3]
    assert order.index(("b", 1)) < order.index(("a", 1)), "group b was held back by group a's retry"


def test_group_order_survives_a_restart(store, tmp_path):
    first = Outbox(store.outbox, {}, {})
    for n in range(5):
        first.enqueue(Effect(f"k{n}", "slack", {"n": n}, group="slack:1"))
    seen = []

    async def post(payload, attempt):
        seen.append((payload["n"], attempt))

    again = Outbox(store.outbox, {"slack": post}, {})
    asyncio.run(_run_until(again, lambda: len(seen) == 5))
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
    assert all(attempt == 1 for _, attempt in seen), "effects found pending may have been performed: attempt ≥ 1"


def test_a_dead_effect_lets_its_group_go_on(store):
    async def post(payload, attempt):
        if payload["n"] == 0:
            raise TransientError("never works")

    outbox = Outbox(store.outbox, {"slack": post}, {}, max_attempts=2, retry_base=0.01, retry_max=0.01)
    outbox.enqueue(Effect("k0", "slack", {"n": 0}, group="g"))
    outbox.enqueue(Effect("k1", "slack", {"n": 1}, group="g"))
    asyncio.run(_run_until(outbox, lambda: _sent(store, "k1")))
    assert store.outbox.get("k0")["status"] == "dead"


def test_not_yet_waits_without_counting_an_attempt(store):
    calls = []

    async def post(payload, attempt):
        calls.append(time.time())
        if len(calls) == 1:
            raise NotYet(time.time() + 0.2)

    outbox = Outbox(store.outbox, {"slack": post}, {}, max_attempts=1)
    outbox.enqueue(Effect("k", "slack", {}))
    asyncio.run(_run_until(outbox, lambda: _sent(store, "k")))
    assert calls[1] - calls[0] >= 0.19
    assert store.outbox.get("k")["attempts"] == 0


def test_rate_limited_waits_retry_after_and_is_no_outage(store):
    calls = []

    async def post(payload, attempt):
        calls.append(time.time())
        if len(calls) == 1:
            raise RateLimited("429", service="slack", retry_after=0.3)

    health = ServiceHealth("slack")
    outbox = Outbox(store.outbox, {"slack": post}, {"slack": health}, retry_base=0.01, retry_max=0.01,
                    attempts_by_kind={"slack": 50})
    outbox.enqueue(Effect("k", "slack", {}))
    asyncio.run(_run_until(outbox, lambda: _sent(store, "k")))
    assert calls[1] - calls[0] >= 0.29
    assert not health.is_down


def test_per_kind_attempt_limit(store):
    async def post(payload, attempt):
        raise TransientError("down")

    outbox = Outbox(store.outbox, {"slack": post, "smtp": post}, {}, max_attempts=2, retry_base=0.001,
                    retry_max=0.001, attempts_by_kind={"slack": 5})
    outbox.enqueue(Effect("s", "slack", {}))
    outbox.enqueue(Effect("m", "smtp", {}))
    asyncio.run(_run_until(outbox, lambda: all(store.outbox.get(k)["status"] == "dead" for k in ("s", "m"))))
    assert store.outbox.get("s")["attempts"] == 5 and store.outbox.get("m")["attempts"] == 2


def test_pacer_allows_a_burst_then_one_per_interval_per_channel():
    pacer = ChannelPacer(1.0, burst=3)
    now = 1000.0
    assert [pacer.slot("C1", f"k{n}", now) for n in range(3)] == [0.0, 0.0, 0.0]
    assert pacer.slot("C1", "k3", now) == pytest.approx(now + 1.0)
    assert pacer.slot("C1", "k4", now) == pytest.approx(now + 2.0)
    assert pacer.slot("C2", "other", now) == 0.0, "another channel is not held back"
    assert pacer.slot("C1", "k3", now + 0.5) == pytest.approx(now + 1.0), "a waiting post keeps its slot"
    assert pacer.slot("C1", "k3", now + 1.0) == 0.0
    assert pacer.slot("C1", "k5", now + 1.0) == pytest.approx(now + 3.0), "served in the order posts asked"
