"""Where the status API reads the store: its own thread and connection, beside the writer.

Theory of operation
-------------------
The daemon's database thread (``lienthong.node.store.commits``) is a queue: while a large backlog is
captured or drained it always has hundreds of units waiting, so a status snapshot handed to it
waited seconds for its turn (5-7 s for a 2,000-document backlog; docs/reliability.md). An
operator asks "how are you" precisely when the node is busy, so the answer must not queue
behind the work it describes.

``StatusReads`` therefore owns a second, read-only path to the store, the one ``lienthong
status`` has always used from another process:

* a dedicated one-thread pool (``DatabaseThread`` named ``lienthong-status``), so the reads
  never run on the reactor thread and never compete with the worker pool's sealing jobs;
* its own ``Store`` (``open_store``, as the CLI opens it: the schema version is read in a read
  transaction, so nothing waits for the write lock), opened on that thread at the first
  request and closed on it at ``stop``. With SQLite in WAL mode its read transactions run
  beside the writer's group commits and see the last committed state; any other SQLAlchemy
  URL gets a second engine on the same database, which is just as independent.

An in-memory SQLite store cannot be opened twice (a second engine would be a new, empty
database), so then the reads go to the database thread with the shared store, as before: only
tests use such stores.

``Coalesced`` bounds the work however many clients ask at once: a request that arrives while a
snapshot is being built gets that snapshot, so there is at most one build of each kind in
flight (the thread's queue never grows with the number of clients). No result is kept after it
is delivered: the next request builds a fresh one.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.store.database import Store, open_store, shared_only
from lienthong.node.store.db_thread import DatabaseThread

THREAD_NAME = "lienthong-status"

log = Logger(namespace="lienthong.status")


class Coalesced:
    """Calls of ``build`` that overlap share one result: at most one build is in flight.

    ``build`` returns a Deferred; every caller gets its own Deferred, fired (on the reactor
    thread) with the same value, or the same failure, when the shared build finishes.
    """

    def __init__(self, build: Callable[[], Deferred]) -> None:
        self._build = build
        self._waiting: list[Deferred] | None = None
        #: Builds started (for tests: concurrent requests must not multiply them).
        self.builds = 0

    @property
    def in_flight(self) -> bool:
        return self._waiting is not None

    def __call__(self) -> Deferred:
        mine: Deferred = Deferred()
        if self._waiting is not None:
            self._waiting.append(mine)
            return mine
        self._waiting = [mine]
        self.builds += 1
        try:
            started = self._build()
        except BaseException:  # noqa: BLE001 - handed to every waiter, like a failed build
            started = Deferred()
            started.errback(Failure())
        started.addBoth(self._deliver)
        return mine

    def _deliver(self, result: Any) -> None:
        waiting, self._waiting = self._waiting or [], None
        for d in waiting:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)
        return None


class StatusReads:
    """Runs read-only units of work ``fn(store, ...)`` off the database thread."""

    def __init__(self, rt: NodeRuntime, *, name: str = THREAD_NAME) -> None:
        self.rt = rt
        self.url: str = rt.config.store.url
        #: None when the store can only be shared (in-memory SQLite): reads use ``rt.db``.
        self._thread = None if shared_only(self.url) else DatabaseThread(rt.reactor, name=name)
        self._store: Store | None = None  # opened and used on self._thread only

    @property
    def separate(self) -> bool:
        """True when reads have their own thread and connection."""
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            self._thread.start()

    def run(self, fn: Callable[..., Any], *args: Any) -> Deferred:
        """``fn(store, *args)`` on the status thread (``store.reading()`` gives it one view).

        Fails with ``DatabaseStopped`` before ``start`` and after ``stop``.
        """
        if self._thread is None:
            return self.rt.db(fn, self.rt.store, *args)
        return self._thread.run(self._unit, fn, args)

    def stop(self) -> Deferred:
        """Close the read connection on its own thread, then stop the thread."""
        thread = self._thread
        if thread is None or thread.state != "running":
            return thread.stop() if thread is not None else succeed(None)
        d = thread.run(self._close)
        d.addErrback(lambda failure: log.failure("closing the status reader failed", failure))
        d.addBoth(lambda _: thread.stop())
        return d

    # -- on the status thread ------------------------------------------------------------------

    def _unit(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self._store is None:
            self._store = open_store(self.url)
        return fn(self._store, *args)

    def _close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()
