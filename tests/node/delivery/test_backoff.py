"""The retry schedule grows, is capped, jitters, and survives a backward clock step."""
from __future__ import annotations

from lienthong.node.delivery.backoff import Backoff


def test_delay_grows_exponentially_until_the_maximum() -> None:
    """With jitter fixed at its top, delays double from the initial value and stop at the cap."""
    backoff = Backoff(initial=1.0, maximum=60.0)
    delays = [backoff.delay(n, lambda: 1.0) for n in range(1, 10)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_jitter_stays_between_half_and_full_delay() -> None:
    """The jitter factor scales the delay into [0.5, 1.0] of the nominal value."""
    backoff = Backoff(initial=10.0, maximum=1000.0)
    assert backoff.delay(3, lambda: 0.0) == 20.0
    assert backoff.delay(3, lambda: 0.5) == 30.0


def test_no_failures_means_no_wait_and_huge_counts_do_not_overflow() -> None:
    """Zero failures retries at once; a century of failures still yields the cap."""
    backoff = Backoff(initial=1.0, maximum=300.0)
    assert backoff.delay(0, lambda: 1.0) == 0.0
    assert backoff.delay(10_000, lambda: 1.0) == 300.0


def test_due_time_far_in_the_future_is_clamped() -> None:
    """A due time beyond now+maximum (clock stepped back) is pulled in; a normal one is kept."""
    backoff = Backoff(initial=1.0, maximum=300.0)
    assert backoff.clamp_due(1_000_000.0, now=1000.0) == 1300.0
    assert backoff.clamp_due(1100.0, now=1000.0) == 1100.0
