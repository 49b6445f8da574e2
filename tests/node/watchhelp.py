"""The outbox watcher under test: a real watchdog observer, a fake Clock, and a queue standing
in for the reactor (shared by test_watcher.py and test_watch_observer.py)."""
from __future__ import annotations

import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock

from lienthong.node.watch.watcher import OutboxWatcher

STABLE = 1.0
SCAN = 30.0


class Harness:
    """One watcher with a Clock, a hint queue standing in for the reactor, and a ready list."""

    def __init__(self, outbox: Path, *, drop_hints: bool = False, **kw: Any) -> None:
        self.outbox = outbox
        self.clock = Clock()
        self.calls: queue.Queue[tuple[Callable[..., None], tuple[Any, ...]]] = queue.Queue()
        self.ready: list[tuple[Path, str]] = []
        self.drop_hints = drop_hints
        kw.setdefault("stable_seconds", STABLE)
        kw.setdefault("scan_interval", SCAN)
        self.watcher = OutboxWatcher(self.clock, outbox, self._on_ready,
                                     call_from_thread=self._from_thread, **kw)

    def _from_thread(self, fn: Callable[..., None], *args: Any) -> None:
        if self.drop_hints and getattr(fn, "__name__", "") in ("_hint", "deliver_hints"):
            return  # simulate events lost by the kernel or never delivered (network share)
        self.calls.put((fn, args))

    def _on_ready(self, path: Path, target: str) -> None:
        self.ready.append((path, target))

    def start(self) -> None:
        self.watcher.start()
        self.clock.advance(0)  # the start-up scan

    def drain(self) -> int:
        """Run the hints queued so far on 'the reactor thread'; return how many ran."""
        count = 0
        while True:
            try:
                fn, args = self.calls.get_nowait()
            except queue.Empty:
                break
            fn(*args)
            count += 1
        self.clock.advance(0)
        return count

    def settle(self, quiet: float = 0.3, timeout: float = 20.0) -> None:
        """Drain hints until none has arrived for ``quiet`` real seconds."""
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            if self.drain():
                last = time.monotonic()
            elif time.monotonic() - last >= quiet:
                return
            time.sleep(0.01)
        raise AssertionError("hints never went quiet")

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.drain()
            if condition():
                return
            time.sleep(0.02)
        raise AssertionError("condition not reached")

    def stop(self) -> None:
        self.watcher.stop()
        assert self.clock.getDelayedCalls() == []


def write(path: Path, data: bytes = b"document") -> Path:
    with open(path, "wb") as handle:
        handle.write(data)
    return path
