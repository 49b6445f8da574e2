"""When to try a peer again: exponential backoff with jitter, forever (docs/reliability.md §1.5).

A retry budget that runs out would be a silent loss, so there is none: the delay grows from
``initial`` to ``maximum`` and stays there until the peer answers. Jitter (a factor drawn
between 0.5 and 1.0) keeps a hundred offices from all redialling the same peer in the same
second after an outage. The random draw is a parameter so tests can fix it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 300.0

    def delay(self, failures: int, random: Callable[[], float]) -> float:
        """Seconds to wait after ``failures`` consecutive failed attempts (failures ≥ 1)."""
        if failures <= 0:
            return 0.0
        exponent = min(failures - 1, 32)  # 2**32 * initial is past any sane maximum already
        base = min(self.maximum, self.initial * (2 ** exponent))
        return base * (0.5 + 0.5 * random())

    def clamp_due(self, due: float, now: float) -> float:
        """A stored due time more than ``maximum`` ahead means the clock stepped back: retry soon.

        The schedule lives in the store so a restart resumes it; after a backward clock step a
        stored time could otherwise hold delivery back by the size of the step (I12: correctness
        never depends on synchronised clocks).
        """
        return min(due, now + self.maximum)
