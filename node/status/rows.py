"""One sent or received document, and the peer names it is shown with, as the snapshot and a
document's trail both show them (plain, JSON-serialisable values; peer text kept as data).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lienthong.node.store.database import Store
from lienthong.node.store.records import DispatchRow, PeerRecord, ReceivedRow

#: The signed metadata fields a clerk recognises a document by (docs/documents.md); the rest
#: (signer, dates, reply-to) is in the document's trail.
DOCUMENT_FIELDS = ("type", "number", "urgency", "confidentiality", "subject", "kind")


def document_fields(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata shown beside a document in status and console. It came from the signed
    envelope, but from a peer it is still data: renderers escape it."""
    return {key: meta[key] for key in DOCUMENT_FIELDS if meta.get(key) not in (None, "")}


def peer_names(records: Iterable[PeerRecord]) -> dict[str, str]:
    """Node ID -> peer name, former identities included: documents delivered, statuses
    signed and audit entries made before a peer's identity rotation name its former node ID
    (docs/keys.md §3), and they are still that office's."""
    names: dict[str, str] = {}
    for record in records:
        for key in record.peer.all_identity_keys():
            names[key.kid] = record.peer.name
        names[record.peer.node_id] = record.peer.name
    return names


def _same_office(names: Mapping[str, str], node_id: str) -> list[str]:
    """Every node ID (current and former) of the office ``node_id`` names."""
    name = names.get(node_id)
    return [other for other, n in names.items() if n == name] if name else [node_id]


def sent_row(row: DispatchRow, names: Mapping[str, str], store: Store) -> dict[str, Any]:
    return {"message_id": row.message_id, "name": row.name, "target": row.target,
            "size": row.size, "sha256": row.sha256, "state": row.state,
            "created_at": row.created_at, "finished_at": row.finished_at, "error": row.error,
            "document": document_fields(row.meta),
            "recipients": [{"peer": names.get(d.peer_node_id, d.peer_node_id),
                            "node_id": d.peer_node_id, "state": d.state,
                            "receipt_at": d.receipt_at, "attempts": d.attempts,
                            "last_error": d.last_error,
                            "processing": store.last_processing_status(
                                row.message_id, _same_office(names, d.peer_node_id))}
                           for d in row.deliveries]}


def received_row(row: ReceivedRow, names: Mapping[str, str], store: Store,
                  own_node_id: str | None) -> dict[str, Any]:
    return {"message_id": row.message_id, "name": row.name,
            "from": names.get(row.sender_node_id, row.sender_node_id),
            "sender_node_id": row.sender_node_id, "received_at": row.received_at,
            "size": row.size, "sha256": row.sha256, "stored_path": row.stored_path,
            "state": row.state, "document": document_fields(row.meta),
            "processing": (store.last_processing_status(row.message_id, own_node_id)
                           if own_node_id else None)}
