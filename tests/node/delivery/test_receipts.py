"""Receipts verified while a batch commits go into the next batch, and count only once committed;
delivered documents are filed into sent/ a batch at a time.

The store is real; the database thread is ``InlineDatabase`` behind a gate the test opens one
unit of work at a time, which is how the real thread behaves while a commit waits for the disk.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from lienthong.node.delivery.receipts import ReceiptBatch, Recorded, VerifiedReceipt
from lienthong.node.outbox.sent import SentFolder
from lienthong.node.spool.record import PAYLOAD_FILE
from lienthong.node.store.db_thread import InlineDatabase
from tests.node.runtimehelp import FakeReactor, enrol, make_office
from tests.node.storehelp import T0, make_dispatch


class GatedDatabase:
    """Units of work wait until ``open_one`` runs the oldest (inline, on the real store)."""

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


def _receipt(number: int) -> VerifiedReceipt:
    return VerifiedReceipt(f"{number:032x}", f"receipt-{number}", "ab" * 32,
                           "2026-01-05T08:00:09Z", already=False)


def test_receipts_arriving_during_a_commit_are_recorded_together_after_it(
        tmp_path: Path) -> None:
    """The first receipt goes alone at once; the two that arrive before its commit go in ONE
    next unit; nothing is reported delivered (nor stored) before the unit that records it."""
    alpha = make_office(tmp_path, "alpha", FakeReactor())
    beta = make_office(tmp_path, "beta", FakeReactor(), port=7444)
    enrol(alpha, beta)
    store = alpha.store
    store.add_dispatches([make_dispatch(n, (beta.node_id,)) for n in (1, 2, 3)], T0)
    gate = GatedDatabase()
    alpha.runtime.database = gate
    reported: list[list[Recorded]] = []
    batch = ReceiptBatch(alpha.runtime, beta.node_id, reported.append)

    assert batch.add(_receipt(1)) is not None
    assert batch.add(_receipt(2)) is None and batch.add(_receipt(3)) is None
    assert _receipt(2).message_id in batch
    assert len(gate.waiting) == 1 and reported == []
    assert store.queue_depths() == {beta.node_id: 3}

    gate.open_one()
    assert [[r.receipt.message_id for r in done] for done in reported] == [[f"{1:032x}"]]
    assert reported[0][0].all_done and reported[0][0].dispatch.message_id == f"{1:032x}"
    assert store.queue_depths() == {beta.node_id: 2}
    assert len(gate.waiting) == 1   # the two that waited, in one unit

    gate.open_one()
    assert [r.receipt.message_id for r in reported[1]] == [f"{2:032x}", f"{3:032x}"]
    assert all(r.error is None and r.all_done for r in reported[1])
    assert store.queue_depths() == {} and gate.waiting == []
    entries = store.audit_entries(kind="receipt-verified")
    assert [(e.message_id, e.digest, e.peer) for e in entries] == [
        (f"{n:032x}", "ab" * 32, beta.node_id) for n in (1, 2, 3)]


def test_a_receipt_the_store_refuses_is_reported_and_does_not_stop_the_batch(
        tmp_path: Path) -> None:
    """An unknown document's receipt comes back with its error; the other is recorded."""
    alpha = make_office(tmp_path, "alpha", FakeReactor())
    beta = make_office(tmp_path, "beta", FakeReactor(), port=7444)
    enrol(alpha, beta)
    alpha.store.add_dispatch(make_dispatch(1, (beta.node_id,)), T0)
    reported: list[list[Recorded]] = []
    batch = ReceiptBatch(alpha.runtime, beta.node_id, reported.append)
    gate = GatedDatabase()
    alpha.runtime.database = gate
    batch.add(_receipt(1))
    batch.add(_receipt(9))   # waits behind the first
    gate.open_one()
    gate.open_one()
    (unknown,) = reported[1]
    assert unknown.error is not None and not unknown.all_done and unknown.dispatch is None
    assert [e.message_id for e in alpha.store.audit_entries(kind="receipt-verified")] == [
        f"{1:032x}"]


def test_documents_of_the_same_name_filed_together_get_two_names_in_sent(
        tmp_path: Path) -> None:
    """Two delivered documents both named 'Công văn số 12.pdf', filed in one batch, land in
    sent/ under two names with their own bytes and receipts; spool folders go; both audited."""
    alpha = make_office(tmp_path, "alpha", FakeReactor())
    beta = make_office(tmp_path, "beta", FakeReactor(), port=7444)
    enrol(alpha, beta)
    rt = alpha.runtime
    store = alpha.store
    items = [make_dispatch(n, (beta.node_id,)) for n in (1, 2, 3)]
    spools = {}
    for number, item in zip((1, 2, 3), items, strict=True):
        spool = rt.config.spool / item.message_id
        spool.mkdir(parents=True)
        (spool / PAYLOAD_FILE).write_bytes(b"document %d" % number)
        spools[item.message_id] = spool
    items = [dataclasses.replace(item, spool_dir=str(spools[item.message_id])) for item in items]
    store.add_dispatches(items, T0)
    store.record_receipts(beta.node_id, [(item.message_id, f"receipt-{n}")
                                         for n, item in zip((1, 2, 3), items, strict=True)], T0)
    rows = store.dispatches_by_ids([item.message_id for item in items])
    gate = GatedDatabase()
    rt.database = gate
    sent = SentFolder(rt)
    first = sent.file(items[0].message_id)              # waits at its read of the store
    together = [sent.file(item.message_id, rows[item.message_id]) for item in items[1:]]
    while gate.waiting:
        gate.open_one()
    fired = []
    for d in [first, *together]:
        d.addCallback(fired.append)
    assert fired == [None, None, None]
    paths = {mid: Path(row.sent_path) for mid, row in
             store.dispatches_by_ids([item.message_id for item in items]).items()}
    assert len(set(paths.values())) == 3
    folder = rt.config.sent / "so-tu-phap"
    assert {p.parent for p in paths.values()} == {folder}
    for number, item in zip((1, 2, 3), items, strict=True):
        path = paths[item.message_id]
        assert path.read_bytes() == b"document %d" % number
        assert path.with_name(path.name + ".beta.receipt.jws").read_text() == f"receipt-{number}\n"
        assert not spools[item.message_id].exists()
    assert sorted(e.message_id for e in store.audit_entries(kind="delivered")) == sorted(
        item.message_id for item in items)
