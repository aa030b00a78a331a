"""Outage bookkeeping: one log line when a service goes down and one when it comes back."""

from __future__ import annotations

import logging
import threading
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


# From a loopback stand-in (~1 ms) to a slow remote API (tens of seconds).
CALL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class CallStats:
    """Durations and failures of the calls made to one service, for /metrics. Written from the
    event loop and from worker threads: a lock keeps the counts whole."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.errors = 0
        self.total_seconds = 0.0
        self.buckets = [0] * len(CALL_BUCKETS)  # calls at most as long as each bound (cumulative at read)

    def record(self, seconds: float, *, ok: bool) -> None:
        with self._lock:
            self.count += 1
            self.errors += 0 if ok else 1
            self.total_seconds += seconds
            for index, bound in enumerate(CALL_BUCKETS):
                if seconds <= bound:
                    self.buckets[index] += 1
                    break

    def snapshot(self) -> tuple[int, int, float, list[tuple[str, int]]]:
        """(calls, errors, total seconds, cumulative Prometheus buckets with +Inf)."""
        with self._lock:
            running, cumulative = 0, []
            for bound, count in zip(CALL_BUCKETS, self.buckets):
                running += count
                cumulative.append((str(bound), running))
            cumulative.append(("+Inf", self.count))
            return self.count, self.errors, self.total_seconds, cumulative


class CallBook:
    """One CallStats per service name, made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.services: dict[str, CallStats] = {}

    def of(self, service: str) -> CallStats:
        with self._lock:
            return self.services.setdefault(service, CallStats())

    def record(self, service: str, started: float, *, ok: bool) -> None:
        """``started``: a time.monotonic() taken before the call."""
        self.of(service).record(time.monotonic() - started, ok=ok)
