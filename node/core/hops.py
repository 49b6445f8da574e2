"""Calls of one function made while an earlier batch of them runs go together in the next hop.

Why: a burst of small documents made the same call once per document through a door to
another thread (the worker pool, the database thread): a thread woken, the GIL handed over
and back, a result called back on the reactor, for a few microseconds of work each
(docs/benchmarks.md, History 40). ``CallBatches`` is the group commit of
``lienthong.node.store.commits`` for any such call: the first call goes at once, alone (a lone
document waits for nothing), and the calls made while at most ``hops`` batches run wait for the
next one, up to ``max_batch`` together. Each call's Deferred fires with its own result or
fails with its own error; one failing call never fails the others. Calls are made in the order
they were queued, the most urgent first when calls carry a ``priority`` (lower goes first).

Only for calls whose order against other work does not matter and that change nothing durable
on their own, or whose durability each caller already awaits: batching moves when a call
runs, never what it does.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

#: Most calls in one hop: bounds how long the first waits for the last.
MAX_BATCH = 32


def call_each(fn: Callable[..., Any], calls: list[tuple[Any, ...]]) -> list[Any]:
    """On the other thread: ``fn(*args)`` for each call, its result or the Failure it raised."""
    results: list[Any] = []
    for args in calls:
        try:
            results.append(fn(*args))
        except Exception:  # noqa: BLE001 - this call's own failure, handed back
            results.append(Failure())
    return results


class CallBatches:
    """Calls of ``fn`` through ``door`` (``rt.io`` or ``rt.db``), made in batches."""

    def __init__(self, door: Callable[..., Deferred], fn: Callable[..., Any], *,
                 max_batch: int = MAX_BATCH, hops: int = 1,
                 each: Callable[[Callable[..., Any], list[tuple[Any, ...]]], list[Any]]
                 = call_each) -> None:
        """``each(fn, calls)`` runs a batch on the other thread (``call_each`` by default); a
        caller whose calls share a step (one fsync pass) gives its own, with the same
        contract: one result or Failure per call, in order."""
        self._door = door
        self._fn = fn
        self._each = each
        self._max = max_batch
        self._hops = hops
        self._running = 0
        self._holds = 0
        self._waiting: list[tuple[int, tuple[Any, ...], Deferred[Any]]] = []
        #: Hops made (for tests and the benchmark's notes).
        self.hops_run = 0

    def call(self, *args: Any, priority: int = 0) -> Deferred[Any]:
        """``fn(*args)`` in the next hop, before waiting calls of a larger ``priority``;
        fires with its result."""
        d: Deferred[Any] = Deferred()
        self._waiting.append((priority, args, d))
        self._start()
        return d

    @contextmanager
    def held(self) -> Iterator[None]:
        """Calls made inside wait for its end, then go together (up to ``max_batch`` a hop):
        for calls known to come as a group, such as the OFFERs of one socket read, which
        would otherwise make a hop for the first and another for the rest."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1
            self._start()

    def _start(self) -> None:
        while self._waiting and self._running < self._hops and not self._holds:
            self._waiting.sort(key=lambda item: item[0])  # stable: FIFO among equals
            batch, self._waiting = self._waiting[:self._max], self._waiting[self._max:]
            self._running += 1
            self.hops_run += 1
            d = self._door(self._each, self._fn, [args for _, args, _ in batch])
            d.addBoth(self._done, batch)

    def _done(self, results: list[Any] | Failure,
              batch: list[tuple[int, tuple[Any, ...], Deferred[Any]]]) -> None:
        self._running -= 1
        try:
            for index, (_, _, d) in enumerate(batch):
                outcome = results if isinstance(results, Failure) else results[index]
                if isinstance(outcome, Failure):
                    d.errback(outcome)
                else:
                    d.callback(outcome)
        finally:
            self._start()
