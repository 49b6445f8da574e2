"""The one thread that talks to the database, so the reactor never waits for a commit.

Theory of operation
-------------------
A commit with ``synchronous=FULL`` waits for fsync; doing that on the reactor thread would stall
every connection (docs/design.md §7). So all database work is a *unit of work*: a plain
synchronous function (usually a ``Store`` method) that ``run`` hands to a dedicated
one-thread pool. Its result comes back as a Deferred fired on the reactor thread (Twisted's
``deferToThreadPool`` delivers it with ``reactor.callFromThread``). One thread, not a pool of
several, because SQLite has one writer at a time anyway and a connection must not be used by
two threads at once; it also keeps units of work in the order they were submitted. Reads that
must not wait behind that queue - the status API's snapshots - run on a second instance of
this class with a read-only connection of their own (``lienthong.node.status.reads``).

A unit of work must return plain values (frozen dataclasses, tuples, ints), never SQLAlchemy
``Row``/``Result`` objects or ORM instances, which could run SQL later on the reactor thread;
``run`` refuses the obvious cases.

States::

    new --start()--> running --stop()--> stopping --(queue drained)--> stopped

``run`` is accepted only while running. ``stop`` refuses new work at once, lets the queued work
finish (its Deferreds fire normally), then joins the idle thread.

``InlineDatabase`` has the same ``run`` but calls the function immediately on the caller's
thread and returns an already-fired Deferred: unit tests need no threads and no reactor.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Result, Row
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from lienthong.node.core.errors import NodeError

THREAD_NAME = "lienthong-db"


class DatabaseStopped(NodeError):
    """Work was submitted before ``start`` or after ``stop``."""

    code = "database-stopped"


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


_TRANSITIONS: dict[_State, frozenset[_State]] = {
    _State.NEW: frozenset({_State.RUNNING}),
    _State.RUNNING: frozenset({_State.STOPPING}),
    _State.STOPPING: frozenset({_State.STOPPED}),
    _State.STOPPED: frozenset(),
}


def _plain(result: Any) -> Any:
    """Refuse results that could run SQL later (a Row or Result escaping its unit of work)."""
    leaked = isinstance(result, (Row, Result)) or (
        isinstance(result, (list, tuple, set, frozenset))
        and any(isinstance(item, (Row, Result)) for item in result))
    if leaked:
        raise TypeError(f"a unit of work returned {type(result).__name__}; return plain "
                        "values (frozen dataclasses, tuples), never SQLAlchemy rows or results")
    return result


def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return _plain(fn(*args, **kwargs))


class Lifecycle:
    """The NEW → RUNNING → STOPPING → STOPPED life of a database thread (shared by both kinds)."""

    _state: _State

    @property
    def state(self) -> str:
        return self._state.value

    def _move(self, new: _State) -> None:
        if new not in _TRANSITIONS[self._state]:
            raise RuntimeError(f"the database thread is {self._state.value}; it cannot "
                               f"become {new.value}")
        self._state = new


class DatabaseThread(Lifecycle):
    """Runs units of work one at a time on a dedicated thread; results arrive on the reactor."""

    def __init__(self, reactor: IReactorFromThreads, name: str = THREAD_NAME) -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=name)
        self._state = _State.NEW
        self._waiters: list[Deferred[None]] = []

    def start(self) -> None:
        self._move(_State.RUNNING)
        self._pool.start()

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """Run ``fn(*args, **kwargs)`` on the database thread; fire with its result there."""
        if self._state is not _State.RUNNING:
            return fail(DatabaseStopped(f"the database thread is {self._state.value}; "
                                        "no new work is accepted"))
        return deferToThreadPool(self._reactor, self._pool, _call, fn, args, kwargs)

    def stop(self) -> Deferred[None]:
        """Accept no more work, let queued work finish, then stop the thread.

        Each call returns its own Deferred, fired once the thread has stopped.
        """
        if self._state is _State.NEW:
            self._state = _State.STOPPED
        if self._state is _State.STOPPED:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        if self._state is _State.RUNNING:
            self._move(_State.STOPPING)
            # The pool runs work in order on its one thread, and callFromThread delivers
            # results in order: when this marker's result arrives, every earlier unit of work
            # has finished and its Deferred has fired.
            marker = deferToThreadPool(self._reactor, self._pool, lambda: None)
            marker.addBoth(self._drained)
        return waiter

    def _drained(self, _result: object) -> None:
        self._pool.stop()  # the thread is idle now, so this join returns at once
        self._move(_State.STOPPED)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)


class InlineDatabase:
    """``DatabaseThread``'s interface, running each unit of work at once on the caller's thread."""

    def __init__(self) -> None:
        self._running = True

    def start(self) -> None:
        self._running = True

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        if not self._running:
            return fail(DatabaseStopped("the inline database is stopped"))
        try:
            result = _call(fn, args, kwargs)
        except Exception:
            return fail()
        return succeed(result)

    def stop(self) -> Deferred[None]:
        self._running = False
        return succeed(None)
