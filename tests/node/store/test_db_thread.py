"""Database work runs on one dedicated thread, in order, and comes back on the reactor thread.

The "reactor" here is a minimal fake: ``callFromThread`` queues the call, and the test thread
(playing the reactor thread) runs queued calls until what it waits for has happened. The
thread pool is real, so these tests exercise the real hand-off between threads.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from lienthong.node.store.database import open_store
from lienthong.node.store.db_thread import DatabaseStopped, DatabaseThread, InlineDatabase
from tests.node.storehelp import T0, make_dispatch, make_peer


class FakeReactor:
    """Only what deferToThreadPool needs: callFromThread, run later by ``pump_until``."""

    def __init__(self) -> None:
        self.calls: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]]] = queue.Queue()

    def callFromThread(self, fn: Callable[..., Any], *args: Any) -> None:  # noqa: N802
        self.calls.put((fn, args))

    def pump_until(self, done: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for the database thread")
            try:
                fn, args = self.calls.get(timeout=min(remaining, 0.05))
            except queue.Empty:
                continue
            fn(*args)


def outcome(d: Deferred[Any]) -> list[Any]:
    box: list[Any] = []
    d.addBoth(box.append)
    return box


@pytest.fixture
def reactor() -> FakeReactor:
    return FakeReactor()


@pytest.fixture
def db(reactor: FakeReactor) -> Iterator[DatabaseThread]:
    thread = DatabaseThread(reactor)  # type: ignore[arg-type]
    thread.start()
    yield thread
    if thread.state != "stopped":
        box = outcome(thread.stop())
        reactor.pump_until(lambda: bool(box))


def test_work_runs_on_the_db_thread_and_result_arrives_on_the_reactor_thread(
        db: DatabaseThread, reactor: FakeReactor) -> None:
    """fn runs on the lienthong-db thread; its result fires the Deferred on the caller's thread."""
    def unit(a: int, b: int = 0) -> tuple[str, int]:
        return threading.current_thread().name, a + b

    fired_on: list[int] = []
    d = db.run(unit, 2, b=3)
    d.addCallback(lambda value: (fired_on.append(threading.get_ident()), value)[1])
    box = outcome(d)
    assert box == []  # nothing fires until the reactor runs the hand-off
    reactor.pump_until(lambda: bool(box))
    name, total = box[0]
    assert total == 5
    assert "lienthong-db" in name and name != threading.current_thread().name
    assert fired_on == [threading.get_ident()]  # the thread that runs the reactor


def test_exceptions_become_failures_with_the_original_error(
        db: DatabaseThread, reactor: FakeReactor) -> None:
    """An exception in a unit of work errbacks the Deferred with that exception."""
    def unit() -> None:
        raise KeyError("no such peer")

    box = outcome(db.run(unit))
    reactor.pump_until(lambda: bool(box))
    assert isinstance(box[0], Failure) and box[0].check(KeyError)


def test_units_of_work_run_one_at_a_time_in_order(
        db: DatabaseThread, reactor: FakeReactor) -> None:
    """Fifty units submitted in order run in that order, never two at once."""
    ran: list[int] = []
    busy = threading.Lock()

    def unit(n: int) -> int:
        if not busy.acquire(blocking=False):
            raise AssertionError("two units of work ran at the same time")
        try:
            ran.append(n)
            time.sleep(0.001)
            return n
        finally:
            busy.release()

    boxes = [outcome(db.run(unit, n)) for n in range(50)]
    reactor.pump_until(lambda: all(boxes))
    assert ran == list(range(50))
    assert [box[0] for box in boxes] == list(range(50))


def test_stop_refuses_new_work_and_drains_queued_work(
        db: DatabaseThread, reactor: FakeReactor) -> None:
    """stop() fires only after queued work has finished and delivered; later run() fails."""
    gate = threading.Event()
    order: list[str] = []
    slow = db.run(lambda: gate.wait(5) and "slow")
    slow.addCallback(lambda value: order.append(value))
    stopped = db.stop()
    stopped.addCallback(lambda _: order.append("stopped"))
    late = outcome(db.run(lambda: "late"))
    assert isinstance(late[0], Failure) and late[0].check(DatabaseStopped)
    assert db.state == "stopping"
    time.sleep(0.05)
    reactor.pump_until(lambda: reactor.calls.empty())
    assert order == []  # still waiting for the slow unit
    second_stop = outcome(db.stop())
    gate.set()
    reactor.pump_until(lambda: "stopped" in order and bool(second_stop))
    assert order == ["slow", "stopped"]
    assert db.state == "stopped"
    assert not [t for t in threading.enumerate() if "lienthong-db" in t.name]
    assert outcome(db.stop()) == [None]


def test_lifecycle_is_explicit(reactor: FakeReactor) -> None:
    """Work before start fails; stop before start is immediate; start twice is an error."""
    thread = DatabaseThread(reactor)  # type: ignore[arg-type]
    early = outcome(thread.run(lambda: 1))
    assert isinstance(early[0], Failure) and early[0].check(DatabaseStopped)
    thread.start()
    with pytest.raises(RuntimeError):
        thread.start()
    box = outcome(thread.stop())
    reactor.pump_until(lambda: bool(box))
    never = DatabaseThread(reactor)  # type: ignore[arg-type]
    assert outcome(never.stop()) == [None] and never.state == "stopped"


def test_sqlalchemy_rows_are_refused_as_results(
        db: DatabaseThread, reactor: FakeReactor) -> None:
    """Returning a Row (which could run SQL later, on the reactor) is a TypeError, both kinds."""
    engine = create_engine("sqlite://")

    def leaky() -> Any:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1 AS one")).first()

    box = outcome(db.run(leaky))
    reactor.pump_until(lambda: bool(box))
    assert isinstance(box[0], Failure) and box[0].check(TypeError)
    inline = outcome(InlineDatabase().run(leaky))
    assert isinstance(inline[0], Failure) and inline[0].check(TypeError)

    def leaky_list() -> Any:
        with engine.connect() as conn:
            return conn.execute(text("SELECT 1 AS one")).all()

    listed = outcome(InlineDatabase().run(leaky_list))
    assert isinstance(listed[0], Failure) and listed[0].check(TypeError)
    engine.dispose()


def test_store_opened_on_one_thread_works_on_the_db_thread(
        db: DatabaseThread, reactor: FakeReactor, tmp_path: Path) -> None:
    """The daemon's pattern: open the store, then do all its work through DatabaseThread.run."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    peer = make_peer("so-tu-phap", 1)
    try:
        added = outcome(db.run(store.add_peer, peer, "card", T0))
        dispatched = outcome(db.run(store.add_dispatch, make_dispatch(1, (peer.node_id,)), T0))
        queued = outcome(db.run(store.queued_deliveries, peer.node_id, 10))
        reactor.pump_until(lambda: bool(queued))
        assert added[0].peer == peer
        assert [q.message_id for q in queued[0]] == [dispatched[0].message_id]
    finally:
        store.close()


def test_inline_database_fires_at_once() -> None:
    """InlineDatabase returns already-fired Deferreds: values, failures, and refusal after stop."""
    inline = InlineDatabase()
    inline.start()
    assert outcome(inline.run(lambda a, b=0: a * b, 6, b=7)) == [42]
    failed = outcome(inline.run(lambda: 1 / 0))
    assert isinstance(failed[0], Failure) and failed[0].check(ZeroDivisionError)
    assert outcome(inline.stop()) == [None]
    after = outcome(inline.run(lambda: 1))
    assert isinstance(after[0], Failure) and after[0].check(DatabaseStopped)
