"""Per-account action limit over a sliding window: pure logic on timestamps the caller persists."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field


class ActionLimit(BaseModel):
    """At most ``count`` automated actions on one account within ``per_seconds``.

    Caps the damage of a mistaken or abused automation: past the cap a human looks at it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int = Field(default=3, ge=0)
    per_seconds: float = Field(default=86400, gt=0)


def _recent(history: Sequence[float], now: float, limit: ActionLimit) -> list[float]:
    """Entries inside the window ending at ``now``; future ones count: a clock step back reopens nothing."""
    return [at for at in history if at > now - limit.per_seconds]


def allows(history: Sequence[float], now: float, limit: ActionLimit) -> bool:
    """True when one more action at ``now`` stays within the limit."""
    return len(_recent(history, now, limit)) < limit.count


def record(history: Sequence[float], now: float, limit: ActionLimit) -> list[float]:
    """The history to persist after an action at ``now``: expired entries dropped, ``now`` appended."""
    return [*_recent(history, now, limit), now]
