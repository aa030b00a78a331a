"""The Stage protocol and the signals a stage raises to stop the pipeline for one email."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bridge.pipeline.context import Context
    from bridge.pipeline.job import Job


class Stage(Protocol):
    """One small step; it returns its result, which the runner journals before the next step."""

    name: str

    async def run(self, job: "Job", ctx: "Context") -> dict[str, Any]: ...


class Signal(Exception):
    """Base of the pipeline signals: not errors, decisions."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Skip(Signal):
    """Nothing more to do for this email; the job is finished."""


class Quarantine(Signal):
    """Park the email in the quarantine folder with this reason."""


class Defer(Signal):
    """Try this email again later (after ``after`` seconds, or the runner's backoff)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after
