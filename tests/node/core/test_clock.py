"""The two clocks: timers on the monotonic clock, timestamps on the wall clock
(node/core/clock.py)."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.task import Clock, LoopingCall

from lienthong.node.core.clock import rfc3339, use_monotonic_timers
from tests.node.runtimehelp import EPOCH, FakeReactor, Office, make_office

DAY = 86400.0


@pytest.fixture
def reactor() -> Iterator[SelectReactor]:
    """A real (unstarted) Twisted reactor of our own, so the global one is left alone."""
    instance = SelectReactor()
    yield instance
    for call in instance.getDelayedCalls():
        call.cancel()
    instance.waker.connectionLost(None)


def test_the_reactor_schedules_and_waits_on_the_monotonic_clock(reactor: SelectReactor) -> None:
    """After the switch, callLater, the poll timeout and LoopingCall all read time.monotonic."""
    use_monotonic_timers(reactor)
    before = time.monotonic()
    call = reactor.callLater(30.0, lambda: None)
    after = time.monotonic()
    # Wall-clock epoch seconds are ~1.8e9; monotonic ones are not: the due time is monotonic.
    assert before + 30.0 <= call.getTime() <= after + 30.0
    assert 29.0 < reactor.timeout() <= 30.0  # type: ignore[operator]
    loop = LoopingCall(lambda: None)
    loop.clock = reactor
    loop.start(60.0, now=False)
    assert before <= loop.starttime <= time.monotonic()  # type: ignore[operator]
    loop.stop()


def test_the_switch_is_refused_once_a_wall_clock_timer_is_pending(
        reactor: SelectReactor) -> None:
    """A timer set on the wall clock would wait decades on the monotonic one: refuse, loudly."""
    reactor.callLater(1.0, lambda: None)
    with pytest.raises(RuntimeError, match="already scheduled on the wall clock"):
        use_monotonic_timers(reactor)
    assert reactor.seconds is not time.monotonic


def test_the_switch_may_be_made_twice(reactor: SelectReactor) -> None:
    """Daemon and demo both call it; the second call (timers pending by then) is a no-op."""
    use_monotonic_timers(reactor)
    reactor.callLater(1.0, lambda: None)
    use_monotonic_timers(reactor)
    assert reactor.seconds is time.monotonic


def test_runtime_stamps_with_the_wall_clock_and_measures_with_the_timer_clock(
        tmp_path: Path) -> None:
    """now(), now_text() and audit entries follow the wall clock; monotonic() the reactor."""
    timers = FakeReactor(start=500.0)
    wall = Clock()
    wall.advance(EPOCH)
    office: Office = make_office(tmp_path, "alpha", timers)
    rt = office.runtime
    rt.wall_clock = wall.seconds
    assert (rt.now(), rt.monotonic()) == (EPOCH, 500.0)
    wall.advance(-DAY)  # an NTP step back: the timer clock does not move
    assert rt.now_text() == rfc3339(EPOCH - DAY)
    assert rt.monotonic() == 500.0
    rt.audit("node-started", node_id=rt.node_id)
    rt.db_audited(lambda: None, events=[("node-stopped", {"node_id": rt.node_id})])
    stamps = [event.time for event in office.store.audit_entries()[-2:]]
    assert [stamp[:19] for stamp in stamps] == [rfc3339(EPOCH - DAY)[:19]] * 2, stamps


def test_one_clock_serves_as_both_when_no_wall_clock_is_given(tmp_path: Path) -> None:
    """Unit tests pass a single task.Clock: it is then the wall clock too."""
    timers = FakeReactor()
    rt = make_office(tmp_path, "alpha", timers).runtime
    timers.advance(7.0)
    assert rt.now() == rt.monotonic() == EPOCH + 7.0
