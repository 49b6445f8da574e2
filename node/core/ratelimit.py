"""A fixed-window rate limit: at most ``burst`` records per ``window`` seconds, the rest counted.

Refused TLS handshakes are recorded in the log and the audit (docs/audit.md), but a port scan
can make thousands a minute; past the limit they are only counted, and the next record that
is let through says how many were left out, so nothing is lost silently and nothing floods.
Time comes from the caller (a monotonic clock, node/core/clock.py), so tests drive it.
"""
from __future__ import annotations

from collections.abc import Callable


class RateLimit:
    """``allow()`` is True for the first ``burst`` calls of each ``window``-second window."""

    def __init__(self, *, burst: int, window: float, now: Callable[[], float]) -> None:
        if burst < 1 or window <= 0:
            raise ValueError("a rate limit needs burst >= 1 and a positive window")
        self._burst = burst
        self._window = window
        self._now = now
        self._started = now()
        self._used = 0
        self._suppressed = 0

    def allow(self) -> bool:
        """Whether to record this event now; if not, it is counted in :meth:`take_suppressed`."""
        now = self._now()
        if now - self._started >= self._window:
            self._started, self._used = now, 0
        if self._used < self._burst:
            self._used += 1
            return True
        self._suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """How many events were left out since the last call (and reset the count)."""
        count, self._suppressed = self._suppressed, 0
        return count
