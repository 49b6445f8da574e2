"""``sidecars_due``: a received document's sidecars are due from its ``publishing`` row until
they are written (node/inbox/publication.py); start-up lists the stored ones still due."""
from __future__ import annotations

from lienthong.node.store.database import Store
from tests.node.storehelp import T0, T1, make_received


def _due(store: Store) -> list[str]:
    return [row.message_id for row in store.sidecars_due_rows()]


def test_a_stored_document_is_due_its_sidecars_until_they_are_written(store: Store) -> None:
    one, two = make_received(1, "SENDER"), make_received(2, "SENDER")
    store.begin_publish(one, T0)
    store.begin_publishes([(two, T0, None)])
    assert _due(store) == []                  # still publishing: its recovery writes them
    store.mark_stored_many([("SENDER", one.message_id, "receipt-1", T1),
                            ("SENDER", two.message_id, "receipt-2", T1)])
    due = store.sidecars_due_rows()
    assert sorted(row.message_id for row in due) == sorted([one.message_id, two.message_id])
    assert {row.receipt for row in due} == {"receipt-1", "receipt-2"}
    store.sidecars_written([("SENDER", one.message_id)])
    assert _due(store) == [two.message_id]
    store.sidecars_written([])                # nothing to record: no statement
    store.sidecars_written([("SENDER", two.message_id)])
    assert _due(store) == []


def test_an_abandoned_publication_takes_its_due_sidecars_with_it(store: Store) -> None:
    item = make_received(3, "SENDER")
    store.begin_publish(item, T0)
    store.abandon_publish("SENDER", item.message_id, T1)
    store.begin_publish(item, T1)             # the sender's retry starts over
    store.mark_stored("SENDER", item.message_id, "receipt", T1)
    assert _due(store) == [item.message_id]
