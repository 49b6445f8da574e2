"""Files that reach the take at the same time are taken and sealed in ONE worker hop.

Why: 2,000 small files dropped at once cost the sender a worker hop each for the take and
seal (a thread wake-up and several GIL hand-offs), and each take fsynced ``spool/`` and the
outbox folder it came from on its own -- the same two folders, 2,000 times
(docs/benchmarks.md, issue 6).

Theory of operation. ``submit`` queues one file (with everything ``take_and_seal`` needs) and
returns a Deferred for its own result. At most ``hops`` batches run at once; whenever one is
free, the files waiting are sorted by priority (lower is more urgent; FIFO among equals), and
up to ``max_batch`` of them go to ``take_and_seal_batch`` (node/outbox/file_work.py) together.
Under no load a batch is the one file that just arrived, so a single document waits for
nothing (the group commit of ``lienthong.node.store.commits``, applied to the take). Each
file's Deferred fires with its own ``(taken, sealed)`` or fails with its own ``Refused`` (or
error): one bad file never fails the others. The batch returns only after the folders its
takes share are fsynced, so every Deferred fires on a durable take, as with one take per hop.

A large file (over ``ALONE_BYTES``) is not batched: sealing it reads all of it (a second or
more per GiB), and small files queued behind it -- an urgent one among them -- would wait
that long. It gets a hop of its own at once, outside the ``hops`` limit, as every file did
before batching.

Ready folders (node/spool/ready.py): a batch's first take renames a spool folder made ahead of
time instead of allocating a folder and a record file (about 1.7 ms of a lone document's take
on the node's disk). They are made on a worker ``REFILL_DELAY`` after a batch (the first
ones after the node's first take), so that making them never competes with the document's
own dispatch commit and offer; a burst that finds none ready takes with ``mkdir``, as before.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.node.outbox.file_work import take_and_seal_batch
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.spool.ready import ReadyFolders

log = Logger(namespace="lienthong.outbox")

#: Most files in one hop: bounds how long the first of them waits for the last one's fsyncs.
MAX_BATCH = 32
#: Batches at once: one fills while the other runs, so fsync waits overlap with Python work.
HOPS = 2
#: Files larger than this are taken and sealed alone, in a hop of their own (see above).
ALONE_BYTES = 4 * 1024 * 1024
#: Seconds after a batch used a ready folder before more are made: past a lone document's
#: dispatch commit and offer (a few ms), so the two never share the machine's cores.
REFILL_DELAY = 0.1

_Item = tuple[int, Path, dict[str, Any], "dict[str, Any] | None", "Callable[[], None] | None",
              "Path | None", Deferred]


class TakeBatches:
    """Queue of files waiting to be taken and sealed, served in batches on the worker pool."""

    def __init__(self, runtime: NodeRuntime, *, max_batch: int = MAX_BATCH,
                 hops: int = HOPS) -> None:
        self._rt = runtime
        self._max = max_batch
        self._hops = hops
        self._running = 0
        self._waiting: list[_Item] = []
        self.ready = ReadyFolders(runtime.config.spool)
        self._refilling = False

    def submit(self, priority: int, path: Path, take: dict[str, Any],
               seal: dict[str, Any] | None, adopt_sidecar: Callable[[], None] | None,
               unless_exists: Path | None = None, *, size: int = 0) -> Deferred:
        """Take and seal ``path`` in the next batch (``size``, as last seen, over
        ``ALONE_BYTES``: alone, at once); fires with ``take_and_seal``'s result."""
        d: Deferred = Deferred()
        item = (priority, path, take, seal, adopt_sidecar, unless_exists, d)
        if size > ALONE_BYTES:
            self._rt.io(take_and_seal_batch, [item[1:6]]).addBoth(self._deliver, [item])
            return d
        self._waiting.append(item)
        self._start()
        return d

    def _refill_later(self) -> None:
        """Make ready folders ``REFILL_DELAY`` from now, unless enough are ready or due."""
        if self._refilling or len(self.ready) >= self.ready.keep:
            return
        self._refilling = True
        self._rt.reactor.callLater(REFILL_DELAY, self._refill)

    def _refill(self) -> None:
        d = self._rt.io(self.ready.make)
        d.addErrback(lambda f: log.failure("could not make ready spool folders", f))
        d.addBoth(self._refilled)

    def _refilled(self, _: object) -> None:
        self._refilling = False

    def _start(self) -> None:
        while self._waiting and self._running < self._hops:
            self._waiting.sort(key=lambda item: item[0])  # stable: FIFO among equals
            batch, self._waiting = self._waiting[:self._max], self._waiting[self._max:]
            self._running += 1
            d = self._rt.io(take_and_seal_batch, [item[1:6] for item in batch], self.ready)
            d.addBoth(self._done, batch)

    def _done(self, results: list[Any] | Failure, batch: list[_Item]) -> None:
        self._running -= 1
        try:
            self._deliver(results, batch)
        finally:
            self._start()
            self._refill_later()

    @staticmethod
    def _deliver(results: list[Any] | Failure, batch: list[_Item]) -> None:
        for index, item in enumerate(batch):
            outcome = results if isinstance(results, Failure) else results[index]
            if isinstance(outcome, Failure):
                item[6].errback(outcome)
            else:
                item[6].callback(outcome)
