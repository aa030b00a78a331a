"""Outage bookkeeping: one log line when a service goes down and one when it comes back."""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger("bridge.health")


class ServiceHealth:
    """Turns a stream of per-call failures into one clear line per outage."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.down_since: float | None = None
        self.failures = 0
        self.reason = ""  # the last failure's text while down, for /readyz

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def failed(self, reason: str) -> None:
        self.failures += 1
        self.reason = reason
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
            self.reason = ""

    def report(self) -> dict[str, Any]:
        """What /readyz shows for this service; the reason is an error text, which holds no secrets."""
        since = self.down_since  # read once: the event loop may clear it meanwhile
        if since is None:
            return {"up": True}
        return {"up": False, "down_for_seconds": round(time.monotonic() - since, 1), "reason": self.reason[:500]}
