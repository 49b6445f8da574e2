"""The status API reads the store on its own thread and connection, beside a busy writer.

The database thread is a real ``GroupCommitThread`` on a real SQLite file, held in the middle
of a write transaction; the status reads must answer anyway, from the last committed state.
The "reactor" is the minimal fake of ``test_dbthread`` (``callFromThread`` queued and pumped
by the test thread).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from lienthong.node.status.reads import Coalesced, StatusReads
from lienthong.node.store.commits import GroupCommitThread
from lienthong.node.store.database import Store, open_store, shared_only
from lienthong.node.store.db_thread import DatabaseStopped, InlineDatabase
from lienthong.node.store.records import StoreError
from tests.node.store.test_db_thread import FakeReactor, outcome
from tests.node.storehelp import T0, make_peer


def _runtime(url: str, reactor: Any, store: Any, database: Any) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(store=SimpleNamespace(url=url)),
                           reactor=reactor, store=store, db=database.run)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'lienthong.db'}"


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    opened = open_store(url)
    yield opened
    opened.close()


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


@pytest.fixture
def reads(url: str, reactor: FakeReactor, store: Store,
          db: GroupCommitThread) -> Iterator[StatusReads]:
    made = StatusReads(_runtime(url, reactor, store, db))
    made.start()
    yield made
    box = outcome(made.stop())
    reactor.pump_until(lambda: bool(box))


def _peer_names(store: Store) -> tuple[str, ...]:
    with store.reading():
        return tuple(r.peer.name for r in store.list_peers())


def test_reads_answer_while_the_database_thread_holds_the_write_lock(
        reactor: FakeReactor, store: Store, db: GroupCommitThread, reads: StatusReads) -> None:
    """A snapshot read completes while a unit on the database thread sits inside an open
    write transaction, and sees only what was committed."""
    committed = outcome(db.run(store.add_peer, make_peer("so-tu-phap", 1), "card.1", T0))
    reactor.pump_until(lambda: bool(committed))
    gate, inside = threading.Event(), threading.Event()

    def write_and_wait() -> None:
        store.add_peer(make_peer("so-xay-dung", 2), "card.2", T0)  # not committed yet
        inside.set()
        gate.wait(20)

    held = outcome(db.run(write_and_wait))
    assert inside.wait(10)
    thread_names: list[str] = []

    def read(s: Store) -> tuple[str, ...]:
        thread_names.append(threading.current_thread().name)
        return _peer_names(s)

    try:
        box = outcome(reads.run(read))
        reactor.pump_until(lambda: bool(box), timeout=5)
    finally:
        gate.set()
    assert box == [("so-tu-phap",)]
    assert "lienthong-status" in thread_names[0]
    reactor.pump_until(lambda: bool(held))
    box = outcome(reads.run(_peer_names))
    reactor.pump_until(lambda: bool(box))
    assert sorted(box[0]) == ["so-tu-phap", "so-xay-dung"]


def test_reads_fail_clearly_after_stop(reactor: FakeReactor, reads: StatusReads) -> None:
    """After stop the status thread refuses work instead of falling back to the writer."""
    box = outcome(reads.stop())
    reactor.pump_until(lambda: bool(box))
    refused = outcome(reads.run(_peer_names))
    assert isinstance(refused[0], Failure) and refused[0].check(DatabaseStopped)


def test_an_in_memory_store_is_shared_through_the_database_thread() -> None:
    """A second engine on ``sqlite://`` would be another, empty database: reads share the
    one store through the database thread instead."""
    assert shared_only("sqlite://") and shared_only("sqlite:///:memory:")
    assert not shared_only("sqlite:///state/lienthong.db")
    assert not shared_only("postgresql://lienthong@localhost/lienthong")
    store = open_store("sqlite://")
    store.add_peer(make_peer("so-tu-phap", 1), "card.1", T0)
    made = StatusReads(_runtime("sqlite://", None, store, InlineDatabase()))
    assert not made.separate
    made.start()
    assert outcome(made.run(_peer_names)) == [("so-tu-phap",)]
    assert outcome(made.stop()) == [None]


def test_a_write_inside_a_read_view_is_refused(store: Store) -> None:
    """``reading()`` is read-only: a store write inside it raises instead of joining it."""
    with store.reading(), pytest.raises(StoreError, match="read-only view"):
        store.add_peer(make_peer("so-tu-phap", 1), "card.1", T0)
    assert _peer_names(store) == ()


def test_overlapping_requests_share_one_build() -> None:
    """Requests that arrive while a build is in flight get its result; the next one builds."""
    pending: list[Deferred] = []

    def build() -> Deferred:
        pending.append(Deferred())
        return pending[-1]

    shared = Coalesced(build)
    answers = [outcome(shared()) for _ in range(50)]
    assert shared.builds == 1 and shared.in_flight
    assert not any(answers[0] + answers[-1])
    pending[0].callback({"health": "ok"})
    assert all(box == [{"health": "ok"}] for box in answers)
    assert not shared.in_flight
    later = outcome(shared())
    assert shared.builds == 2 and later == []
    pending[1].callback({"health": "warning"})
    assert later == [{"health": "warning"}]


def test_a_failed_build_fails_every_waiter_and_is_not_kept() -> None:
    """A failure reaches each request that shared the build; the next request tries again."""
    results = [fail(StoreError("disk I/O error")), succeed("ok")]
    shared = Coalesced(lambda: results.pop(0))
    first = outcome(shared())
    assert isinstance(first[0], Failure) and first[0].check(StoreError)
    assert outcome(shared()) == ["ok"] and shared.builds == 2


def test_a_build_that_raises_is_a_failure_not_a_crash() -> None:
    """A build that raises before returning a Deferred fails the request and frees the slot."""
    def broken() -> Deferred:
        raise StoreError("cannot open the store")

    shared = Coalesced(broken)
    box = outcome(shared())
    assert box[0].check(StoreError) and not shared.in_flight
