"""A peer's key announcement, applied on the database thread (node.keyupdate receives it).

Both functions verify against the identity key we trust for the sender *now*, inside the
transaction that applies the change, so two announcements racing each other cannot both
apply, and a key another peer already holds is refused whole (the directory is rebuilt before
commit and raises).
"""
from __future__ import annotations

from typing import Any

from lienthong.keys.directory import PeerKey
from lienthong.keys.errors import BadBinding
from lienthong.keys.jws import b64url_encode
from lienthong.node.identity.rotation import verify_identity_rotation, verify_key_announcement
from lienthong.node.store.records import NotFound


def apply_key_announcement(store: Any, peer: str, announcement: Any, now: str,
                           grace_until: str) -> None:
    """On the database thread: verify against the identity we trust now, then apply."""
    with store.transaction():
        record = store.peer_by_node_id(peer)
        if record is None:
            raise NotFound(f"{peer} is not in the directory")
        verified = verify_key_announcement(announcement, record.peer)
        card = verified.card
        keys = [PeerKey("encryption", b64url_encode(card.encryption_public),
                        card.encryption_kid, now),
                PeerKey("tls", card.tls_spki_sha256, card.tls_spki_sha256[:16], now)]
        before = {k.kind: k.kid for k in record.peer.keys if k.is_current}
        store.apply_peer_keys(peer, keys, card.token, now, tls_grace_until=grace_until)
        store.directory()  # a pin or key another peer holds is refused here (rolled back)
        changed = {k.kind: k.kid for k in keys if before.get(k.kind) != k.kid}
        if changed:
            store.append_audit("peer-keys-updated", now, peer=peer,
                               detail={"name": record.peer.name, "keys": changed,
                                       "seq": verified.binding.seq,
                                       "tls_grace_until": grace_until if "tls" in changed
                                       else None})


def apply_identity_continuation(store: Any, peer: str, token: str, now: str) -> str:
    """On the database thread: verify a continuation and re-key the peer (what was queued
    for its old node ID now waits under the new one); return the new node ID."""
    with store.transaction():
        record = store.peer_by_node_id(peer)
        if record is None:
            raise NotFound(f"{peer} is not in the directory (already continued?)")
        rotation = verify_identity_rotation(token, record.peer.current("identity").public_bytes)
        if rotation.old_node_id != peer:
            raise BadBinding("the continuation is for another node")
        card = rotation.card
        keys = [PeerKey("identity", b64url_encode(card.identity_public), card.node_id, now),
                PeerKey("encryption", b64url_encode(card.encryption_public),
                        card.encryption_kid, now),
                PeerKey("tls", card.tls_spki_sha256, card.tls_spki_sha256[:16], now)]
        _, moved = store.continue_peer_identity(peer, keys, card.token, now)
        store.directory()  # a key another peer holds is refused here (rolled back)
        store.append_audit("peer-identity-continued", now, peer=card.node_id,
                           detail={"name": record.peer.name, "old_node_id": peer,
                                   "new_node_id": card.node_id, "queued_moved": moved})
    return card.node_id
