"""Store.begin_publishes and mark_stored_many: a publication batch of the receiver in one unit
of work, with the same refusals, each for its own document, as the one-document methods."""
from __future__ import annotations

import dataclasses

import pytest

from lienthong.node.store.database import Store
from lienthong.node.store.records import DuplicateMessage, PeerRevoked, ReceiptMismatch
from tests.node.storehelp import T0, T1, T2, make_peer, make_received

ALICE = make_peer("so-tu-phap", 1)
BOB = make_peer("so-tai-chinh", 2)


def test_a_batch_is_recorded_publishing_as_one_document_at_a_time_would_be(
        store: Store) -> None:
    items = [make_received(n, ALICE.node_id) for n in (1, 2, 3)]
    tracked = dataclasses.replace(make_received(4, ALICE.node_id),
                                  meta={"type": "bao-cao", "due": "2026-12-31"},
                                  edxml_copies=True)
    results = store.begin_publishes([(item, T0, ALICE.node_id) for item in [*items, tracked]])
    assert results == [None] * 4
    assert {row.message_id for row in store.publishing_rows()} == {
        item.message_id for item in [*items, tracked]}
    alone = store.get_received(ALICE.node_id, items[1].message_id)
    assert alone is not None and (alone.state, alone.received_at, alone.meta) == (
        "publishing", T0, items[1].meta)
    assert store.edxml_copies_due() == [(ALICE.node_id, tracked.message_id)]


def test_a_duplicate_fails_alone_and_the_rest_is_recorded(store: Store) -> None:
    first = make_received(1, ALICE.node_id)
    store.begin_publish(first, T0)
    batch = [make_received(2, ALICE.node_id), first, make_received(3, ALICE.node_id),
             make_received(3, ALICE.node_id)]
    rows = store.begin_publishes([(item, T1, ALICE.node_id) for item in batch])
    assert isinstance(rows[1], DuplicateMessage) and isinstance(rows[3], DuplicateMessage)
    assert rows[0] is None and rows[2] is None
    assert len(store.publishing_rows()) == 3
    # The same message ID from another sender is another document.
    assert store.begin_publishes([(make_received(1, BOB.node_id), T1, None)]) == [None]


def test_a_revoked_peer_gets_nothing_recorded_and_the_others_do(store: Store) -> None:
    store.add_peer(ALICE, "card", T0)
    store.add_peer(BOB, "card", T0)
    store.revoke_peer(ALICE.name, "key lost", T1)
    rows = store.begin_publishes([(make_received(1, ALICE.node_id), T2, ALICE.node_id),
                                  (make_received(2, BOB.node_id), T2, BOB.node_id)])
    assert isinstance(rows[0], PeerRevoked) and rows[1] is None
    assert store.get_received(ALICE.node_id, make_received(1, ALICE.node_id).message_id) is None


def test_mark_stored_many_stores_each_receipt_and_keeps_the_checks(store: Store) -> None:
    items = [make_received(n, ALICE.node_id) for n in (1, 2)]
    store.begin_publishes([(item, T0, None) for item in items])
    store.mark_stored_many([(ALICE.node_id, item.message_id, f"receipt-{n}", T1)
                            for n, item in enumerate(items)])
    assert store.publishing_rows() == [] and store.received_count() == 2
    row = store.get_received(ALICE.node_id, items[1].message_id)
    assert row is not None and row.receipt == "receipt-1"
    # Again with the same receipts: nothing changes; with another: refused, the first kept.
    store.mark_stored_many([(ALICE.node_id, items[0].message_id, "receipt-0", T2)])
    with pytest.raises(ReceiptMismatch):
        store.mark_stored_many([(ALICE.node_id, items[0].message_id, "receipt-9", T2)])
    row = store.get_received(ALICE.node_id, items[0].message_id)
    assert row is not None and row.receipt == "receipt-0"
