"""A link's ``offered`` and ``sent`` notes share units of work (node/delivery/notes.py)."""
from __future__ import annotations

from pathlib import Path

from lienthong.node.delivery.notes import TransferNotes
from lienthong.node.store.audit_chain import verify_chain
from tests.node.outbox.test_outbox_chain import _offices
from tests.node.storehelp import T0, make_dispatch, make_peer

ALICE = make_peer("so-tu-phap", 1)


def _setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    alpha, held = _offices(tmp_path)
    alpha.store.add_peer(ALICE, "card.alice", T0)
    ids = [alpha.store.add_dispatch(make_dispatch(n, (ALICE.node_id,)), T0).message_id
           for n in (1, 2, 3)]
    return alpha, held, ids


def _notes(alpha) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    return [(e.kind, e.message_id) for e in alpha.store.audit_entries()
            if e.kind in ("offered", "sent")]


def test_notes_waiting_for_their_unit_share_it(tmp_path: Path) -> None:
    alpha, held, ids = _setup(tmp_path)
    notes = TransferNotes(alpha.runtime)
    notes.offered(ids[0], ALICE.node_id, 0)
    notes.offered(ids[1], ALICE.node_id, 0)
    notes.sent(ids[0], ALICE.node_id, 10240)
    assert notes.units == 1 and len(held.pending) == 1
    held.release()
    assert _notes(alpha) == [("offered", ids[0]), ("offered", ids[1]), ("sent", ids[0])]
    delivery = {d.message_id: d for d in alpha.store.queued_deliveries(ALICE.node_id, 10)}
    assert delivery[ids[0]].attempts == 1 and delivery[ids[0]].bytes_sent == 10240
    assert delivery[ids[1]].attempts == 1 and delivery[ids[2]].attempts == 0
    # once a unit has started, a new note goes into a unit of its own
    notes.sent(ids[1], ALICE.node_id, 10240)
    assert notes.units == 2
    held.release()
    assert _notes(alpha)[-1] == ("sent", ids[1])


def test_a_note_the_store_refuses_fails_alone(tmp_path: Path) -> None:
    alpha, held, ids = _setup(tmp_path)
    notes = TransferNotes(alpha.runtime)
    notes.offered(ids[0], ALICE.node_id, 0)
    notes.offered("f" * 32, ALICE.node_id, 0)  # no such delivery
    notes.offered(ids[2], ALICE.node_id, 0)
    held.release()
    assert _notes(alpha) == [("offered", ids[0]), ("offered", ids[2])]
    entries = alpha.store.audit_entries()
    assert verify_chain(entries)[0] == entries[-1].seq
