"""Per-channel pacing of posts: Slack takes about one message per second per channel, in bursts.

A generic cell rate algorithm (GCRA): each channel has a theoretical arrival time that moves one
interval per post; up to ``burst`` posts may go at once on an idle channel. A post that must
wait gets a reserved slot and is told when (the outbox's ``NotYet``), so it holds no worker
and other channels go on; it keeps that slot when it comes back, so the channel is served in
the order posts first asked.
"""

from __future__ import annotations

import time


class ChannelPacer:
    """Slots per channel; ``slot`` is called on the event loop only."""

    def __init__(self, interval: float, burst: int = 3) -> None:
        self.interval = interval
        self.tolerance = interval * max(0, burst - 1)
        self._tat: dict[str, float] = {}
        self._reserved: dict[str, float] = {}

    def slot(self, channel: str, key: str, now: float | None = None) -> float:
        """0.0 when ``key`` may post to ``channel`` now, else the epoch time at which it may."""
        if self.interval <= 0:
            return 0.0
        now = time.time() if now is None else now
        at = self._reserved.get(key)
        if at is None:
            tat = max(self._tat.get(channel, 0.0), now)
            at = max(now, tat - self.tolerance)
            self._tat[channel] = tat + self.interval
        if at <= now + 0.005:
            self._reserved.pop(key, None)
            return 0.0
        self._reserved[key] = at
        return at
