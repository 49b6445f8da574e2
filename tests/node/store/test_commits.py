"""Group commit: queued units share one transaction, yet each succeeds or fails on its own.

The reactor is the fake of test_dbthread (``callFromThread`` queues, the test pumps); the store
is a real SQLite file, so savepoints, rollbacks and the one commit are the real thing. A unit
that waits on an event holds the thread while the test queues more work behind it, so what
lands in one batch is decided by the test, not by timing.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from twisted.python.failure import Failure

from lienthong.node.store.commits import GroupCommitThread
from lienthong.node.store.database import Store
from lienthong.node.store.db_thread import DatabaseStopped
from lienthong.node.store.records import DuplicateMessage
from tests.node.store.test_db_thread import FakeReactor, outcome
from tests.node.storehelp import T0, make_dispatch, make_peer


@pytest.fixture
def reactor() -> FakeReactor:
    return FakeReactor()


@pytest.fixture
def db(reactor: FakeReactor, store: Store) -> Iterator[GroupCommitThread]:
    thread = GroupCommitThread(reactor, store)  # type: ignore[arg-type]
    thread.start()
    yield thread
    if thread.state != "stopped":
        box = outcome(thread.stop())
        reactor.pump_until(lambda: bool(box))


def _hold(db: GroupCommitThread) -> threading.Event:
    """Occupy the thread until the returned event is set, so later units queue up."""
    gate, started = threading.Event(), threading.Event()

    def wait() -> None:
        started.set()
        gate.wait(10)

    db.run(wait)
    started.wait(10)
    return gate


def test_queued_units_commit_together_and_fire_in_order(
        db: GroupCommitThread, reactor: FakeReactor, store: Store) -> None:
    """Twenty dispatches queued behind a busy unit commit in one batch; results keep their order."""
    peer = make_peer("so-tu-phap", 1)
    gate = _hold(db)
    boxes = [outcome(db.run(store.add_dispatch, make_dispatch(n, (peer.node_id,)), T0))
             for n in range(20)]
    gate.set()
    reactor.pump_until(lambda: all(boxes))
    assert [box[0].message_id for box in boxes] == [f"{n:032x}" for n in range(20)]
    assert db.batches == 2 and db.units == 21  # the holding unit, then the twenty together
    assert store.dispatches_by_state()["sending"] == 20


def test_a_failing_unit_rolls_back_alone(
        db: GroupCommitThread, reactor: FakeReactor, store: Store) -> None:
    """A unit that wrote and then raised leaves nothing behind; its batch-mates still commit."""
    peer = make_peer("so-tu-phap", 1)

    def write_then_fail() -> None:
        store.add_dispatch(make_dispatch(99, (peer.node_id,)), T0)
        raise ValueError("changed its mind")

    gate = _hold(db)
    before = outcome(db.run(store.add_dispatch, make_dispatch(1, (peer.node_id,)), T0))
    failing = outcome(db.run(write_then_fail))
    duplicate = outcome(db.run(store.add_dispatch, make_dispatch(1, (peer.node_id,)), T0))
    after = outcome(db.run(store.add_dispatch, make_dispatch(2, (peer.node_id,)), T0))
    gate.set()
    reactor.pump_until(lambda: all((before, failing, duplicate, after)))
    assert isinstance(failing[0], Failure) and failing[0].check(ValueError)
    assert isinstance(duplicate[0], Failure) and duplicate[0].check(DuplicateMessage)
    assert store.get_dispatch(f"{99:032x}") is None
    assert store.get_dispatch(f"{1:032x}") is not None
    assert store.get_dispatch(f"{2:032x}") is not None


def test_a_failed_commit_fails_every_unit_of_the_batch(
        db: GroupCommitThread, reactor: FakeReactor, store: Store) -> None:
    """When the transaction itself cannot commit, no unit is told it succeeded."""
    peer = make_peer("so-tu-phap", 1)

    def break_the_transaction() -> None:
        # Ending the transaction under the batch makes its savepoint release and commit fail.
        store.transaction().__enter__().exec_driver_sql("ROLLBACK")

    gate = _hold(db)
    first = outcome(db.run(store.add_dispatch, make_dispatch(1, (peer.node_id,)), T0))
    breaker = outcome(db.run(break_the_transaction))
    gate.set()
    reactor.pump_until(lambda: bool(first) and bool(breaker))
    assert isinstance(first[0], Failure) and isinstance(breaker[0], Failure)
    assert store.get_dispatch(f"{1:032x}") is None
    later = outcome(db.run(store.add_dispatch, make_dispatch(3, (peer.node_id,)), T0))
    reactor.pump_until(lambda: bool(later))
    assert later[0].message_id == f"{3:032x}"  # the thread carries on with a fresh transaction


def test_reads_inside_a_batch_see_the_batch_writes(
        db: GroupCommitThread, reactor: FakeReactor, store: Store) -> None:
    """A unit queued after a write reads that write, although neither has committed yet."""
    peer = make_peer("so-tu-phap", 1)
    gate = _hold(db)
    db.run(store.add_dispatch, make_dispatch(5, (peer.node_id,)), T0)
    seen = outcome(db.run(store.get_dispatch, f"{5:032x}"))
    gate.set()
    reactor.pump_until(lambda: bool(seen))
    assert seen[0] is not None and seen[0].state == "sending"


def test_rows_may_not_escape_a_unit(
        db: GroupCommitThread, reactor: FakeReactor, store: Store) -> None:
    """A unit returning a SQLAlchemy Row fails, as with DatabaseThread."""
    def leak() -> object:
        with store.transaction() as conn:
            return conn.execute(text("SELECT 1")).first()

    box = outcome(db.run(leak))
    reactor.pump_until(lambda: bool(box))
    assert isinstance(box[0], Failure) and box[0].check(TypeError)


def test_stop_drains_and_then_refuses(
        db: GroupCommitThread, reactor: FakeReactor, store: Store) -> None:
    """stop() fires after queued work has fired; run() afterwards fails with DatabaseStopped."""
    gate = _hold(db)
    order: list[str] = []
    db.run(lambda: "queued").addCallback(order.append)
    stopped = db.stop()
    stopped.addCallback(lambda _: order.append("stopped"))
    late = outcome(db.run(lambda: "late"))
    assert isinstance(late[0], Failure) and late[0].check(DatabaseStopped)
    gate.set()
    reactor.pump_until(lambda: "stopped" in order)
    assert order == ["queued", "stopped"]
    assert db.state == "stopped"
    assert not [t for t in threading.enumerate() if t.name.startswith("lienthong-db")]


def test_audit_chain_stays_whole_when_a_unit_with_audit_entries_rolls_back(
        db: GroupCommitThread, reactor: FakeReactor, store: Store) -> None:
    """append_audit remembers the chain's tip within a transaction; a unit undone by its
    savepoint must not leave that memory pointing at its vanished entry."""
    from lienthong.node.store.audit_chain import verify_chain

    def audit_then_fail() -> None:
        store.append_audit("taken", T0, detail={"n": 2})
        store.append_audit("sealed", T0, detail={"n": 3})
        raise ValueError("changed its mind")

    gate = _hold(db)
    first = outcome(db.run(store.append_audit, "taken", T0, detail={"n": 1}))
    failing = outcome(db.run(audit_then_fail))
    after = outcome(db.run(store.append_audit, "sealed", T0, detail={"n": 4}))
    gate.set()
    reactor.pump_until(lambda: all((first, failing, after)))
    assert isinstance(failing[0], Failure) and failing[0].check(ValueError)
    entries = store.audit_entries()
    assert [entry.detail["n"] for entry in entries] == [1, 4]
    assert verify_chain(entries) == (2, entries[-1].hash)
