"""Group commit: the database thread that makes many queued units of work durable with ONE fsync.

Theory of operation
-------------------
``DatabaseThread`` runs each unit of work as its own transaction, and with ``synchronous=FULL``
every commit waits for an fsync of the write-ahead log (about a millisecond on a good disk,
several on a busy one). A node delivering 2,000 small documents runs seven or more units per
document on each side, so the fsyncs alone capped it near 70 documents a second
(bench/node_bench.py; docs/benchmarks.md).

``GroupCommitThread`` has the same interface (``start``, ``run``, ``stop``, ``state``) and the
same guarantees, but when units are waiting it takes all of them (up to ``max_batch``) and runs
them inside ONE write transaction of the store, each inside its own SAVEPOINT:

* a unit that raises has its savepoint rolled back, so its partial writes vanish, and its
  Deferred fails with its own error; the other units of the batch are unaffected;
* the batch commits once; only then do the Deferreds fire, in submission order, on the reactor
  thread. So "the Deferred fired" still means "the commit is durable", exactly as before: a
  receipt is never signed on the strength of a commit that could still be lost;
* if the commit itself fails (disk full, I/O error), every unit of the batch fails with that
  error, since none of its writes survived.

Store methods already join an open transaction (``StoreBase.transaction``), and their reads use
it too, so units need no change. Under no load a batch is one unit, and latency is that of
``DatabaseThread``; under load, units queue while a commit waits for the disk and the next
batch takes them all, so the cost of an fsync is shared (the classic group commit of database
servers).

States::

    new --start()--> running --stop()--> stopping --(queue drained)--> stopped

``run`` is accepted only while running; ``stop`` refuses new work at once, lets the queued work
finish (its Deferreds fire normally), then joins the thread.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from sqlalchemy.engine import Connection
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.logger import Logger
from twisted.python.failure import Failure

from lienthong.node.store.db_thread import THREAD_NAME, DatabaseStopped, Lifecycle, _plain, _State

#: Waits between attempts while the database cannot be reached (seconds, doubling), and how
#: long a node that is stopping keeps trying before it fails what is left.
RECONNECT_FIRST = 0.2
RECONNECT_MAX = 5.0
RECONNECT_GIVE_UP = 30.0

#: Most units in one transaction: bounds how long the write lock is held (the CLI waits for it).
MAX_BATCH = 256

_Unit = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], Deferred]


class Transactional(Protocol):
    """What the thread needs of the store (``StoreBase``): one write transaction per batch, and
    to be told when a unit's savepoint was rolled back."""

    def transaction(self) -> AbstractContextManager[Connection]: ...

    def connection_lost(self, exc: BaseException) -> bool: ...

    def rolled_back_to_savepoint(self) -> None: ...


log = Logger(namespace="lienthong.node.store")

_STOP = object()
_SAVEPOINT = "SAVEPOINT lienthong_unit"
_ROLLBACK_TO = "ROLLBACK TO SAVEPOINT lienthong_unit"
_RELEASE = "RELEASE SAVEPOINT lienthong_unit"


