"""The lease of an active/standby pair (node/store/lease.py) on a real PostgreSQL server: one
holder at a time, a silent holder loses it after one lease, and a write of a former holder is
refused by the database itself."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lienthong.node.store.database import open_store
from lienthong.node.store.lease import DatabaseLease, StandbyNeedsPostgreSQL
from lienthong.node.store.node_lock import WRITE_LOCK, Holder, NodeAlreadyRunning, NodeLockLost
from lienthong.node.store.postgresql import StoreUnreachable

NOW = "2026-12-07T08:00:00Z"


@pytest.fixture
def leases(postgres_url: str) -> Iterator[list[DatabaseLease]]:
    made: list[DatabaseLease] = []
    yield made
    for lease in made:
        lease.release()


def new_lease(url: str, made: list[DatabaseLease], pid: int, seconds: float = 5.0
              ) -> DatabaseLease:
    lease = DatabaseLease(url, Holder(pid=pid, host=f"host{pid}"), seconds=seconds)
    made.append(lease)
    return lease


def terminate(url: str, backend_pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))


def test_one_holder_at_a_time_and_the_refusal_names_it(postgres_url: str, leases) -> None:  # type: ignore[no-untyped-def]
    first = new_lease(postgres_url, leases, 101)
    second = new_lease(postgres_url, leases, 202)
    first.try_take()
    assert first.held
    with pytest.raises(NodeAlreadyRunning, match="process 101 on host101"):
        second.try_take()
    assert not second.held
    first.renew()
    first.release()
    second.try_take()
    assert second.held


def test_a_silent_holder_loses_the_lease_after_one_lease_time(postgres_url: str,  # type: ignore[no-untyped-def]
                                                              leases) -> None:
    frozen = new_lease(postgres_url, leases, 101, seconds=1.0)
    standby = new_lease(postgres_url, leases, 202, seconds=1.0)
    frozen.try_take()
    with pytest.raises(NodeAlreadyRunning):
        standby.try_take()
    # The holder says nothing (as a process under SIGSTOP): the server ends its session.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            standby.try_take()
            break
        except NodeAlreadyRunning:
            time.sleep(0.1)
    assert standby.held
    with pytest.raises(NodeLockLost):
        frozen.renew()


def test_a_renewing_holder_keeps_it(postgres_url: str, leases) -> None:  # type: ignore[no-untyped-def]
    holder = new_lease(postgres_url, leases, 101, seconds=1.0)
    other = new_lease(postgres_url, leases, 202, seconds=1.0)
    holder.try_take()
    for _ in range(8):  # two lease times, renewed every fourth of one
        time.sleep(0.25)
        holder.renew()
    with pytest.raises(NodeAlreadyRunning):
        other.try_take()


def test_a_write_of_a_former_holder_is_refused_by_the_database(postgres_url: str,  # type: ignore[no-untyped-def]
                                                               leases) -> None:
    old = new_lease(postgres_url, leases, 101)
    new = new_lease(postgres_url, leases, 202)
    old.try_take()
    lost: list[str] = []
    old.on_lost = lost.append
    store = open_store(postgres_url, fenced_by=old)
    try:
        store.append_audit("test-written", NOW)
        assert old.backend_pid is not None
        terminate(postgres_url, old.backend_pid)  # its session cut, as by a network failure
        new.try_take()
        with pytest.raises(NodeLockLost):
            store.append_audit("test-not-written", NOW)
        assert lost and "no longer holds the lease" in lost[0]
    finally:
        store.close()
    reader = open_store(postgres_url)
    try:
        kinds = [entry.kind for entry in reader.audit_entries()]
    finally:
        reader.close()
    assert "test-written" in kinds
    assert "test-not-written" not in kinds


def test_the_new_holder_ends_a_former_holders_session_still_holding_the_write_lock(  # type: ignore[no-untyped-def]
        postgres_url: str, leases) -> None:
    """A former holder cut off in the middle of a transaction keeps the write lock in a server
    session that waits for the rest of it (no idle timeout runs mid-statement). The new holder
    ends that session; a session holding no write lock (a reader) is left alone."""
    new = new_lease(postgres_url, leases, 202)
    writer = psycopg.connect(postgres_url)             # a transaction left open, lock held
    writer.execute("SELECT pg_advisory_xact_lock(%s, %s)", WRITE_LOCK)
    reader = psycopg.connect(postgres_url, autocommit=True)
    try:
        assert new.end_former_writers() == 0           # no lease yet: nothing is ended
        new.try_take()
        assert new.end_former_writers() == 1
        with pytest.raises(psycopg.OperationalError):
            writer.execute("SELECT 1")
        assert reader.execute("SELECT 1").fetchone() == (1,)
        assert new.end_former_writers() == 0
        with psycopg.connect(postgres_url, autocommit=True) as fresh:
            fresh.execute("SET lock_timeout = 2000")
            with fresh.transaction():
                fresh.execute("SELECT pg_advisory_xact_lock(%s, %s)", WRITE_LOCK)
    finally:
        writer.close()
        reader.close()


def test_a_pair_needs_postgresql(tmp_path: Path) -> None:
    with pytest.raises(StandbyNeedsPostgreSQL, match="PostgreSQL"):
        DatabaseLease(f"sqlite:///{tmp_path / 'store.db'}", Holder(pid=1, host="h"))


def test_an_unreachable_database_is_said_plainly(leases) -> None:  # type: ignore[no-untyped-def]
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lease = new_lease(f"postgresql://nobody@127.0.0.1:{port}/none", leases, 101)
    with pytest.raises(StoreUnreachable, match="Cannot reach the PostgreSQL store"):
        lease.try_take()
    assert not lease.held


def test_a_plain_node_that_lost_its_lock_to_another_process_is_told_to_stop(
        postgres_url: str, leases) -> None:  # type: ignore[no-untyped-def]
    """lienthong run (no pair): its writer connection holds the node lock; cut, and the lock
    taken by another process before it reconnects, the reconnection refuses, and the daemon's
    ``on_lock_lost`` (which ends the process) is called before anything is written."""
    lost: list[str] = []
    store = open_store(postgres_url, exclusive=Holder(pid=101, host="host101"),
                       on_lock_lost=lost.append)
    try:
        store.append_audit("test-written", NOW)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name LIKE 'lienthong node pid=101 %'")
        other = new_lease(postgres_url, leases, 202)
        deadline = time.monotonic() + 10
        while not other.held and time.monotonic() < deadline:
            try:
                other.try_take()
            except NodeAlreadyRunning:
                time.sleep(0.05)
        assert other.held
        with pytest.raises(NodeLockLost):
            store.append_audit("test-not-written", NOW)
        assert lost and "another process took it" in lost[0]
    finally:
        store.close()
