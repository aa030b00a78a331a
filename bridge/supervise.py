"""Keeps the App's long-running tasks alive: a task that dies is logged, reported and restarted.

Each task catches the errors it knows (``BridgeError``); anything else (a full disk failing a
SQLite commit, a bug) used to end it for good while ``/readyz`` still said ready. Here an
unexpected error is logged once with its traceback (repeats of the same error in one streak
get one line each), the task is marked failing (``/readyz`` answers 503 while any is), and it is
restarted after a backoff. It counts as healthy again once it has run ``settle_seconds`` since
its restart without failing; a task that keeps failing keeps ``/readyz`` at 503.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

log = logging.getLogger("bridge.supervise")


@dataclass
class TaskHealth:
    """The state of one supervised task, read by /readyz from the HTTP thread."""

    name: str
    failing_since: float | None = None
    restarts: int = 0
    reason: str = ""
    last_signature: str = ""

    def report(self) -> dict[str, Any]:
        since = self.failing_since
        if since is None:
            return {"up": True, "restarts": self.restarts}
        return {"up": False, "restarts": self.restarts, "down_for_seconds": round(time.monotonic() - since, 1),
                "reason": self.reason[:500]}


class Supervisor:
    """Starts named tasks from factories and restarts each one with backoff when it fails."""

    def __init__(self, *, backoff_base: float = 1.0, backoff_max: float = 60.0, settle_seconds: float = 10.0) -> None:
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.settle_seconds = settle_seconds
        self.health: dict[str, TaskHealth] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        self.health[name] = TaskHealth(name)
        task = asyncio.create_task(self._keep(name, factory), name=name)
        self.tasks[name] = task
        return task

    @property
    def all_up(self) -> bool:
        return all(health.failing_since is None for health in list(self.health.values()))

    def report(self) -> dict[str, dict[str, Any]]:
        return {name: health.report() for name, health in list(self.health.items())}

    async def _keep(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        health = self.health[name]
        streak = 0
        while True:
            started = time.monotonic()
            settle = asyncio.get_running_loop().call_later(self.settle_seconds, self._settled, health)
            try:
                await factory()
                raise RuntimeError("the task returned; it should run until cancelled")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if time.monotonic() - started >= self.settle_seconds:
                    streak = 0
                streak += 1
                self._failed(health, exc)
            finally:
                settle.cancel()
            step = min(self.backoff_max, self.backoff_base * 2 ** (streak - 1))
            await asyncio.sleep(random.uniform(step / 2, step))
            health.restarts += 1
            log.info("%s: restarting (restart %d)", name, health.restarts)

    def _failed(self, health: TaskHealth, exc: Exception) -> None:
        signature = f"{type(exc).__name__}: {exc}"
        health.reason = f"crashed: {signature}"
        if health.failing_since is None:
            health.failing_since = time.monotonic()
        if signature != health.last_signature:
            log.error("%s: task failed unexpectedly; restarting it with backoff", health.name, exc_info=exc)
        else:
            log.error("%s: task failed again (%s); still restarting", health.name, signature)
        health.last_signature = signature

    @staticmethod
    def _settled(health: TaskHealth) -> None:
        if health.failing_since is not None:
            log.info("%s: running again after %.1fs", health.name, time.monotonic() - health.failing_since)
        health.failing_since = None
        health.reason = ""
        health.last_signature = ""
