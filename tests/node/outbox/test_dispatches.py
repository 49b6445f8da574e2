"""Dispatches of documents sealed together are recorded in one unit of work
(node/outbox/dispatches.py), and a document the store refuses fails alone."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from lienthong.node.outbox.dispatches import SealedDispatch, record_dispatches
from lienthong.node.outbox.pipeline import Outbox
from lienthong.node.store.audit_chain import verify_chain
from lienthong.node.store.database import Store
from lienthong.node.store.records import DuplicateMessage
from tests.node.outbox.test_outbox_chain import _offices
from tests.node.storehelp import T0, T1, make_dispatch, make_peer

ALICE = make_peer("so-tu-phap", 1)


def _sealed(number: int) -> SealedDispatch:
    dispatch = make_dispatch(number, (ALICE.node_id,))
    return SealedDispatch(dispatch, (
        ("taken", {"message_id": dispatch.message_id, "name": dispatch.name}),
        ("sealed", {"message_id": dispatch.message_id, "digest": dispatch.sha256})))


def test_documents_sealed_while_a_unit_runs_share_the_next_unit(tmp_path: Path) -> None:
    """Five files, each taken and sealed at once (inline workers): the first dispatch is
    recorded in a unit of its own, the four sealed while it commits in ONE more unit, each
    document's audit entries in its order, and no Deferred fires before its commit."""
    alpha, held = _offices(tmp_path)
    folder = alpha.runtime.config.outbox / "beta"
    folder.mkdir(parents=True)
    outbox = Outbox(alpha.runtime, on_dispatch=lambda ids: None)
    finished: list[Any] = []
    for index in range(5):
        path = folder / f"cong-van-{index}.pdf"
        path.write_bytes((b"PDF-1.7 cong van %d\n" % index) * 50)
        outbox.file_ready(path, "beta").addBoth(finished.append)
    assert len(held.pending) == 1 and finished == []
    held.release()
    assert finished == [None] * 5
    assert (outbox._dispatches.units, outbox._dispatches.recorded) == (2, 5)
    assert len(alpha.store.recent_dispatches(10)) == 5
    entries = [(e.kind, e.message_id) for e in alpha.store.audit_entries()
               if e.kind in ("document-metadata", "taken", "sealed")]
    kinds = [kind for kind, _ in entries]
    assert kinds == ["document-metadata", "taken", "sealed"] * 5
    # each document's three entries stand together
    ids = [mid for _, mid in entries]
    assert all(len(set(ids[i:i + 3])) == 1 for i in range(0, 15, 3))


def test_a_refused_dispatch_fails_alone(store: Store) -> None:
    """A message ID already recorded refuses that document only: the others of the batch are
    recorded with their audit entries, the refused one writes nothing."""
    store.add_peer(ALICE, "card.alice", T0)
    store.add_dispatch(make_dispatch(2, (ALICE.node_id,)), T0)
    batch = [_sealed(1), _sealed(2), _sealed(3)]
    results = record_dispatches(store, batch, T1, "2026-01-05T08:00:01.000Z")
    assert isinstance(results[1], DuplicateMessage)
    assert [r.message_id for r in (results[0], results[2])] == \
        [batch[0].dispatch.message_id, batch[2].dispatch.message_id]  # type: ignore[union-attr]
    audited = [(e.kind, e.message_id) for e in store.audit_entries()
               if e.kind in ("taken", "sealed")]
    assert audited == [(kind, batch[n].dispatch.message_id)
                       for n in (0, 2) for kind in ("taken", "sealed")]
    # the undone savepoint left no gap or fork in the chain (the store forgot its tip)
    entries = store.audit_entries()
    assert verify_chain(entries)[0] == entries[-1].seq


def test_a_whole_batch_is_recorded_with_one_look_up_of_each_kind(store: Store) -> None:
    """Without a refusal every row of the batch is written by the one ``add_dispatches``."""
    store.add_peer(ALICE, "card.alice", T0)
    calls: list[int] = []
    original = store.add_dispatches

    def counted(batch: Any, now: str) -> Any:
        calls.append(len(list(batch)))
        return original(batch, now)

    store.add_dispatches = counted  # type: ignore[method-assign]
    results = record_dispatches(store, [_sealed(n) for n in range(1, 9)], T1,
                                "2026-01-05T08:00:01.000Z")
    assert calls == [8]
    assert len(results) == 8 and not any(isinstance(r, Exception) for r in results)


def test_a_unit_logs_its_documents_in_one_line(tmp_path: Path) -> None:
    """The lone first dispatch logs its own line, as before; the four recorded together in the
    next unit share ONE line naming each of them (docs/benchmarks.md, History 55)."""
    from twisted.logger import formatEvent, globalLogPublisher

    events: list[dict[str, Any]] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "lienthong.outbox" and \
                str(event.get("log_format", "")).startswith("sealed"):
            events.append(event)

    alpha, held = _offices(tmp_path)
    folder = alpha.runtime.config.outbox / "beta"
    folder.mkdir(parents=True)
    outbox = Outbox(alpha.runtime, on_dispatch=lambda ids: None)
    globalLogPublisher.addObserver(observe)
    try:
        for index in range(5):
            path = folder / f"cong-van-{index}.pdf"
            path.write_bytes((b"PDF-1.7 cong van %d\n" % index) * 50)
            outbox.file_ready(path, "beta")
        held.release()
    finally:
        globalLogPublisher.removeObserver(observe)
    lines = [formatEvent(event) for event in events]
    assert len(lines) == 2, lines
    assert lines[0].startswith("sealed 'cong-van-") and "for 1 recipient(s)" in lines[0]
    assert lines[1].startswith("sealed 4 documents: ")
    ids = {row.message_id for row in alpha.store.recent_dispatches(10)}
    assert sum(mid in "".join(lines) for mid in ids) == 5
