"""ReadAhead (node/delivery/readahead.py): frames read on a worker, in order, bounded, closed
safely.

The "worker" here is a list of pending calls the test runs when it chooses, so every
interleaving of reads, takes and closes is reached deterministically.
"""
from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed

from lienthong.node.delivery.readahead import ReadAhead

DATA = bytes(range(256)) * 40   # 10,240 bytes


class Source(io.BytesIO):
    """A BytesIO that records seeks and refuses use after close (as a real file does)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.seeks: list[int] = []

    def seek(self, offset: int, whence: int = 0) -> int:
        self.seeks.append(offset)
        return super().seek(offset, whence)


class Worker:
    """Calls wait in ``pending`` until ``run_next``: nothing runs behind the test's back."""

    def __init__(self) -> None:
        self.pending: list[tuple[Deferred, Callable[..., Any], tuple[Any, ...]]] = []

    def __call__(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        d: Deferred = Deferred()
        self.pending.append((d, fn, args))
        return d

    def run_next(self) -> None:
        d, fn, args = self.pending.pop(0)
        try:
            result = fn(*args)
        except Exception as exc:  # noqa: BLE001 - handed over as a worker would
            d.errback(exc)
        else:
            d.callback(result)


def _ahead(source: Source, worker: Any, ready: list[int], *, offset: int = 0,
           depth: int = 3) -> ReadAhead:
    return ReadAhead(source, offset=offset, size=len(DATA), frame=1000, depth=depth,
                     run_in_thread=worker, on_ready=lambda: ready.append(1))


def test_frames_come_in_order_from_the_offset_and_the_seek_runs_on_the_worker() -> None:
    """The seek (a resume's re-encryption) happens in the first worker call, not at start."""
    source, worker, ready = Source(DATA), Worker(), []
    ahead = _ahead(source, worker, ready, offset=2500)
    ahead.start()
    assert source.seeks == [] and ahead.take() is None
    out = b""
    while worker.pending:
        worker.run_next()
        while (frame := ahead.take()) is not None:
            out += frame
    assert source.seeks == [2500]
    assert out == DATA[2500:]
    assert ready, "the reactor side was told when frames became ready"


def test_at_most_depth_frames_wait_and_one_read_is_in_flight() -> None:
    """Memory stays bounded: reading stops at ``depth`` frames until one is taken."""
    source, worker, ready = Source(DATA), Worker(), []
    ahead = _ahead(source, worker, ready, depth=2)
    ahead.start()
    assert len(worker.pending) == 1
    worker.run_next()
    assert len(worker.pending) == 1
    worker.run_next()
    assert worker.pending == [], "two frames ready: no further read until one is taken"
    assert ahead.take() == DATA[:1000]
    assert len(worker.pending) == 1


def test_close_during_a_read_closes_the_source_only_after_it_returns() -> None:
    """The worker never reads a closed file; the source is still closed in the end."""
    source, worker, ready = Source(DATA), Worker(), []
    ahead = _ahead(source, worker, ready)
    ahead.start()
    ahead.close()
    assert not source.closed, "closed under a read still running on the worker"
    worker.run_next()
    assert source.closed
    assert worker.pending == [] and ahead.take() is None


def test_a_short_source_or_a_failed_read_becomes_an_error() -> None:
    """An envelope shorter than its header, or a read that raises, surfaces as OSError."""
    short, worker, ready = Source(DATA[:1500]), Worker(), []
    ahead = _ahead(short, worker, ready, depth=5)
    ahead.start()
    while worker.pending:
        worker.run_next()
    assert isinstance(ahead.error, OSError) and "shorter" in str(ahead.error)

    def broken(fn: Callable[..., Any], *args: Any) -> Deferred:
        return fail(OSError(5, "Input/output error"))
    failing = ReadAhead(Source(DATA), offset=0, size=len(DATA), frame=1000,
                        run_in_thread=broken, on_ready=lambda: ready.append(2))
    failing.start()
    assert isinstance(failing.error, OSError) and failing.error.errno == 5
    assert ready[-1] == 2


def test_an_inline_worker_fills_up_to_depth_at_once() -> None:
    """With a worker that answers at once (as in the unit tests of the sender), it still works."""
    source, ready = Source(DATA), []
    ahead = ReadAhead(source, offset=0, size=len(DATA), frame=4096, depth=2,
                      run_in_thread=lambda fn, *a: succeed(fn(*a)),
                      on_ready=lambda: ready.append(1))
    ahead.start()
    frames = []
    while (frame := ahead.take()) is not None:
        frames.append(frame)
    assert b"".join(frames) == DATA and [len(f) for f in frames] == [4096, 4096, 2048]
