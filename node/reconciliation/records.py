"""What this office's record says about its exchanges with one peer in one period, as items.

Blocking (run on the database thread): reads the store, then keeps the documents whose
envelope was *created* in the period, by the sender's signed ``created`` in the header token
(sealed in a v3 header, which this office opens as one of its readers), so both offices place
each document in the same period whatever their clocks said when they recorded it. Only
clerks' documents and messages are reconciled: statuses, recalls, key announcements, audit
heads and the summaries themselves are the exchange's own machinery.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from lienthong.keys.errors import KeysError
from lienthong.keys.identity import NodeKeys
from lienthong.node.identity.stored_headers import open_stored_header
from lienthong.node.store.database import Store
from lienthong.node.store.records import RecordedDocument
from lienthong.protocol.errors import ProtocolError
from lienthong.protocol.receipt import decode_receipt
from lienthong.protocol.reconciliation import Item, Period

#: The kinds of document a clerk sends (node/documents/metadata.py).
RECONCILED_KINDS = frozenset({"document", "message"})
#: How far before a period a record's own time may lie for a document created in it (clocks
#: of two offices drift; a document is recorded after it is created, never long before).
CLOCK_SLACK = timedelta(days=2)


def _since(period: Period) -> str:
    start = datetime.strptime(period.start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return (start - CLOCK_SLACK).strftime("%Y-%m-%dT%H:%M:%SZ")


def _items(rows: Iterable[RecordedDocument], period: Period, keys: NodeKeys) -> list[Item]:
    out = []
    for row in rows:
        if row.sha256 is None:
            continue  # a large document not yet read to its end: its digest comes with its
            # trailer (docs/design.md §5.3), and a later exchange reconciles it
        try:
            kind = json.loads(row.meta).get("kind", "document")
            if kind not in RECONCILED_KINDS:
                continue
            # A v3 header seals its created: this office is a reader of all it recorded.
            created = open_stored_header(row.header_token, keys).created
            receipt = decode_receipt(row.receipt).time if row.receipt else None
        except (ProtocolError, KeysError, ValueError, AttributeError):
            continue  # a damaged record is audit verify's to report
        if period.holds(created):
            out.append(Item(row.message_id, row.sha256, created, receipt))
    return out


def own_items(store: Store, peer_ids: Iterable[str], period: Period,
              keys: NodeKeys) -> tuple[list[Item], list[Item]]:
    """(what we sent the peer, what we received from it and receipted) in ``period``;
    ``keys`` open the sealed contents of v3 headers."""
    ids = list(peer_ids)
    since = _since(period)
    return (_items(store.sent_documents(ids, since), period, keys),
            _items(store.received_documents(ids, since), period, keys))
