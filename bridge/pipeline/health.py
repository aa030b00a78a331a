"""Outage bookkeeping: one log line when a service goes down and one when it comes back."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("bridge.health")


class ServiceHealth:
    """Turns a stream of per-call failures into one clear line per outage."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down_since: float | None = None
        self.failures = 0

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def failed(self, reason: str) -> None:
        self.failures += 1
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("%s: unavailable (%s); work waits and is retried with backoff", self.name, reason)

    def ok(self) -> None:
        if self.down_since is not None:
            log.info(
                "%s: available again after %.1fs (%d failed calls meanwhile)",
                self.name,
                time.monotonic() - self.down_since,
                self.failures,
            )
            self.down_since = None
            self.failures = 0
