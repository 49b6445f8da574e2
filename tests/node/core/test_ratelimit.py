"""The rate limit on recorded refusals: a burst per window, the rest counted, never lost."""
from __future__ import annotations

import pytest

from lienthong.node.core.ratelimit import RateLimit


def test_a_burst_per_window_and_the_rest_counted() -> None:
    now = [100.0]
    limit = RateLimit(burst=3, window=60.0, now=lambda: now[0])
    assert [limit.allow() for _ in range(5)] == [True, True, True, False, False]
    assert limit.take_suppressed() == 2
    assert limit.take_suppressed() == 0
    now[0] += 59.9
    assert not limit.allow()
    now[0] += 0.1                      # a new window
    assert [limit.allow() for _ in range(4)] == [True, True, True, False]
    assert limit.take_suppressed() == 2


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimit(burst=0, window=1.0, now=lambda: 0.0)
    with pytest.raises(ValueError):
        RateLimit(burst=1, window=0.0, now=lambda: 0.0)
