"""The per-account action limit: a sliding window over timestamps the caller persists."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bridge.automation.limits import ActionLimit, allows, record

DAY = 86400.0
LIMIT = ActionLimit()


def test_defaults() -> None:
    assert (LIMIT.count, LIMIT.per_seconds) == (3, DAY)


def test_allows_up_to_count_within_window() -> None:
    history: list[float] = []
    now = 1_000_000.0
    for step in range(3):
        assert allows(history, now + step, LIMIT)
        history = record(history, now + step, LIMIT)
    assert history == [now, now + 1, now + 2]
    assert not allows(history, now + 3, LIMIT)


def test_window_slides() -> None:
    history = [0.0, 100.0, 200.0]
    assert not allows(history, DAY - 1, LIMIT)
    assert allows(history, DAY, LIMIT)  # an entry exactly one window old has expired
    assert not allows([*history, DAY], DAY + 99, LIMIT)
    assert allows([*history, DAY], DAY + 100, LIMIT)


def test_record_prunes_expired_entries_and_appends_now() -> None:
    history = (0.0, 50.0, DAY - 10, DAY + 5)
    assert record(history, DAY + 60, LIMIT) == [DAY - 10, DAY + 5, DAY + 60]


def test_record_does_not_mutate_the_input() -> None:
    history = [1.0, 2.0]
    record(history, 3.0, LIMIT)
    assert history == [1.0, 2.0]


def test_future_entries_still_count_after_a_clock_step_back() -> None:
    history = [5000.0, 5001.0, 5002.0]
    assert not allows(history, 4000.0, LIMIT)
    assert record(history, 4000.0, LIMIT) == [5000.0, 5001.0, 5002.0, 4000.0]


def test_count_zero_disables_actions() -> None:
    assert not allows([], 0.0, ActionLimit(count=0))


def test_small_window() -> None:
    limit = ActionLimit(count=1, per_seconds=60)
    assert allows([], 0.0, limit)
    assert not allows([0.0], 59.9, limit)
    assert allows([0.0], 60.0, limit)


@pytest.mark.parametrize("data", [{"count": -1}, {"per_seconds": 0}, {"per_seconds": -5}, {"burst": 2}])
def test_invalid_limits_are_rejected(data: dict) -> None:
    with pytest.raises(ValidationError):
        ActionLimit(**data)


def test_limit_is_frozen() -> None:
    with pytest.raises(ValidationError):
        LIMIT.count = 10
