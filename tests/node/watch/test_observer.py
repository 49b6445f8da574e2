"""Starting and keeping the watchdog observer (node.watch_observer): lost events, the inotify
watch limit, a dead observer, and a clean stop."""
from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any

import pytest
from twisted.logger import globalLogPublisher

from lienthong.node.watch import observer as watch_observer
from lienthong.node.watch.watcher import State
from tests.node.watchhelp import SCAN, STABLE, Harness, write


def test_overflow_warning_forces_a_rescan(blind: Harness, outbox: Path) -> None:
    """watchdog's 'queue overflowed' warning (no event) triggers a scan at once."""
    path = write(outbox / "peer" / "lost.pdf")
    logging.getLogger("watchdog.observers.inotify_c").warning(
        "Inotify queue overflowed; filesystem events were lost")
    blind.drain()
    blind.clock.advance(STABLE)
    assert blind.ready == [(path, "peer")]


def test_watch_limit_falls_back_to_scanning(outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC from inotify gives a clear message and scanning alone still finds files."""

    class Exhausted(watch_observer.Observer):  # type: ignore[misc, valid-type]
        def start(self) -> None:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setitem(watch_observer.OBSERVERS, "native", Exhausted)
    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        h = Harness(outbox)
        h.start()
    finally:
        globalLogPublisher.removeObserver(events.append)
    try:
        assert not h.watcher.watching
        messages = [e for e in events if e.get("log_namespace") == "lienthong.watcher"]
        assert any("max_user_watches" in e.get("why", "") for e in messages)
        path = write(outbox / "peer" / "x.pdf")
        h.clock.advance(SCAN)
        h.clock.advance(STABLE)
        assert h.ready == [(path, "peer")]
    finally:
        h.stop()


def test_dead_observer_is_restarted(harness: Harness, outbox: Path) -> None:
    """If the observer thread dies (e.g. a share vanished), the periodic check restarts it."""
    old = harness.watcher._observer
    assert old is not None
    old.stop()
    old.join(5)
    harness.clock.advance(SCAN)
    assert harness.watcher.watching and harness.watcher._observer is not old
    path = write(outbox / "peer" / "after-restart.pdf")
    harness.wait_for(lambda: harness.watcher.state_of(path) is State.SETTLING)


def test_stop_leaves_no_delayed_calls_and_ignores_late_hints(outbox: Path) -> None:
    """After stop, no timer is left and hints still queued from the observer are ignored."""
    h = Harness(outbox)
    h.start()
    write(outbox / "peer" / "a.pdf")
    h.settle()
    assert h.clock.getDelayedCalls()
    h.calls.put((h.watcher._hint, (str(outbox / "peer" / "late.pdf"),)))
    write(outbox / "peer" / "late.pdf")
    h.stop()
    h.drain()
    assert h.clock.getDelayedCalls() == [] and h.ready == [] and h.watcher.pending == 0
