"""The Stage protocol and the signals a stage raises to stop the pipeline for one email."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from bridge.pipeline.context import Context
    from bridge.pipeline.job import Job


class Stage(Protocol):
    """One small step; it returns its result, which the runner keeps on the job.

    ``journal`` says whether the result is written to the journal at once: true for steps with
    an outside effect (their result must not be redone blindly); a step that only reads may be
    redone after a crash, so its result is journaled with the next one.
    """

    name: str
    journal: bool

    async def run(self, job: Job, ctx: Context) -> dict[str, Any]: ...


class Signal(Exception):
    """Base of the pipeline signals: not errors, decisions."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Skip(Signal):
    """Nothing more to do for this email; the job is finished."""


class Quarantine(Signal):
    """Park the email in the quarantine folder (or ``folder``: spam to the junk folder) with this reason."""

    def __init__(self, reason: str, folder: str = "") -> None:
        super().__init__(reason)
        self.folder = folder


class Defer(Signal):
    """Try this email again later (after ``after`` seconds, or the runner's backoff)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after
