"""The waiting loop and the lease keeper of a pair member (node/app/standby.py), with a
stand-in lease (the real one is tested on a real server in tests/node/store/test_lease.py and
in tests/faults/test_standby.py): it takes over only with the lease, says why it waits, and
ends the process the moment the lease cannot be proven."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from lienthong.node.app.standby import LeaseKeeper, StandbyReport, wait_for_lease
from lienthong.node.core import fence
from lienthong.node.store.node_lock import Holder, NodeLockLost, already_running_on_database
from lienthong.node.store.postgresql import StoreUnreachable


class ScriptedLease:
    """Answers ``try_take`` and ``renew`` from a script of outcomes."""

    def __init__(self, takes: list[str], seconds: float = 1.0) -> None:
        self.takes = takes
        self.seconds = seconds
        self.renewals = 0
        self.renew_error: BaseException | None = None
        self.renew_blocks = threading.Event()
        self.on_lost = None

    def try_take(self) -> None:
        outcome = self.takes.pop(0)
        if outcome == "held":
            raise already_running_on_database("db", Holder(pid=7, host="may-a"))
        if outcome == "unreachable":
            raise StoreUnreachable("Cannot reach the PostgreSQL store at db: refused")

    def renew(self) -> None:
        if self.renew_blocks.is_set():
            time.sleep(10 * self.seconds)  # a renewal stuck on a dead network
        self.renewals += 1
        if self.renew_error is not None:
            raise self.renew_error


def test_the_standby_waits_says_why_and_takes_over_only_with_the_lease(tmp_path: Path) -> None:
    lease = ScriptedLease(["held", "held", "unreachable", "unreachable", "held", "taken"])
    report = StandbyReport(tmp_path, Holder(pid=42, host="may-b"))
    seen: list[dict[str, object]] = []

    def sleep(_: float) -> None:
        seen.append(json.loads(report.path.read_text()))

    wait_for_lease(lease, report, sleep=sleep)  # type: ignore[arg-type]
    assert lease.takes == []
    assert [s["state"] for s in seen] == ["waiting", "waiting", "database-unreachable",
                                          "database-unreachable", "waiting"]
    assert "process 7 on may-a" in str(seen[0]["detail"])
    assert seen[0]["pid"] == 42 and seen[0]["host"] == "may-b"
    report.active()
    assert not report.path.exists()


def test_the_check_runs_first_once_the_database_answers(tmp_path: Path) -> None:
    lease = ScriptedLease(["held", "taken"])
    report = StandbyReport(tmp_path, Holder(pid=42, host="may-b"))
    calls = []

    def first() -> None:
        calls.append("check")
        if len(calls) == 1:
            raise StoreUnreachable("Cannot reach the PostgreSQL store at db: refused")

    wait_for_lease(lease, report, first=first, sleep=lambda _: None)  # type: ignore[arg-type]
    assert calls == ["check", "check"]


@pytest.fixture
def lost() -> list[str]:
    yield []
    fence.disarm()


def test_the_keeper_renews_and_the_fence_stays_open(lost: list[str]) -> None:
    lease = ScriptedLease([], seconds=0.5)
    keeper = LeaseKeeper(lease, on_lost=lost.append)  # type: ignore[arg-type]
    keeper.start()
    time.sleep(1.2)  # more than two leases
    fence.check()
    keeper.stop()
    assert lost == [] and lease.renewals >= 4


def test_a_failed_renewal_ends_the_process(lost: list[str]) -> None:
    lease = ScriptedLease([], seconds=0.5)
    lease.renew_error = NodeLockLost("the lease on the database db is no longer held")
    keeper = LeaseKeeper(lease, on_lost=lost.append)  # type: ignore[arg-type]
    keeper.start()
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.02)
    keeper.stop()
    assert lost and "no longer held" in lost[0]


def test_a_renewal_stuck_past_the_lease_ends_the_process_and_closes_the_fence(
        lost: list[str]) -> None:
    lease = ScriptedLease([], seconds=0.5)
    lease.renew_blocks.set()
    keeper = LeaseKeeper(lease, on_lost=lost.append)  # type: ignore[arg-type]
    started = time.monotonic()
    keeper.start()
    deadline = started + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.01)
    took = time.monotonic() - started
    assert lost == ["the lease was not renewed in time"]
    assert took < 0.5, "ended only after the server could have given the lease away"
    with pytest.raises(fence.LeaseExpired):
        fence.check()
    keeper._stop.set()
