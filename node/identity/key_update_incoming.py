"""Applying a peer's ``key-update``: its new keys, or the continuation to its new identity.

Theory of operation
-------------------
A peer that ran ``keys rotate`` sends every trusted peer a ``key-update`` control document
(identity/key_update_outgoing.py). :meth:`IncomingKeyUpdates.receive` runs after the document
is stored and receipted, so it must be idempotent. The binding and card must be signed by the
identity key we already trust for the sender, and name it.

**New keys.** The new encryption key becomes current at once (documents sealed from now on
use it); the new TLS key becomes current and the previous one stays accepted for a grace
period (identity/peer_tls_grace.py), because the rotating node may dial with the old key
until it has our receipt.

**New identity.** The peer sends a continuation signed by its old identity, then switches
at once (identity/switch.py). We re-key its directory entry to the new node ID, keeping the
old identity key in the history so old receipts still verify, and move what we had queued
for the old node ID to the new one.

Both database functions verify against the identity key we trust for the sender *now*,
inside the transaction that applies the change, so two announcements racing each other cannot
both apply, and a key another peer already holds is refused whole (the directory is rebuilt
before commit and raises).
"""
from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks

from lienthong.keys.directory import PeerKey
from lienthong.keys.errors import BadBinding
from lienthong.keys.jws import b64url_encode
from lienthong.node.core.clock import rfc3339
from lienthong.node.identity.peer_tls_grace import TLS_GRACE_SECONDS
from lienthong.node.identity.rotation import (
    Announcement,
    parse_announcement,
    verify_identity_rotation,
    verify_key_announcement,
)
from lienthong.node.runtime.node_runtime import NodeRuntime
from lienthong.node.runtime.ports import AcceptedConnections
from lienthong.node.store.database import Store
from lienthong.node.store.records import NotFound
from lienthong.protocol.envelope import EnvelopeHeader

#: The largest announcement read from disk (they are a few kilobytes).
MAX_READ = 64 * 1024


def _read_small(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(MAX_READ + 1)


class IncomingKeyUpdates:
    """Applies the keys and identity continuations this node's peers announce."""

    def __init__(self, runtime: NodeRuntime, accepted: AcceptedConnections) -> None:
        self.rt = runtime
        self._accepted = accepted

    @inlineCallbacks
    def receive(self, peer: str, header: EnvelopeHeader,
                stored: Path) -> Generator[Deferred[Any], Any, None]:
        """Apply a peer's ``key-update`` (stored and receipted already; idempotent)."""
        rt = self.rt
        data = yield rt.io(_read_small, stored)
        announcement = parse_announcement(data)
        now = rt.now_text()
        if announcement.rotation is not None:
            new_id = yield rt.db(apply_identity_continuation, rt.store, peer,
                                 announcement.rotation, now)
            # Seal from now on for the new node ID. The listeners (links, connection drops)
            # run at the daemon's next directory poll; the connection this announcement came
            # on is relabelled first, so that poll does not cut it before our receipt is out.
            rt.directory = yield rt.db(rt.store.directory)
            for proto in list(self._accepted.connections):
                if proto.peer == peer:
                    proto.peer = new_id
            return
        grace_until = rfc3339(rt.now() + TLS_GRACE_SECONDS)
        yield rt.db(apply_key_announcement, rt.store, peer, announcement, now, grace_until)
        yield rt.refresh_directory()


def apply_key_announcement(store: Store, peer: str, announcement: Announcement, now: str,
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


def apply_identity_continuation(store: Store, peer: str, token: str, now: str) -> str:
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
