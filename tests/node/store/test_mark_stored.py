"""Store.mark_stored: the receiver's one-statement ``publishing -> stored``, with the same
checks as ``complete_publish`` for every other case."""
from __future__ import annotations

import pytest

from lienthong.node.store.database import Store
from lienthong.node.store.records import NotFound, ReceiptMismatch
from tests.node.storehelp import T0, T1, T2, make_peer, make_received

ALICE = make_peer("so-tu-phap", 1)


def test_marks_a_publishing_row_stored_with_its_receipt(store: Store) -> None:
    item = make_received(1, ALICE.node_id)
    store.begin_publish(item, T0)
    store.mark_stored(ALICE.node_id, item.message_id, "receipt-1", T1)
    row = store.get_received(ALICE.node_id, item.message_id)
    assert row is not None and (row.state, row.receipt) == ("stored", "receipt-1")
    assert store.publishing_rows() == [] and store.received_count() == 1


def test_other_rows_get_complete_publish_checks(store: Store) -> None:
    """A repeat with the same receipt is a no-op; another receipt, or no row, is refused."""
    item = make_received(2, ALICE.node_id)
    with pytest.raises(NotFound):
        store.mark_stored(ALICE.node_id, item.message_id, "receipt-1", T1)
    store.begin_publish(item, T0)
    store.mark_stored(ALICE.node_id, item.message_id, "receipt-1", T1)
    store.mark_stored(ALICE.node_id, item.message_id, "receipt-1", T2)
    with pytest.raises(ReceiptMismatch):
        store.mark_stored(ALICE.node_id, item.message_id, "receipt-2", T2)
    row = store.get_received(ALICE.node_id, item.message_id)
    assert row is not None and row.receipt == "receipt-1"
