"""The receipt batch's rules one by one: what its audit entry says, the first receipt of a
document wins, a burst is cut at RECEIPT_BATCH, a failed unit of work lets the loop start
again, and the crash point sits before the store is touched.

Real store and real offices (tests/node/runtimehelp.py); the database thread is inline behind a
gate the test opens one unit of work at a time.
"""
from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail

from lienthong.node.core import failpoints
from lienthong.node.delivery.receipts import (
    RECEIPT_BATCH,
    ReceiptBatch,
    Recorded,
    VerifiedReceipt,
)
from lienthong.node.store.db_thread import InlineDatabase
from tests.node.runtimehelp import FakeReactor, Office, enrol, make_office
from tests.node.storehelp import T0, make_dispatch


class GatedDatabase:
    """Units of work wait until ``open_one`` runs the oldest (inline, on the real store), or
    ``fail_one`` fails it as a database error would."""

    def __init__(self) -> None:
        self.inner = InlineDatabase()
        self.waiting: list[tuple[Any, tuple[Any, ...], dict[str, Any], Deferred]] = []

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Deferred:
        d: Deferred = Deferred()
        self.waiting.append((fn, args, kwargs, d))
        return d

    def open_one(self) -> None:
        fn, args, kwargs, d = self.waiting.pop(0)
        self.inner.run(fn, *args, **kwargs).chainDeferred(d)

    def fail_one(self) -> None:
        *_, d = self.waiting.pop(0)
        fail(RuntimeError("database is locked")).chainDeferred(d)


def receipt(number: int, token: str | None = None, already: bool = False) -> VerifiedReceipt:
    return VerifiedReceipt(f"{number:032x}", token or f"receipt-{number}", "cd" * 32,
                           f"2026-01-05T08:00:{number % 60:02d}Z", already=already)


def offices(tmp_path: Path, count: int) -> tuple[Office, Office, GatedDatabase]:
    alpha = make_office(tmp_path, "alpha", FakeReactor())
    beta = make_office(tmp_path, "beta", FakeReactor(), port=7444)
    enrol(alpha, beta)
    alpha.store.add_dispatches([make_dispatch(n, (beta.node_id,))
                                for n in range(1, count + 1)], T0)
    gate = GatedDatabase()
    alpha.runtime.database = gate
    return alpha, beta, gate


def test_the_audit_entry_names_the_receipt_time_and_whether_it_was_a_duplicate(
        tmp_path: Path) -> None:
    alpha, beta, gate = offices(tmp_path, 2)
    reported: list[list[Recorded]] = []
    batch = ReceiptBatch(alpha.runtime, beta.node_id, reported.append)
    batch.add(receipt(1))
    batch.add(receipt(2, already=True))
    gate.open_one()
    gate.open_one()
    entries = alpha.store.audit_entries(kind="receipt-verified")
    assert [(e.message_id, e.peer, e.digest, dict(e.detail)) for e in entries] == [
        (f"{1:032x}", beta.node_id, "cd" * 32,
         {"receipt_time": "2026-01-05T08:00:01Z", "duplicate": False}),
        (f"{2:032x}", beta.node_id, "cd" * 32,
         {"receipt_time": "2026-01-05T08:00:02Z", "duplicate": True})]
    assert [r.receipt for done in reported for r in done] == \
        [receipt(1), receipt(2, already=True)]


def test_the_first_receipt_queued_for_a_document_is_the_one_recorded(tmp_path: Path) -> None:
    alpha, beta, gate = offices(tmp_path, 2)
    batch = ReceiptBatch(alpha.runtime, beta.node_id, lambda done: None)
    batch.add(receipt(1))
    assert batch.add(receipt(2, "first-token")) is None
    assert batch.add(receipt(2, "second-token")) is None
    gate.open_one()
    gate.open_one()
    assert gate.waiting == []
    (delivery,) = alpha.store.get_dispatch(f"{2:032x}").deliveries
    assert delivery.receipt == "first-token"
    assert f"{2:032x}" not in batch


def test_a_burst_is_recorded_at_most_receipt_batch_at_a_time(tmp_path: Path) -> None:
    alpha, beta, gate = offices(tmp_path, RECEIPT_BATCH + 2)
    reported: list[list[Recorded]] = []
    batch = ReceiptBatch(alpha.runtime, beta.node_id, reported.append)
    for number in range(1, RECEIPT_BATCH + 3):
        batch.add(receipt(number))
    while gate.waiting:
        gate.open_one()
    assert [len(done) for done in reported] == [1, RECEIPT_BATCH, 1]
    assert [r.receipt.message_id for r in reported[1]] == \
        [f"{n:032x}" for n in range(2, RECEIPT_BATCH + 2)]
    assert alpha.store.queue_depths() == {}


def test_a_failed_unit_empties_the_queue_and_the_next_receipt_starts_a_new_loop(
        tmp_path: Path) -> None:
    alpha, beta, gate = offices(tmp_path, 3)
    reported: list[list[Recorded]] = []
    batch = ReceiptBatch(alpha.runtime, beta.node_id, reported.append)
    loop = batch.add(receipt(1))
    assert loop is not None
    failures: list[Any] = []
    loop.addErrback(failures.append)
    gate.fail_one()
    assert len(failures) == 1 and reported == []
    assert f"{1:032x}" not in batch                # asked for again by the next offer
    again = batch.add(receipt(2))                  # the loop is not "running" any more
    assert again is not None
    gate.open_one()
    assert [[r.receipt.message_id for r in done] for done in reported] == [[f"{2:032x}"]]
    assert alpha.store.get_dispatch(f"{1:032x}").deliveries[0].receipt is None


def test_the_crash_point_is_reached_before_the_unit_of_work(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, beta, gate = offices(tmp_path, 1)
    killed: list[tuple[int, int]] = []

    def kill(pid: int, sig: int) -> None:
        killed.append((pid, sig))
        raise SystemExit("killed at the failpoint")

    monkeypatch.setattr(failpoints, "_remaining", {"sender-before-receipt-stored": 1})
    monkeypatch.setattr(failpoints.os, "kill", kill)
    batch = ReceiptBatch(alpha.runtime, beta.node_id, lambda done: None)
    loop = batch.add(receipt(1))
    errors: list[Any] = []
    assert loop is not None
    loop.addErrback(errors.append)
    assert [sig for _pid, sig in killed] == [signal.SIGKILL]
    assert gate.waiting == []                       # nothing was sent to the database
    assert alpha.store.get_dispatch(f"{1:032x}").deliveries[0].receipt is None


def test_a_refused_receipt_does_not_stop_the_audit_of_those_after_it(tmp_path: Path) -> None:
    alpha, beta, gate = offices(tmp_path, 2)
    reported: list[list[Recorded]] = []
    batch = ReceiptBatch(alpha.runtime, beta.node_id, reported.append)
    batch.add(receipt(2))
    batch.add(receipt(9))                          # no such document: the store refuses it
    batch.add(receipt(1))                          # same unit, after the refused one
    gate.open_one()
    gate.open_one()
    assert [r.receipt.message_id for r in reported[1]] == [f"{9:032x}", f"{1:032x}"]
    assert reported[1][0].error is not None and reported[1][1].error is None
    assert [e.message_id for e in alpha.store.audit_entries(kind="receipt-verified")] == \
        [f"{2:032x}", f"{1:032x}"]
