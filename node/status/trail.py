"""One document's trail: everything recorded about it, for ``audit trail`` and the console."""
from __future__ import annotations

from typing import Any

from lienthong.node.status.rows import peer_names, received_row, sent_row
from lienthong.node.store.database import Store


def build_trail(store: Store, message_id: str) -> dict[str, Any]:
    """Everything recorded about one message: the dispatch or receptions, and every audit event.

    Blocking; peer node IDs are given with their directory names. Receipts are included as
    stored (``audit verify`` and ``receipt verify`` check them).
    """
    names = peer_names(store.list_peers())
    dispatch = store.get_dispatch(message_id)
    received = store.received_for_message(message_id)
    events = store.audit_search(message_ids=[message_id])
    return {
        "message_id": message_id,
        "found": bool(dispatch or received or events),
        "sent": dict(sent_row(dispatch, names, store), spool_dir=dispatch.spool_dir,
                     sent_path=dispatch.sent_path, meta=dict(dispatch.meta),
                     receipts={names.get(d.peer_node_id, d.peer_node_id): d.receipt
                               for d in dispatch.deliveries if d.receipt})
        if dispatch else None,
        "received": [dict(received_row(row, names, store, None), receipt=row.receipt,
                          meta=dict(row.meta))
                     for row in received],
        "events": [{"seq": e.seq, "time": e.time, "kind": e.kind,
                    "peer": names.get(e.peer, e.peer) if e.peer else None,
                    "digest": e.digest, "detail": e.detail} for e in events],
    }
