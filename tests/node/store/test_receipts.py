"""The batch receipt methods keep record_receipt's and mark_dispatch_sent's rules item by item."""
from __future__ import annotations

from lienthong.node.store.database import Store
from lienthong.node.store.records import InvalidTransition, NotFound, ReceiptMismatch, StoreError
from tests.node.storehelp import T0, T1, T2, T3, make_dispatch, make_peer, make_received

ALICE = make_peer("so-tu-phap", 1)
BOB = make_peer("so-tai-chinh", 2)


def _mid(number: int) -> str:
    return f"{number:032x}"


def test_a_batch_answers_like_single_receipts_and_refusals_write_nothing(store: Store) -> None:
    """Per item: done only at the last recipient, repeats answer the same, a different receipt
    or an unknown delivery is refused in place, and the others of the batch are recorded."""
    store.add_dispatches([make_dispatch(1, (ALICE.node_id, BOB.node_id)),
                          make_dispatch(2, (ALICE.node_id,)),
                          make_dispatch(3, (ALICE.node_id,))], T0)
    store.record_receipt(_mid(3), ALICE.node_id, "first-3", T0)
    out = store.record_receipts(ALICE.node_id, [
        (_mid(1), "r-1"), (_mid(2), "r-2"), (_mid(2), "r-2"), (_mid(2), "other-2"),
        (_mid(3), "forged-3"), ("e" * 32, "r-e")], T1)
    assert out[:3] == [False, True, True]
    assert isinstance(out[3], ReceiptMismatch) and isinstance(out[4], ReceiptMismatch)
    assert isinstance(out[5], NotFound)
    rows = store.dispatches_by_ids([_mid(1), _mid(2), _mid(3), "f" * 32])
    assert set(rows) == {_mid(1), _mid(2), _mid(3)}
    alice = {row.message_id: next(d for d in row.deliveries if d.peer_node_id == ALICE.node_id)
             for row in rows.values()}
    assert (alice[_mid(1)].receipt, alice[_mid(1)].receipt_at, alice[_mid(1)].state) == (
        "r-1", T1, "delivered")
    assert (alice[_mid(2)].receipt, alice[_mid(2)].receipt_at) == ("r-2", T1)
    assert (alice[_mid(3)].receipt, alice[_mid(3)].receipt_at) == ("first-3", T0)
    # The second recipient's receipt completes document 1; a repeat answers the same.
    assert store.record_receipts(BOB.node_id, [(_mid(1), "b-1")], T2) == [True]
    assert store.record_receipts(BOB.node_id, [(_mid(1), "b-1")], T3) == [True]
    assert store.queue_depths() == {}


def test_a_batch_follows_the_delivery_transitions_as_record_receipt_does(store: Store) -> None:
    """A late receipt for a failed delivery and one for a queued delivery end in the same
    state whether recorded alone or in a batch."""
    store.add_dispatches([make_dispatch(n, (ALICE.node_id,)) for n in (1, 2, 3, 4)], T0)
    for number in (1, 2):
        store.fail_delivery(_mid(number), ALICE.node_id, "refused", T1)
    alone = [store.record_receipt(_mid(1), ALICE.node_id, "r-1", T2),
             store.record_receipt(_mid(3), ALICE.node_id, "r-3", T2)]
    batch = store.record_receipts(ALICE.node_id, [(_mid(2), "r-2"), (_mid(4), "r-4")], T2)
    assert batch == alone
    rows = store.dispatches_by_ids([_mid(n) for n in (1, 2, 3, 4)])
    states = [(rows[_mid(n)].deliveries[0].state, rows[_mid(n)].deliveries[0].receipt_at)
              for n in (1, 2, 3, 4)]
    assert states[0] == states[1] and states[2] == states[3] == ("delivered", T2)


def test_only_receipted_dispatches_become_sent_in_a_batch(store: Store) -> None:
    """mark_dispatches_sent refuses, in place, a dispatch still waiting for a receipt or
    unknown, marks the others, and is idempotent for the same path."""
    store.add_dispatches([make_dispatch(1, (ALICE.node_id,)),
                          make_dispatch(2, (ALICE.node_id, BOB.node_id))], T0)
    store.record_receipts(ALICE.node_id, [(_mid(1), "r-1"), (_mid(2), "r-2")], T1)
    out = store.mark_dispatches_sent([(_mid(1), "sent/a/1.pdf"), (_mid(2), "sent/a/2.pdf"),
                                      ("e" * 32, "sent/a/e.pdf")], T2)
    assert out[0] is None
    assert isinstance(out[1], InvalidTransition) and "1 receipt" in str(out[1])
    assert isinstance(out[2], NotFound)
    assert store.mark_dispatches_sent([(_mid(1), "sent/a/1.pdf")], T3) == [None]
    rows = store.dispatches_by_ids([_mid(1), _mid(2)])
    assert (rows[_mid(1)].state, rows[_mid(1)].sent_path, rows[_mid(1)].finished_at) == (
        "sent", "sent/a/1.pdf", T2)
    assert (rows[_mid(2)].state, rows[_mid(2)].sent_path) == ("sending", None)
    assert store.spool_message_ids() == {_mid(2)}


def test_nothing_from_a_revoked_peer_is_recorded_once_its_revocation_committed(
        store: Store) -> None:
    """Issue 20: after ``peers revoke``, a receipt (even for a transfer already in flight, even
    for a delivery that failed meanwhile) and the start of a document's publication are refused
    in the transaction that would record them, and nothing is written."""
    store.add_peer(ALICE, "card", T0)
    store.add_dispatches([make_dispatch(n, (ALICE.node_id,)) for n in (1, 2)], T0)
    store.fail_delivery(_mid(2), ALICE.node_id, "refused", T0)
    store.revoke_peer(ALICE.name, "key lost", T1)
    out = store.record_receipts(ALICE.node_id, [(_mid(1), "r-1"), (_mid(2), "r-2")], T2)
    assert [getattr(item, "code", item) for item in out] == ["peer-revoked", "peer-revoked"]
    assert "revoked at" in str(out[0]) and ALICE.name in str(out[0])
    rows = store.dispatches_by_ids([_mid(1), _mid(2)])
    assert [(rows[_mid(n)].deliveries[0].state, rows[_mid(n)].deliveries[0].receipt)
            for n in (1, 2)] == [("queued", None), ("failed", None)]
    received = make_received(7, ALICE.node_id)
    try:
        store.begin_publish(received, T2, from_peer=ALICE.node_id)
    except StoreError as exc:
        assert exc.code == "peer-revoked"
    else:
        raise AssertionError("a document from a revoked peer was recorded")
    assert store.get_received(ALICE.node_id, received.message_id) is None
    # A trusted peer is unaffected.
    store.add_peer(BOB, "card", T0)
    store.add_dispatches([make_dispatch(3, (BOB.node_id,))], T0)
    assert store.record_receipts(BOB.node_id, [(_mid(3), "r-3")], T2) == [True]
    assert store.begin_publish(make_received(8, BOB.node_id), T2,
                               from_peer=BOB.node_id).state == "publishing"
