"""A document's whole lifecycle, sent or received, as plain JSON (``lienthong track``, the web).

Metadata, every recipient's delivery and receipt, the processing statuses each reported (and
whether each is chained to the receipt it answers), and recalls.
"""
from __future__ import annotations

from typing import Any

from lienthong.keys.errors import KeysError
from lienthong.node.store.database import Store
from lienthong.node.store.records import StoreError
from lienthong.protocol.status import token_sha256


def lifecycle(store: Store, message_id: str) -> dict[str, Any]:
    """Everything the store knows about one document, sent or received, as plain JSON."""
    try:
        directory = store.directory()
    except (KeysError, StoreError):
        directory = None

    def name(node_id: str) -> str:
        """The office's name, also for an identity it had before a rotation."""
        peer = directory.peer_for_identity(node_id) if directory else None
        return peer.name if peer is not None else node_id

    statuses = store.statuses_for(message_id)
    out: dict[str, Any] = {"message_id": message_id}
    dispatch = store.get_dispatch(message_id)
    if dispatch is not None:
        out.update(direction="sent", name=dispatch.name, target=dispatch.target,
                   state=dispatch.state, meta=dict(dispatch.meta), recipients=[])
        for delivery in dispatch.deliveries:
            receipt_sha = token_sha256(delivery.receipt) if delivery.receipt else None
            out["recipients"].append({
                "office": name(delivery.peer_node_id), "node_id": delivery.peer_node_id,
                "delivery": {"queued": "waiting"}.get(delivery.state, delivery.state),
                "receipt_at": delivery.receipt_at, "last_error": delivery.last_error,
                "statuses": [_status(s, receipt_sha) for s in statuses
                             if name(s.peer_node_id) == name(delivery.peer_node_id)]})
    for row in store.stored_received(message_id):
        out.update(direction="received", name=row.name, sender=name(row.sender_node_id),
                   stored_path=row.stored_path, received_at=row.received_at,
                   meta=dict(row.meta),
                   statuses=[_status(s, token_sha256(row.receipt or "")) for s in statuses])
    out["recalls"] = [{"state": r.state, "reason": r.reason, "time": r.time,
                       "replaced_by": r.replaced_by, "refusal": r.refusal,
                       "recalled_path": r.recalled_path}
                      for r in store.recalls_for(message_id)]
    return out


def _status(row: Any, receipt_sha: str | None) -> dict[str, Any]:
    chained = (None if row.receipt_sha256 is None or receipt_sha is None
               else row.receipt_sha256 == receipt_sha)
    return {"status": row.status, "time": row.time, "note": row.note,
            "register_number": row.register_number, "chained_to_receipt": chained}
