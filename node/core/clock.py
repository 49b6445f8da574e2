"""Time, as the node reads it: two injected clocks, never ``time.time()`` in logic.

A running node has two clocks with two jobs (I12: correctness never depends on synchronised
clocks, nor on a clock that does not step):

* the **timer clock** is the reactor's ``seconds()``; ``callLater``, ``LoopingCall`` and every
  interval (uptime, transfer rate) run on it. The daemon makes it ``time.monotonic`` before
  anything is scheduled (``use_monotonic_timers``), so an NTP step of the wall clock neither
  holds a pending retry back by the size of a backward step nor fires every timer at once on
  a forward one. Its readings mean nothing outside this process: never stored, never shown.
* the **wall clock** (``NodeRuntime.wall_clock``) gives every time that is stored, signed,
  shown, or compared with a stored time: audit entries, receipts, ``created_at``, the
  persisted retry schedule (``peer_schedule.next_attempt_at``), key validity.

Tests pass one ``task.Clock`` as both, or two when a test steps the wall clock alone. This
module turns epoch seconds into the RFC 3339 strings that signed objects and the store carry.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any


def rfc3339(seconds: float) -> str:
    """``2026-11-25T22:00:00Z`` for an epoch time (second precision, UTC)."""
    return datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_ms(seconds: float) -> str:
    """Millisecond precision, for audit entries and logs where order within a second matters."""
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_rfc3339(text: str) -> float:
    """Inverse of ``rfc3339``/``rfc3339_ms`` (accepts a trailing Z)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def use_monotonic_timers(reactor: Any) -> None:
    """Run ``reactor``'s timers on ``time.monotonic`` instead of the wall clock.

    Twisted's reactor reads ``self.seconds()`` for ``callLater``, for each ``DelayedCall``
    (which keeps the function it was created with), for its poll timeout and for running due
    calls; ``LoopingCall`` reads ``clock.seconds()``. Replacing it on the instance moves all
    of them together. A timer scheduled before the switch would hold a wall-clock due time
    that the monotonic clock reaches only decades later, so the switch is refused once any
    timer is pending: call this first, before anything is started. Calling it again is a
    no-op, so every entry point (daemon, demo) may call it.
    """
    if reactor.seconds is time.monotonic:
        return
    pending = reactor.getDelayedCalls()
    if pending:
        raise RuntimeError(f"cannot move the reactor's timers to the monotonic clock: "
                           f"{len(pending)} timer(s) already scheduled on the wall clock "
                           "(switch before starting anything)")
    reactor.seconds = time.monotonic