class GroupCommitThread(Lifecycle):
    """Runs units of work on one thread, committing each batch of queued units together."""

    def __init__(self, reactor: IReactorFromThreads, store: Transactional, *,
                 name: str = THREAD_NAME, max_batch: int = MAX_BATCH) -> None:
        self._reactor = reactor
        self._store = store
        self._name = name
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._state = _State.NEW
        self._waiters: list[Deferred[None]] = []
        #: How many batches and units went through (for tests and the benchmark's notes).
        self.batches = 0
        self.units = 0
        #: How many times a batch was run again after the connection was lost.
        self.reconnects = 0
        self._waited_since_stop = 0.0

    def start(self) -> None:
        self._move(_State.RUNNING)
        self._thread = threading.Thread(target=self._loop, name=f"{self._name}-0", daemon=True)
        self._thread.start()

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run ``fn(*args, **kwargs)`` on the database thread; fire once its commit is durable."""
        if self._state is not _State.RUNNING:
            return fail(DatabaseStopped(f"the database thread is {self._state.value}; "
                                        "no new work is accepted"))
        d: Deferred[Any] = Deferred()
        self._queue.put((fn, args, kwargs, d))
        return d

    def stop(self) -> Deferred[None]:
        """Accept no more work, let queued work finish, then stop the thread."""
        if self._state is _State.NEW:
            self._state = _State.STOPPED
        if self._state is _State.STOPPED:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        if self._state is _State.RUNNING:
            self._move(_State.STOPPING)
            self._queue.put(_STOP)
        return waiter

    # -- the database thread -----------------------------------------------------------------

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Unit] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                outcomes = self._run_batch(batch)
                self._reactor.callFromThread(self._deliver, batch, outcomes)
        self._reactor.callFromThread(self._drained)

    def _run_batch(self, batch: list[_Unit]) -> list[tuple[bool, Any]]:
        """Run the batch; while the failure is a lost connection, wait and run it again.

        Nothing of a batch whose connection broke before its commit was kept (the server
        rolls it back), so its units run again from the start on a new connection once the
        server answers: a database restart delays documents, it does not fail them. The one
        case it cannot tell apart is a connection cut after the server committed but before
        it said so; the units then meet their own rows and fail as duplicates would, as after
        any crash (docs/scale.md).
        """
        pause = RECONNECT_FIRST
        while True:
            outcomes = self._run_batch_once(batch)
            lost = next((value.value for ok, value in outcomes
                         if not ok and self._store.connection_lost(value.value)), None)
            if lost is None or (self._state is _State.STOPPING
                                and self._waited_since_stop > RECONNECT_GIVE_UP):
                return outcomes
            self.reconnects += 1
            log.warn("the database connection was lost ({error}); retrying {units} units in "
                     "{pause:.1f} s", error=type(lost).__name__, units=len(batch), pause=pause)
            time.sleep(pause)
            if self._state is _State.STOPPING:
                self._waited_since_stop += pause
            pause = min(pause * 2, RECONNECT_MAX)

    def _run_batch_once(self, batch: list[_Unit]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self._store.transaction() as conn:
                # Savepoints straight on the driver's cursor: SQLAlchemy's begin_nested()
                # compiles a new SAVEPOINT clause each time and cost a third of the thread's
                # time (py-spy, docs/benchmarks.md). Standard SQL; SQLite and PostgreSQL agree.
                cursor = conn.connection.cursor()
                for fn, args, kwargs, _d in batch:
                    cursor.execute(_SAVEPOINT)
                    try:
                        value = _plain(fn(*args, **kwargs))
                    except BaseException:  # noqa: BLE001 - handed to the unit's Deferred
                        failure = Failure()
                        # If this raises (the database dropped the whole transaction), every
                        # unit of the batch fails below.
                        cursor.execute(_ROLLBACK_TO)
                        cursor.execute(_RELEASE)
                        # e.g. forget an audit tip written by the undone unit
                        self._store.rolled_back_to_savepoint()
                        outcomes.append((False, failure))
                    else:
                        cursor.execute(_RELEASE)
                        outcomes.append((True, value))
                cursor.close()
        except BaseException:  # noqa: BLE001 - the commit (or a rollback) failed: nothing stuck
            failure = Failure()
            return [(False, failure)] * len(batch)
        self.batches += 1
        self.units += len(batch)
        return outcomes

    # -- back on the reactor thread -------------------------------------------------------------

    @staticmethod
    def _deliver(batch: list[_Unit], outcomes: list[tuple[bool, Any]]) -> None:
        for (_fn, _args, _kwargs, d), (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                d.callback(value)
            else:
                d.errback(value)

    def _drained(self) -> None:
        if self._thread is not None:
            self._thread.join()
        self._move(_State.STOPPED)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)
